"""Inventories ops teams already have (issue 15 item 6): Kubespray's and DeepOps' group names.

Upstream facts relied on:
  * Kubespray maps its old group names at run time: roles/dynamic_groups/tasks/main.yml (group_mappings
    kube_control_plane: [kube-master], kube_node: [kube-node], calico_rr: [calico-rr]), before that
    playbooks/legacy_groups.yml (kubernetes-sigs/kubespray 065ec7646); the rename: kubespray#7256.
  * DeepOps' config.example/inventory had [kube-master], [kube-node], [k8s-cluster:children], [etcd],
    slurm-* groups until NVIDIA/deepops 2b62ae30, and [nfs-server], [nfs-clients] until c3b85743.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from installer.adapters.ansible import ALIAS_INVENTORY, inventory_sources
from installer.cli import cli
from installer.config.inventory import ROLE_GROUPS
from installer.config.load import load
from installer.config.problems import InvalidConfig

KUBESPRAY_SITE = Path(__file__).parent / "sites" / "kubespray-bastion"

# DeepOps' config.example/inventory before c3b85743 (2019), hosts filled in.
DEEPOPS = """\
[all]
mgmt01     ansible_host=10.0.0.1
login01    ansible_host=10.0.1.1
gpu01      ansible_host=10.0.2.1
gpu02      ansible_host=10.0.2.2

[kube-master]
mgmt01

[etcd]
mgmt01

[kube-node]
gpu01
gpu02

[k8s-cluster:children]
kube-master
kube-node

[slurm-master]
login01

[slurm-node]
gpu01
gpu02

[slurm-cluster:children]
slurm-master
slurm-node

[nfs-server]
login01

[nfs-clients]
gpu01
gpu02

