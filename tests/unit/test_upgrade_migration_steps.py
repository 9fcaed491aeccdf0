"""How a platform hop runs its migrations' commands (installer/upgrade/migration_steps.py).

kubectl goes through the site's one door (installer.adapters.kube: STATE/kubeconfig, request timeout,
no shell, the stop flag); a command that runs out of time refuses or fails the hop with a message,
never a traceback.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from installer.adapters import kube
from installer.config.load import load
from installer.errors import PhaseFailed, PreflightError
from installer.phases.base import RunContext
from installer.runs import RunRecord
from installer.upgrade import migration_steps
from installer.upgrade.facts import ClusterFacts, NodeFacts, Z2jhSettings
from installer.upgrade.migration_table import POD_SECURITY
from installer.upgrade.route import plan_route


def _facts() -> ClusterFacts:
    node = NodeFacts("cp1", True, True, "v1.34.3", "2.1.4", 2, True)
    return ClusterFacts(nodes=(node,), apiserver_versions=("v1.34.3",), z2jh=Z2jhSettings("escape", True))


def test_the_pod_security_check_asks_the_sites_cluster_through_the_kube_door(make_site, monkeypatch) -> None:
    calls: list[list[str]] = []

    def door(argv, **kwargs):  # noqa: ANN001, ANN003, ANN202 - stands in for kubectl
        calls.append(list(argv))
        answer = "namespace/jupyterhub\n" if "get" in argv else ""
        return subprocess.CompletedProcess(argv, 0, answer, "")

    monkeypatch.setattr(kube, "run_argv", door)
    monkeypatch.setenv("KUBECONFIG", "/elsewhere/kubeconfig")
    cfg = load(make_site({"spec.channel": "26.03.1", "spec.kubernetes.version": "1.34"}))
    hop = plan_route("26.03", "1.34", "26.03.1").hops[0]
    hop = type(hop)(**{**hop.__dict__, "migrations": (POD_SECURITY,)})
    ctx = RunContext(cfg=cfg, record=RunRecord.start(cfg, "test"), console=Console(file=io.StringIO()))
    migration_steps.run_migrations(ctx, hop, cfg, _facts(), levels=lambda ctx, hop: {"jupyterhub": "baseline"})
    site_kubeconfig = str(kube.kubeconfig_path(cfg))
    assert [c[:3] for c in calls] == [["kubectl", "--kubeconfig", site_kubeconfig]] * 2
    assert calls[1][3:5] == ["label", "--dry-run=server"]
    notes = json.loads((ctx.record.path / "migrations-hop-01.json").read_text())
    assert notes == {POD_SECURITY: {"jupyterhub": "baseline"}}


def test_kubectl_that_does_not_answer_refuses_the_hop_with_a_message(tmp_path: Path, monkeypatch) -> None:
    def silent(argv, **kwargs):  # noqa: ANN001, ANN003, ANN202 - kubectl past its timeout
        raise subprocess.TimeoutExpired(argv, kwargs["timeout_s"])

    monkeypatch.setattr(kube, "run_argv", silent)
    with pytest.raises(PreflightError, match="Pod Security check: cannot list namespaces: no answer within 120 s"):
        migration_steps.pod_security_check({"kubeflow": "restricted"}, tmp_path / "kubeconfig",
                                           migration_steps._probe)


def test_helm_that_runs_out_of_time_fails_the_hop_with_a_message(monkeypatch) -> None:
    def slow(argv, **kwargs):  # noqa: ANN001, ANN003, ANN202 - helm past its timeout
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    monkeypatch.setattr(migration_steps.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(migration_steps, "run_child", slow)
    with pytest.raises(PhaseFailed, match="helm pull kube-prometheus-stack failed: no answer within 600 s"):
        migration_steps._command(["helm", "pull", "kube-prometheus-stack", "--version", "x"])
