"""The kubernetes role's join (tasks/0040-join.yml) under `up --limit` (issue 15 items 1 and 3), run for real.

Under `ansible-playbook --limit`, hosts outside the limit run no task, so nothing they would register
(`_kubernetes_joined`) exists in hostvars for them; `groups` still lists every inventory host. A
condition that reads a registered variable of every control plane therefore fails as soon as one control
plane is outside the limit, i.e. on every HA site (3 control planes) when a worker is added with
`up --limit NEW` or a failed control plane is replaced with `up --limit NEWCP`.

Everything runs on the controller with a local connection and a stand-in kubeadm on PATH (it logs its
argv and prints what the real one prints for these calls); no cluster, nothing written outside tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
VENV_BIN = Path(sys.executable).parent
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
FAKE_KUBEADM = """#!/bin/sh
echo "$@" >> "{log}"
case "$*" in
  "token create"*)echo "kubeadm join 192.0.2.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash x";;
  "init phase upload-certs"*) echo "[upload-certs] Using certificate key:"; echo "0123456789abcdef" ;;
esac
"""


def _join_run(tmp_path: Path, control: list[str], workers: list[str], joined: list[str],
              limit: str | None) -> tuple[dict[str, Any], list[str]]:
    """(task name -> {host: result}, the stand-in kubeadm's calls) of one run of 0040-join.yml.

    `joined`: the hosts already in the cluster (their kubelet.conf exists); a file per host stands for it."""
    inventory = {"all": {"hosts": {h: {**LOCAL, "ansible_host": "192.0.2.1"} for h in control + workers},
                         "children": {"kube_control_plane": {"hosts": dict.fromkeys(control)},
                                      "kube_node": {"hosts": dict.fromkeys(workers)}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    for host in joined:
        (tmp_path / f"{host}.kubelet.conf").write_text("")
    play = [{"name": "Join", "hosts": "kube_control_plane:kube_node", "gather_facts": False, "tasks": [
        {"name": "Test | Whether this host is in the cluster", "ansible.builtin.stat": {
            "path": str(tmp_path) + "/{{ inventory_hostname }}.kubelet.conf"}, "register": "_kubernetes_joined"},
        {"name": "Test | Join", "ansible.builtin.import_role": {"name": "kubernetes", "tasks_from": "0040-join.yml"}},
    ]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    kubeadm = bindir / "kubeadm"
    kubeadm.write_text(FAKE_KUBEADM.format(log=tmp_path / "kubeadm.log"))
    kubeadm.chmod(0o755)
    # No kube-vip manifest is written here (it goes to /etc/kubernetes): the HA switch is off for the test.
    extra = {"_kubernetes_ha": False}
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
           "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
           "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_FORKS": "1", "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                             "-e", json.dumps(extra), *(["--limit", limit] if limit else []),
                             str(tmp_path / "play.yml")],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    log = tmp_path / "kubeadm.log"
    calls = log.read_text().splitlines() if log.exists() else []
    return {t["task"]["name"].split(" : ")[-1]: t["hosts"] for t in tasks}, calls


@pytest.mark.slow
def test_a_worker_added_with_limit_joins_an_ha_site(tmp_path: Path) -> None:
    """3 control planes outside the limit: the new worker gets a join command, no certificate upload."""
    tasks, calls = _join_run(tmp_path, ["cp1", "cp2", "cp3"], ["n1", "n4"], ["cp1", "cp2", "cp3", "n1"], "n4")
    assert calls[0] == "token create --print-join-command --ttl 30m" and len(calls) == 2
    assert calls[1].startswith("join 192.0.2.10:6443 --token") and "--control-plane" not in calls[1]
    assert set(tasks["Kubernetes | Join as a worker"]) == {"n4"}


@pytest.mark.slow
def test_a_replacement_control_plane_joins_with_limit(tmp_path: Path) -> None:
    """The runbook's step 3 (docs/operations.md "Replacing a failed control plane"): cp4 joins as a control
    plane with the certificate key uploaded through cp1, while cp1 and cp2 run nothing of their own."""
    tasks, calls = _join_run(tmp_path, ["cp1", "cp2", "cp4"], ["n1"], ["cp1", "cp2", "n1"], "cp4")
    assert calls[:2] == ["token create --print-join-command --ttl 30m", "init phase upload-certs --upload-certs"]
    assert len(calls) == 3 and calls[2].startswith("join 192.0.2.10:6443 --token")
    assert calls[2].endswith(
        "--control-plane --certificate-key 0123456789abcdef --apiserver-advertise-address 192.0.2.1")
    assert set(tasks["Kubernetes | Join as a control plane"]) == {"cp4"}


def test_under_limit_only_the_limited_hosts_nodes_are_waited_for(tmp_path: Path) -> None:
    """The CNI step's wait for Ready nodes (tasks/0050-cni.yml), run for real under --limit n4: it asks about
    n4's Node alone (as `node/NAME`, never read as an option), so a Node of another host that is down for
    repair does not fail the run that adds a worker; a full run asks about every host's Node."""
    tasks = yaml.safe_load((PLAYBOOKS / "roles/kubernetes/tasks/0050-cni.yml").read_text())
    wait = [t for t in tasks if "Ready" in t["name"]]
    assert len(wait) == 1
    inventory = {"all": {"hosts": {h: LOCAL for h in ("cp1", "n1", "n4")},
                         "children": {"kube_control_plane": {"hosts": {"cp1": None}},
                                      "kube_node": {"hosts": {"n1": None, "n4": None}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path / "kubectl.log"}"\n')
    kubectl.chmod(0o755)
    play = [{"name": "Wait", "hosts": "kube_control_plane:kube_node", "gather_facts": False,
             "vars": {"_kubernetes_kubectl": str(kubectl), "_kubernetes_first_control_plane": "cp1",
                      "_kubernetes_node_name": "{{ inventory_hostname }}", "kubernetes_node_ready_timeout": 5},
             "tasks": wait}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = {**os.environ, "ANSIBLE_FORKS": "1", "ANSIBLE_NOCOLOR": "1"}
    for limit, nodes in (("n4", ["node/n4"]), (None, ["node/cp1", "node/n1", "node/n4"])):
        log = tmp_path / "kubectl.log"
        log.unlink(missing_ok=True)
        result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                                 *(["--limit", limit] if limit else []), str(tmp_path / "play.yml")],
                                cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        calls = sorted(log.read_text().splitlines())
        assert calls == [f"wait --for=condition=Ready {node} --timeout=5s" for node in nodes], calls
