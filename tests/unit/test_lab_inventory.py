"""The lab's inventory and cluster-config writers (no root, no podman needed)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from installer.config.inventory import ROLE_GROUPS
from installer.lab import inventory, outputs
from installer.lab.inventory import LabMachine, build_inventory, role_groups

KEY = Path("/var/lib/kfinstall-lab/ssh/id_ed25519")
REPO = "http://10.89.7.1:8080"
LAB_DATA = {"all": {"hosts": {}}}  # an inventory for the tests that look at the other site files


def _machines(prefix: str, count: int, first_octet: int) -> list[LabMachine]:
    return [LabMachine(f"{prefix}{i}", f"10.89.7.{first_octet + i}") for i in range(1, count + 1)]


def _group_hosts(inv: dict, group: str) -> list[str]:
    return list((inv["all"]["children"][group].get("hosts") or {}).keys())


def test_three_hosts_fill_every_role_group_as_documented() -> None:
    inv = build_inventory(_machines("h", 3, 10), [], KEY, REPO)
    assert _group_hosts(inv, "kube_control_plane") == ["h1"]
    assert _group_hosts(inv, "kube_node") == ["h1", "h2", "h3"]
    assert _group_hosts(inv, "gluster") == ["h1", "h2", "h3"]
    assert _group_hosts(inv, "nfs_server") == ["h1"]
    assert _group_hosts(inv, "gpu") == []
    assert _group_hosts(inv, "lab_vm") == []


def test_one_host_is_in_every_group_except_gluster() -> None:
    groups = role_groups(["h1"])
    assert {g for g, members in groups.items() if "h1" in members} == {
        "kube_control_plane", "kube_node", "nfs_server",
    }
    assert groups["gluster"] == [] and groups["gpu"] == []


@pytest.mark.parametrize("count", [2, 3, 5])
def test_gluster_takes_the_first_three_hosts_only_from_three_up(count: int) -> None:
    names = [f"h{i}" for i in range(1, count + 1)]
    assert role_groups(names)["gluster"] == (names[:3] if count >= 3 else [])


def test_vms_go_only_into_lab_vm() -> None:
    inv = build_inventory(_machines("h", 3, 10), _machines("vm", 2, 100), KEY, REPO)
    assert _group_hosts(inv, "lab_vm") == ["vm1", "vm2"]
    for group in ROLE_GROUPS:
        assert not {"vm1", "vm2"} & set(_group_hosts(inv, group))


def test_every_machine_has_its_connection_vars_and_the_repo_is_a_group_var() -> None:
    inv = build_inventory(_machines("h", 1, 10), _machines("vm", 1, 100), KEY, REPO)
    assert inv["all"]["vars"] == {"kf_lab_apt_repo": REPO}
    h1 = inv["all"]["hosts"]["h1"]
    assert h1 == {
        "ansible_host": "10.89.7.11",
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(KEY),
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    assert inv["all"]["hosts"]["vm1"]["ansible_host"] == "10.89.7.101"


def test_written_inventory_is_what_ansible_reads(tmp_path: Path) -> None:
    outputs.write_site_files(tmp_path, build_inventory(_machines("h", 3, 10), [], KEY, REPO))
    path = tmp_path / inventory.INVENTORY_FILE
    ansible_inventory = Path(sys.executable).parent / "ansible-inventory"
    if not ansible_inventory.exists():
        pytest.skip(f"ansible-inventory not found next to {sys.executable}")
    listed = json.loads(subprocess.run(
        [str(ansible_inventory), "-i", str(path), "--list"], capture_output=True, text=True, check=True,
    ).stdout)
    assert listed["kube_control_plane"]["hosts"] == ["h1"]
    assert sorted(listed["gluster"]["hosts"]) == ["h1", "h2", "h3"]
    hostvars = listed["_meta"]["hostvars"]
    assert hostvars["h2"]["ansible_host"] == "10.89.7.12"
    assert hostvars["h2"]["kf_lab_apt_repo"] == REPO


def test_cluster_config_has_the_lab_profile_and_is_kept_once_written(tmp_path: Path) -> None:
    outputs.write_site_files(tmp_path, LAB_DATA)
    path = tmp_path / inventory.CONFIG_FILE
    data = YAML(typ="safe").load(path.read_text())
    assert data == {
        "apiVersion": "kfinstall.io/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "lab"},
        "spec": {"profile": "lab", "channel": "26.03"},
    }
    path.write_text(path.read_text() + "# edited by the operator\n")
    outputs.write_site_files(tmp_path, LAB_DATA)
    assert path.read_text().endswith("# edited by the operator\n")


def test_secrets_are_generated_once_with_mode_0600(tmp_path: Path) -> None:
    outputs.write_site_files(tmp_path, LAB_DATA)
    written = tmp_path / "secrets.yml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    first = written.read_text()
    assert "lab_user_password:" in first
    outputs.write_site_files(tmp_path, LAB_DATA)
    assert written.read_text() == first  # a second `lab up` never rotates secrets
