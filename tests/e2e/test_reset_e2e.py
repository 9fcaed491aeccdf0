"""`kfinstall reset` of a Kubernetes worker on a real cluster (issue 15 item 4): the steps the lab cannot run
(no Kubernetes packages reach the lab hosts, so kubeadm is absent there and the kubernetes role's reset
is skipped by its guard). Destructive: the worker leaves the cluster, then `up` joins it again.

Preconditions (the test prints what is missing and skips):
- KFINSTALL_E2E_SITE: a site folder `kfinstall up` converged (kubeconfig in its state dir, kubectl on PATH);
- KFINSTALL_E2E_RESET_WORKER: a kube_node host (not a control plane, not the NFS server) to reset.

The lab tier (tests/lab/test_reset_lab.py) covers the rest on real hosts; the kubeadm, CNI and iptables
steps are checked without hosts in tests/playbooks/test_reset_playbook.py, with their upstream citations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from e2esite import need_env

pytestmark = pytest.mark.e2e

VENV_BIN = Path(sys.executable).parent
NOT_HERE = ("no Kubernetes cluster on this machine (Kubernetes packages cannot reach the lab hosts); set "
            "KFINSTALL_E2E_SITE to a converged site folder and KFINSTALL_E2E_RESET_WORKER to a worker to reset")


def _need() -> tuple[Path, str]:
    site, host = need_env(NOT_HERE, "KFINSTALL_E2E_SITE", "KFINSTALL_E2E_RESET_WORKER")
    return Path(site), host


def _kfinstall(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "kfinstall"), *args], capture_output=True, text=True, timeout=3600,
                          check=False)


def _on_host(site: Path, host: str, command: str) -> str:
    """A shell command on the host through Ansible, keys checked against the site's known_hosts."""
    from installer.adapters.ssh import HostKeyPolicy
    from installer.config.load import load

    env = {**os.environ, **HostKeyPolicy.of(load(site, need_secrets=False)).ansible_env()}
    done = subprocess.run([str(VENV_BIN / "ansible"), host, "-i", str(site / "hosts.yml"), "-b", "-m", "shell",
                           "-a", command], capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_reset_worker_leaves_the_cluster_and_up_joins_it_again() -> None:
    site, host = _need()
    done = _kfinstall("reset", "-i", str(site), "--limit", host, "--yes", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == "ok"
    state = _on_host(site, host, "test -e /etc/kubernetes/kubelet.conf && echo joined || echo gone; "
                                 "systemctl is-active kubelet || true; ls /etc/cni/net.d; "
                                 "iptables-save | grep -c -e KUBE- -e cali- || true")
    assert "gone" in state and "10-calico.conflist" not in state
    assert state.strip().splitlines()[-1] == "0"  # no kube-proxy or Calico rule left
    again = _kfinstall("up", "-i", str(site), "--limit", host, "--yes", "-o", "json")
    assert again.returncode == 0, again.stderr
    assert "joined" in _on_host(site, host, "test -e /etc/kubernetes/kubelet.conf && echo joined || echo gone")
