"""playbooks/upgrade.yml and backup.yml without hosts: syntax, play and task order, serial batches, lint."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
VENV_BIN = Path(sys.executable).parent
INVENTORY = {
    "all": {
        "hosts": {name: {"ansible_host": "127.0.0.1"} for name in ("cp1", "cp2", "cp3", "n1", "n2")},
        "children": {
            "kube_control_plane": {"hosts": {"cp1": None, "cp2": None, "cp3": None}},
            "kube_node": {"hosts": {"n1": None, "n2": None}},
        },
    }
}
PLAYS = [
    "Read the node runtime",
    "Check every node before the Kubernetes hop",
    "Upgrade the first control-plane host",
    "Upgrade the other control-plane hosts",
    "Upgrade the workers one at a time",
    "Change the node runtime one node at a time",
]


def _run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, env=env)


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[str]]]:
    """play name -> {"hosts": [...], "tasks": [...]} from `ansible-playbook --list-hosts --list-tasks`."""
    inventory = tmp_path_factory.mktemp("inv") / "hosts.yml"
    inventory.write_text(yaml.safe_dump(INVENTORY))
    result = _run(str(VENV_BIN / "ansible-playbook"), "--list-hosts", "--list-tasks", "-i", str(inventory),
                  "playbooks/upgrade.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    plays: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    section = ""
    for line in result.stdout.splitlines():
        play = re.match(r"^  play #\d+ \([^)]*\): (.*?)\tTAGS", line)
        if play:
            current = plays.setdefault(play.group(1), {"hosts": [], "tasks": []})
        elif line.startswith("    hosts ("):
            section = "hosts"
        elif line.strip() == "tasks:":
            section = "tasks"
        elif line.startswith("      ") and section:
            current[section].append(line.strip().split("\t")[0].split(" : ")[-1])
    return plays


@pytest.mark.parametrize("playbook", ["upgrade.yml", "backup.yml"])
def test_syntax(playbook: str) -> None:
    result = _run(str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", f"playbooks/{playbook}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_plays_run_control_planes_first_then_workers(listing) -> None:
    assert list(listing) == PLAYS
    assert listing["Upgrade the first control-plane host"]["hosts"] == ["cp1"]
    assert sorted(listing["Upgrade the other control-plane hosts"]["hosts"]) == ["cp2", "cp3"]
    assert sorted(listing["Upgrade the workers one at a time"]["hosts"]) == ["n1", "n2"]


def _index(tasks: list[str], phrase: str) -> int:
    return next(i for i, task in enumerate(tasks) if phrase in task)


def test_first_control_plane_plans_applies_then_drains_upgrades_uncordons(listing) -> None:
    tasks = listing["Upgrade the first control-plane host"]["tasks"]
    order = ["Point the package repository at the target minor", "Install kubeadm", "Plan the upgrade",
             "Apply the upgrade", "Drain the node", "Install kubelet and kubectl", "Restart the kubelet",
             "Wait until the node is Ready", "Uncordon the node"]
    assert [_index(tasks, phrase) for phrase in order] == sorted(_index(tasks, phrase) for phrase in order)
    assert not any("upgrade node" in t for t in tasks)


@pytest.mark.parametrize("play", ["Upgrade the other control-plane hosts", "Upgrade the workers one at a time"])
def test_other_nodes_run_kubeadm_upgrade_node_and_drain(listing, play: str) -> None:
    tasks = listing[play]["tasks"]
    order = ["Install kubeadm", "Upgrade the node's kubeadm configuration", "Drain the node",
             "Install kubelet and kubectl", "Restart the kubelet", "Uncordon the node"]
    assert [_index(tasks, phrase) for phrase in order] == sorted(_index(tasks, phrase) for phrase in order)
    assert not any("Apply the upgrade" in t for t in tasks)


def test_runtime_changes_drain_change_and_uncordon(listing) -> None:
    tasks = listing["Change the node runtime one node at a time"]["tasks"]
    order = ["Drain the node", "Change containerd", "Change the NVIDIA driver", "Reboot a GPU host", "Uncordon"]
    assert [_index(tasks, phrase) for phrase in order] == sorted(_index(tasks, phrase) for phrase in order)


def test_serial_batches_and_failure_limits() -> None:
    plays = {p["name"]: p for p in yaml.safe_load((PLAYBOOKS / "upgrade.yml").read_text())}
    for name in PLAYS[2:]:
        assert plays[name]["serial"] == 1, name
        assert plays[name].get("any_errors_fatal") or plays[name].get("max_fail_percentage") == 0, name
    assert plays["Check every node before the Kubernetes hop"]["any_errors_fatal"] is True
    assert plays["Upgrade the workers one at a time"]["hosts"] == "kube_node:!kube_control_plane"


def test_every_play_is_gated_by_the_action() -> None:
    expected = {"Read the node runtime": "facts", "Change the node runtime one node at a time": "runtime"}
    for play in yaml.safe_load((PLAYBOOKS / "upgrade.yml").read_text()):
        imports = [t for t in play["tasks"] if "ansible.builtin.import_role" in t]
        action = expected.get(play["name"], "kubernetes")
        assert imports and all(t["when"] == f"kf_upgrade_action | default('kubernetes') == '{action}'"
                               for t in imports), play["name"]


def test_drain_has_a_timeout_and_keeps_daemonsets() -> None:
    drain = yaml.safe_load((PLAYBOOKS / "roles" / "kube_upgrade" / "tasks" / "drain.yml").read_text())[0]
    command = drain["ansible.builtin.command"]
    assert "--ignore-daemonsets" in command and "--delete-emptydir-data" in command
    assert "--timeout={{ kube_upgrade_drain_timeout | int }}s" in command  # templated: test_kube_upgrade_drain.py


def test_backup_runs_on_the_first_control_plane_only() -> None:
    (play,) = yaml.safe_load((PLAYBOOKS / "backup.yml").read_text())
    assert play["hosts"] == "kube_control_plane[0]"
    assert [r["role"] for r in play["roles"]] == ["etcd_backup"]


@pytest.mark.slow
def test_ansible_lint_production_profile() -> None:
    result = _run(str(VENV_BIN / "ansible-lint"), "--profile", "production", "--nocolor", "playbooks/upgrade.yml",
                  "playbooks/backup.yml", timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