[all:vars]
ansible_user=ubuntu
"""


def kubespray_site(make_site) -> Path:
    site = make_site(hosts_text="", hosts_name="hosts.ini")
    (site / "hosts.yml").unlink(missing_ok=True)
    shutil.copy(KUBESPRAY_SITE / "hosts.ini", site / "hosts.ini")
    return site


def ini_site(make_site, text: str) -> Path:
    site = make_site(hosts_text=text, hosts_name="hosts.ini")
    (site / "hosts.yml").unlink(missing_ok=True)
    return site


def test_a_kubespray_inventory_with_a_bastion_validates_with_a_warning_per_old_name(make_site) -> None:
    cfg = load(kubespray_site(make_site))
    assert cfg.inventory.names("kube_control_plane") == ["node1"]
    assert cfg.inventory.names("kube_node") == ["node2", "node3"]
    assert not cfg.inventory.in_role("gpu") and cfg.inventory.names("nfs_server") == ["node1"]
    # The bastion is not a cluster host and is not reported as one.
    assert not next(h for h in cfg.inventory.hosts if h.name == "bastion").roles
    rendered = [w.render() for w in cfg.warnings]
    assert ("warning: hosts.ini:13:2: kube-master: group kube-master (1 host(s)) is Kubespray's name before v2.16 "
            "(DeepOps' too) for kube_control_plane: kfinstall reads it as kube_control_plane. Fix: rename the group "
            "kube-master to kube_control_plane") in "\n".join(rendered)
    assert any(line.startswith("warning: hosts.ini:19:2: kube-node: group kube-node (2 host(s)) is Kubespray's and "
                               "DeepOps' older name for kube_node") for line in rendered), rendered
    assert not any("bastion" in line or "calico" in line or "k8s-cluster" in line for line in rendered), rendered


@pytest.mark.parametrize("legacy", ["kube-master", "kube_master"])
def test_both_spellings_of_kube_master_are_read_as_the_control_plane(make_site, legacy) -> None:
    hosts = (f"all:\n  hosts:\n    cp1: {{ansible_host: 192.0.2.11}}\n    n1: {{ansible_host: 192.0.2.21}}\n"
             f"  children:\n    {legacy}: {{hosts: {{cp1: }}}}\n    kube_node: {{hosts: {{n1: }}}}\n"
             f"    nfs_server: {{hosts: {{cp1: }}}}\n")
    cfg = load(make_site(hosts_text=hosts))
    assert cfg.inventory.names("kube_control_plane") == ["cp1"]
    # Plays' patterns and --limit resolve on the same parse: the role group holds the legacy group's hosts.
    assert cfg.inventory.pattern_hosts("kube_control_plane[0]") == ["cp1"]
    assert [w.key for w in cfg.warnings if w.key == legacy] == [legacy]


def test_what_ansible_runs_sees_the_role_groups_and_the_operators_file_is_untouched(make_site, tmp_path) -> None:
    site = kubespray_site(make_site)
    before = (site / "hosts.ini").read_bytes()
    cfg = load(site)
    sources = inventory_sources(cfg.inventory, tmp_path / "work")
    assert sources == [str((site / "hosts.ini").resolve()), str((tmp_path / "work" / ALIAS_INVENTORY).resolve())]
    # ansible-playbook -i hosts.ini -i <kfinstall's groups>: Ansible's own parse of both sources.
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=sources)
    groups = manager.get_groups_dict()
    assert groups["kube_control_plane"] == ["node1"]
    assert sorted(groups["kube_node"]) == ["node2", "node3"]
    assert "bastion" not in {h for role in ROLE_GROUPS for h in groups.get(role, [])}
    assert (site / "hosts.ini").read_bytes() == before
    assert (tmp_path / "work" / ALIAS_INVENTORY).stat().st_mode & 0o077 == 0


def test_an_inventory_without_old_names_runs_on_its_file_alone(make_site, tmp_path) -> None:
    cfg = load(make_site())
    assert inventory_sources(cfg.inventory, tmp_path) == [str(cfg.inventory.path.resolve())]
    assert not (tmp_path / ALIAS_INVENTORY).exists()


def test_deepops_nfs_server_is_refused_with_the_rename_and_its_other_hosts_are_left_alone(make_site) -> None:
    with pytest.raises(InvalidConfig) as caught:
        load(ini_site(make_site, DEEPOPS))
    lines = caught.value.lines()
    errors = [line for line in lines if line.startswith("error:")]
    # The refusal, at the group's header, naming exactly the rename (and its consequence, no NFS server);
    # no "host is in no role group" wall, and the refused host is not said to be left alone.
    assert len(errors) == 2 and "no host is in nfs_server" in errors[1], "\n".join(lines)
    assert not any("left alone" in line for line in lines), "\n".join(lines)
    assert errors[0].startswith("error: hosts.ini:32:2: nfs-server: group nfs-server (1 host(s)) is not a role "
                                "group, and nfs_server is empty")
    assert "DeepOps' name" in errors[0] and errors[0].endswith("Fix: rename the group nfs-server to nfs_server")


def test_deepops_inventory_after_the_rename_validates_and_leaves_slurm_hosts_alone(make_site) -> None:
    cfg = load(ini_site(make_site, DEEPOPS.replace("[nfs-server]\nlogin01", "[nfs_server]\nmgmt01")))
    assert cfg.inventory.names("kube_control_plane") == ["mgmt01"]
    assert cfg.inventory.names("kube_node") == ["gpu01", "gpu02"]
    alone = [w.render() for w in cfg.warnings if w.key == "all"]
    assert alone == ["warning: hosts.ini:1:2: all: 1 host(s) in none of kfinstall's role groups but in groups of "
                     "other tools (Kubespray, DeepOps) are left alone: login01 (slurm-cluster, slurm-master). Fix: add "
                     f"a host to one of {', '.join(ROLE_GROUPS)} if kfinstall should manage it"]


def test_legacy_warnings_reach_validate_and_plan_as_json_with_their_line(make_site) -> None:
    site = kubespray_site(make_site)
    for argv in (["inventory", "validate"], ["plan"]):
        result = CliRunner().invoke(cli, [*argv, "-i", str(site), "--output", "json"])
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        found = document.get("problems", document.get("warnings"))
        (warning,) = [w for w in found if w.get("key") == "kube-master"]
        assert (warning["file"], warning["line"], warning["severity"]) == ("hosts.ini", 13, "warning")


def test_legacy_warnings_reach_up_before_anything_runs_text_and_json(make_site, kfinstall_streams) -> None:
    site = kubespray_site(make_site)
    # Off a terminal and without --yes, up asks nothing and changes nothing (exit 3): no host is contacted.
    code, out, err = kfinstall_streams("up", "-i", str(site), "--output", "json")
    assert code == 3, err
    (warning,) = [w for w in json.loads(out)["warnings"] if w["key"] == "kube-node"]
    assert (warning["file"], warning["line"], warning["column"]) == ("hosts.ini", 19, 2)
    assert "warning: hosts.ini:19:2: kube-node: group kube-node (2 host(s))" in err
    # The question up asks names the same place.
    assert "  warning: hosts.ini:19:2: group kube-node (2 host(s))" in err


def test_ansible_playbook_targets_the_legacy_groups_hosts_through_the_role_groups(make_site, tmp_path) -> None:
    """The site's own plays (hosts: kube_control_plane:kube_node), listed by ansible-playbook itself."""
    import subprocess
    import sys

    from installer.adapters.ansible import ansible_environment
    from installer.paths import data_dir

    cfg = load(kubespray_site(make_site))
    sources = inventory_sources(cfg.inventory, tmp_path / "work")
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), *[a for s in sources for a in ("-i", s)],
         str(data_dir("playbooks") / "50-kubernetes.yml"), "--list-hosts"],
        capture_output=True, text=True, timeout=120, check=False, env={**ansible_environment(), "HOME": str(tmp_path)},
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    hosts = {line.strip() for line in listed.stdout.splitlines() if line.startswith("      ")}
    assert hosts == {"node1", "node2", "node3"}, listed.stdout


