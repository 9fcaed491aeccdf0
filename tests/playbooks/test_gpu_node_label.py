"""The kubernetes role's GPU node label (tasks/0055-gpu-label.yml), run for real against a stand-in kubectl.

The label is what the bare device plugin's RuntimeClass `nvidia` schedules on (stacks/gpu.py), so it must
be on exactly the nodes whose containerd has the `nvidia` runtime: the containerd role adds it on hosts
in group `gpu` when kf_gpu_enabled (playbooks/roles/containerd/defaults/main.yml
containerd_nvidia_runtime). Everything runs on the controller with a local connection; no cluster.
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

from stacks.gpu import GPU_NODE_LABEL

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
VENV_BIN = Path(sys.executable).parent
INVENTORY = {
    "all": {
        "hosts": {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
                  for name in ("cp1", "gpu1", "cpu1")},
        "children": {
            "kube_control_plane": {"hosts": {"cp1": None}},
            "kube_node": {"hosts": {"gpu1": None, "cpu1": None}},
            "gpu": {"hosts": {"gpu1": None}},
        },
    }
}
PLAY = [{"name": "Label", "hosts": "kube_control_plane:kube_node", "gather_facts": True, "tasks": [
    {"name": "Test | Label the GPU nodes", "ansible.builtin.import_role": {
        "name": "kubernetes", "tasks_from": "0055-gpu-label.yml"}}]}]
# Answers as kubectl does: a label added or changed, or nothing to do for a removal of an absent label.
FAKE_KUBECTL = """#!/bin/sh
echo "$@" >> "{log}"
case "$*" in
  *=true*) echo "node/$3 labeled" ;;
  *) echo "label \\"$(echo "$4" | sed 's/-$//')\\" not found."; echo "node/$3 not labeled" ;;
esac
"""


def _label_run(tmp_path: Path, gpu_enabled: bool, nodename: str | None = None) -> dict[str, dict[str, Any]]:
    """host -> the label task's result, from one ansible-playbook run with the json callback.

    `nodename`: the hostname every host reports (a play var; facts are not gathered then)."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(INVENTORY))
    play = PLAY if nodename is None else [
        {**PLAY[0], "gather_facts": False, "vars": {"ansible_facts": {"nodename": nodename}}}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(log=tmp_path / "calls.log"))
    kubectl.chmod(0o755)
    extra = {"kf_gpu_enabled": gpu_enabled, "_kubernetes_kubectl": str(kubectl)}
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"), "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_FORKS": "1", "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                             "-e", json.dumps(extra), str(tmp_path / "play.yml")],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    tasks = json.loads(result.stdout)["plays"][0]["tasks"]
    label = next(t for t in tasks if "NVIDIA runtime" in t["task"]["name"])
    return label["hosts"]


@pytest.mark.slow
def test_only_gpu_hosts_carry_the_label(tmp_path: Path) -> None:
    key, value = GPU_NODE_LABEL
    hosts = _label_run(tmp_path, gpu_enabled=True)
    assert hosts["gpu1"]["cmd"][-2:] == [f"{key}={value}", "--overwrite"]
    assert hosts["gpu1"]["changed"] is True
    for other in ("cp1", "cpu1"):
        assert hosts[other]["cmd"][-1] == f"{key}-", other
        assert hosts[other]["changed"] is False, other  # "not labeled": the label was not there


@pytest.mark.slow
def test_gpu_support_off_takes_the_label_off_everywhere(tmp_path: Path) -> None:
    key, _ = GPU_NODE_LABEL
    hosts = _label_run(tmp_path, gpu_enabled=False)
    removals = {name: result["cmd"][-1] for name, result in hosts.items()}
    assert removals == {name: f"{key}-" for name in ("cp1", "gpu1", "cpu1")}


@pytest.mark.slow
def test_the_label_names_the_node_as_kubeadm_registered_it(tmp_path: Path) -> None:
    """A host whose hostname has capitals or stray space is labelled under the name kubeadm gave its node.

    kubeadm (no nodeRegistration.name in templates/kubeadm-config.yaml.j2 or on `kubeadm join`) and the
    kubelet name the node nodeutil.GetHostname(""): os.Hostname, TrimSpace, then strings.ToLower
    (kubernetes/kubernetes staging/src/k8s.io/component-helpers/node/util/hostname.go, called from
    cmd/kubeadm/app/util/config SetNodeRegistrationDynamicDefaults). ansible_facts.nodename is uname's
    nodename as it is, so `kubectl label node GPU-01` answered NotFound and failed the play.
    """
    key, value = GPU_NODE_LABEL
    hosts = _label_run(tmp_path, gpu_enabled=True, nodename=" GPU-01.Example ")
    assert hosts["gpu1"]["cmd"][-3:] == ["gpu-01.example", f"{key}={value}", "--overwrite"]


def test_every_kubectl_call_on_a_node_uses_the_registered_name() -> None:
    """The control-plane untaint (0050-cni.yml) named the node by uname's nodename too: for a capitalised
    hostname kubectl answered NotFound, which that task's failed_when ignores ('not found'), so a control
    plane that is also a worker silently kept its NoSchedule taint. Each kubectl call that names a node
    uses _kubernetes_node_name (GetHostname's trimmed, lower-cased name, see the test above)."""
    tasks = sorted((PLAYBOOKS / "roles" / "kubernetes" / "tasks").glob("*.yml"))
    naming = [path.name for path in tasks if "nodename" in path.read_text()]
    assert naming == [], f"kubectl names a node by ansible_facts.nodename in {naming}"
    role_vars = yaml.safe_load((PLAYBOOKS / "roles" / "kubernetes" / "vars" / "main.yml").read_text())
    assert role_vars["_kubernetes_node_name"].replace(" ", "") == "{{ansible_facts.nodename|trim|lower}}"
