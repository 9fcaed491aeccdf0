"""What `kfinstall plan` pays for before it plans (issue 13 benchmark: plan <= 1.2 x ansible-inventory
on 1,000 hosts). Behaviour only, no timings: the work that was removed is not done, and what it
guarded still holds."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.config import inventory as inventory_module
from installer.config.problems import Problems

HOSTS = {
    "all": {
        "hosts": {f"node{i}": {"ansible_host": f"10.0.0.{i + 1}", "ansible_port": 2200 + i} for i in range(4)},
        "children": {
            "kube_control_plane": {"hosts": {"node0": None}},
            "kube_node": {"hosts": {"node1": None, "node2": None, "node3": None}},
        },
    }
}


def _site(tmp_path: Path) -> Path:
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(yaml.safe_dump(HOSTS, sort_keys=False))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "kube_node.yml").write_text("ansible_user: ops\n")
    return hosts


def test_the_inventory_file_is_parsed_without_a_deep_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ansible deep-copies what it parses to keep its file cache pristine; hosts.yml is read uncached,
    so that copy (a fifth of the parse on 1,000 hosts) is skipped, and every host and value still arrives."""
    from ansible.parsing import dataloader

    copied: list[Any] = []

    class CountingCopy:
        @staticmethod
        def deepcopy(value: Any) -> Any:
            if isinstance(value, dict) and "all" in value:
                copied.append(value)
            return copy.deepcopy(value)

    monkeypatch.setattr(dataloader, "copy", CountingCopy)
    problems = Problems()
    parsed = inventory_module.load_inventory(_site(tmp_path), "hosts.yml", problems)
    assert parsed is not None and not problems.errors, problems
    assert copied == [], "hosts.yml was deep-copied although no cache holds it"
    by_name = {host.name: host for host in parsed.hosts}
    assert sorted(by_name) == ["node0", "node1", "node2", "node3"]
    assert [by_name[f"node{i}"].port for i in range(4)] == [2200, 2201, 2202, 2203]
    assert by_name["node3"].ssh.user == "ops"  # group_vars/ still reached through Ansible's variable manager


def test_a_cached_file_is_still_handed_out_as_a_copy(tmp_path: Path) -> None:
    """The skipped copy is only the uncached one: a file Ansible caches (group_vars) stays pristine."""
    _site(tmp_path)
    _, loader = inventory_module._parse_with_ansible(tmp_path / "hosts.yml")
    vars_file = str(tmp_path / "group_vars" / "kube_node.yml")
    first = loader.load_from_file(vars_file)
    first["ansible_user"] = "changed"
    assert loader.load_from_file(vars_file)["ansible_user"] == "ops"


def test_a_site_without_its_own_certificate_never_loads_x509(tmp_path: Path) -> None:
    """`cryptography.x509` (~0.1 s) is imported by tlsfiles' parsing functions only: the plan of a site
    without spec.networking.tls.certFile does not import it (the TLS checks: tests/unit/test_tls_config.py)."""
    repo = Path(__file__).resolve().parents[2]
    site = tmp_path / "site"
    init = subprocess.run([sys.executable, "-m", "installer", "init", "--profile", "lab", str(site)],
                          capture_output=True, text=True, check=False, cwd=repo)
    assert init.returncode == 0, init.stderr
    probe = (
        "import sys\nfrom installer.cli import cli\n"
        f"cli.main(['plan', '-o', 'json', '-i', {str(site)!r}], standalone_mode=False)\n"
        "sys.stderr.write('x509 loaded' if 'cryptography.x509' in sys.modules else 'x509 not loaded')"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["phases"], "plan printed its document"
    assert done.stderr.endswith("x509 not loaded")