def test_old_and_new_names_together_are_one_group_as_kubespray_makes_them(make_site) -> None:
    hosts = ("all:\n  hosts:\n    cp1: {ansible_host: 192.0.2.11}\n    cp2: {ansible_host: 192.0.2.12}\n"
             "    cp3: {ansible_host: 192.0.2.13}\n    n1: {ansible_host: 192.0.2.21}\n  children:\n"
             "    kube_control_plane: {hosts: {cp1: , cp2: }}\n    kube-master: {hosts: {cp2: , cp3: }}\n"
             "    kube_node: {hosts: {n1: }}\n    nfs_server: {hosts: {cp1: }}\n")
    cfg = load(make_site(hosts_text=hosts, cluster={"spec.kubernetes.controlPlaneEndpoint": "192.0.2.10"}))
    assert cfg.inventory.names("kube_control_plane") == ["cp1", "cp2", "cp3"]


def test_an_old_name_that_is_the_parent_of_the_new_one_with_more_hosts_is_refused(make_site) -> None:
    """Made a child, it would be its own ancestor: Ansible refuses the loop, kfinstall says what to move."""
    hosts = ("all:\n  hosts:\n    cp1: {ansible_host: 192.0.2.11}\n    n1: {ansible_host: 192.0.2.21}\n"
             "    n2: {ansible_host: 192.0.2.22}\n  children:\n"
             "    kube-node:\n      hosts: {n2: }\n      children:\n        kube_node: {hosts: {n1: }}\n"
             "    kube_control_plane: {hosts: {cp1: }}\n    nfs_server: {hosts: {cp1: }}\n")
    with pytest.raises(InvalidConfig) as caught:
        load(make_site(hosts_text=hosts))
    assert any(line.startswith("error: hosts.yml:7:5: kube-node: group kube-node is the parent of kube_node and "
                               "also holds n2") and line.endswith("Fix: move n2 into kube_node")
               for line in caught.value.lines()), caught.value.lines()


def test_reset_runs_see_the_role_groups_of_legacy_names_too(make_site, tmp_path) -> None:
    from installer import reset

    cfg = load(kubespray_site(make_site))
    sources = inventory_sources(reset._inventory(cfg), tmp_path)
    assert sources[-1] == str((tmp_path / ALIAS_INVENTORY).resolve())
