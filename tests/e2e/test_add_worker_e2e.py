"""Adding a worker to a running cluster with `kfinstall up --limit NEW` (issue 15 item 1): the Kubernetes join.

Preconditions (the test prints what is missing and skips):
- KFINSTALL_E2E_SITE: a site folder `kfinstall up` converged (kubeconfig in its state dir, kubectl on PATH);
- KFINSTALL_E2E_NEW_WORKER: a host already added to that site's hosts.yml under kube_node, prepared like the
  others (SSH, passwordless sudo) and not yet converged.

On this project's build machine there is no Kubernetes cluster (no Kubernetes packages reach the lab hosts,
see tests/e2e/test_kubernetes_e2e.py), so it skips here with that reason. What runs here: the host steps of
the same flow on lab hosts (tests/lab/test_up_limit_lab.py) and the limit, refusals and record in
tests/unit/test_up_limit.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2esite import need_env

pytestmark = pytest.mark.e2e

KF = str(Path(sys.executable).parent / "kfinstall")
NOT_HERE = ("no Kubernetes cluster on this machine (Kubernetes packages cannot reach the lab hosts); set "
            "KFINSTALL_E2E_SITE to a converged site folder and KFINSTALL_E2E_NEW_WORKER to a host added to its "
            "hosts.yml under kube_node")


def _need() -> tuple[Path, str]:
    site, host = need_env(NOT_HERE, "KFINSTALL_E2E_SITE", "KFINSTALL_E2E_NEW_WORKER")
    return Path(site), host


def _kf(site: Path, *args: str) -> dict:  # type: ignore[type-arg]
    done = subprocess.run([KF, *args, "-i", str(site), "-o", "json"], capture_output=True, text=True,
                          timeout=3600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_new_worker_joins_and_no_other_host_runs_a_task() -> None:
    site, host = _need()
    plan = _kf(site, "plan", "--limit", host)
    assert plan["limit"]["added"] == [host] and plan["limit"]["refusals"] == []
    report = _kf(site, "up", "--limit", host, "--yes")
    assert sorted(report["hosts"]) == [host] and report["result"] == "ok", report
    from installer.adapters.kube import site_kubectl
    from installer.config.load import load

    kubectl = site_kubectl(load(site, need_secrets=False))
    nodes = kubectl.json("get", "nodes")["items"]
    ready = {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in n["status"]["conditions"]) for n in nodes}
    assert ready.get(host) is True, ready
    again = _kf(site, "up", "--limit", host, "--yes")
    assert again["hosts"][host]["changed"] == 0, again["hosts"]
