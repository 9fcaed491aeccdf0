"""`kfinstall verify` without a cluster: it stops before any check and names what is missing."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from stackhelpers import CHANNELS

from installer.cli.verify import verify as verify_command
from installer.config.resolved import ClusterConfig
from installer.errors import PreflightError
from installer.verify import preflight


def test_no_kubectl_and_no_kubeconfig(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    cfg = renders.config("bare-metal", CHANNELS[-1])
    with pytest.raises(PreflightError) as caught:
        preflight(cfg)
    message = caught.value.message
    assert caught.value.exit_code == 3
    assert "kubectl not found on PATH" in message
    assert f"no kubeconfig at {cfg.state_dir / 'kubeconfig'}" in message


def test_gcp_names_the_get_credentials_command(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = renders.config("gcp", CHANNELS[-1])
    with pytest.raises(PreflightError, match=f"gcloud container clusters get-credentials {cfg.name}"):
        preflight(cfg)


def test_unreachable_api_server(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubectl = tmp_path / "kubectl"
    said = "Unable to connect to the server: dial tcp 192.0.2.1:6443: i/o timeout"
    kubectl.write_text(f"#!/bin/sh\necho '{said}' >&2\nexit 1\n")
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    cfg = _with_kubeconfig(renders.config("bare-metal", CHANNELS[-1]), tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PreflightError, match="does not answer .*i/o timeout"):
        preflight(cfg)


def test_verify_command_exits_3_through_the_cli(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = renders.config("bare-metal", CHANNELS[-1]).site
    with pytest.raises(PreflightError):
        CliRunner().invoke(verify_command, ["-i", str(site), "--demo", "--output", "json"], catch_exceptions=False)


FAKE_KUBECTL = r'''#!{python}
"""A stand-in kubectl: answers from a JSON table keyed by the arguments after the global flags."""
import json, sys
args = [a for a in sys.argv[1:] if not a.startswith("--request-timeout=")]
if args[:1] == ["--kubeconfig"]:
    args = args[2:]
table = json.load(open({table!r}))
key = " ".join(args)
for prefix, answer in table.items():
    if key.startswith(prefix):
        sys.stdout.write(answer if isinstance(answer, str) else json.dumps(answer))
        sys.exit(0)
sys.stderr.write("fake kubectl: no answer for " + key + "\n")
sys.exit(1)
'''


def _with_kubeconfig(cfg: ClusterConfig, tmp_path: Path) -> ClusterConfig:
    """`cfg` with a state dir of its own holding a kubeconfig (the shared render's state dir stays empty)."""
    cfg = dataclasses.replace(cfg, state_dir=tmp_path / "state")
    cfg.state_dir.mkdir()
    (cfg.state_dir / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    return cfg


def _cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpus: str, dcgm: list) -> None:
    import json
    import sys

    node = {"metadata": {"name": "gpu1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                      "allocatable": {"nvidia.com/gpu": gpus}}}
    default = {"metadata": {"name": "nfs", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}
    table = {
        "version": {"serverVersion": {"gitVersion": "v1"}},
        "get nodes": {"items": [node]},
        "get storageclass": {"items": [default, {"metadata": {"name": "gluster-rwx"}}]},
        "get --raw /api/v1/namespaces/jupyterhub/": "<html><form action='/hub/login'></form></html>",
        "get --raw /api/v1/namespaces/monitoring/": {"data": {"result": dcgm}},
        "get --raw /api/v1/namespaces/kubeflow-user/": {"model_version_status": [{"state": "AVAILABLE"}]},
        "get deployment tf-serving -n kubeflow-user": {"status": {"conditions": [
            {"type": "Available", "status": "True"}]}},
        "apply --server-side": "applied",
        "get tfjob issue-summarization": {"status": {"conditions": [{"type": "Succeeded", "status": "True"}]}},
        "get pytorchjob pytorchjob-smoke": {"status": {"conditions": [{"type": "Succeeded", "status": "True"}]}},
        "create --raw /api/v1/namespaces/kubeflow-user/": {"predictions": ["Export button 500 error"]},
    }
    (tmp_path / "table.json").write_text(json.dumps(table))
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable, table=str(tmp_path / "table.json")))
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))


def test_checks_pass_on_a_healthy_cluster(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from installer.verify import verify

    _cluster(tmp_path, monkeypatch, gpus="2", dcgm=[{"metric": {"gpu": "0"}}, {"metric": {"gpu": "1"}}])
    report = verify(_with_kubeconfig(renders.config("private-gpu", CHANNELS[-1]), tmp_path))
    assert report.ok, report.as_dict()
    details = {c.name: c.detail for c in report.checks}
    assert details["gpus-allocatable"] == "2 GPU(s) allocatable"
    assert details["default-storage-class"] == "default StorageClass nfs"
    assert details["dcgm-metrics"] == "2 GPU series in Prometheus"
    assert details["serving-answers"] == "tf-serving Available; model issue-summarization AVAILABLE"


def test_checks_name_what_is_wrong(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from installer.verify import verify

    _cluster(tmp_path, monkeypatch, gpus="0", dcgm=[])
    report = verify(_with_kubeconfig(renders.config("private-gpu", CHANNELS[-1]), tmp_path))
    failed = {c.name: c.detail for c in report.checks if c.status == "failed"}
    assert set(failed) == {"gpus-allocatable", "dcgm-metrics"}
    assert "no node advertises nvidia.com/gpu" in failed["gpus-allocatable"]
    assert not report.ok


def test_demo_trains_and_asks_for_a_title(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from installer.verify import verify

    _cluster(tmp_path, monkeypatch, gpus="1", dcgm=[{"metric": {"gpu": "0"}}])
    report = verify(_with_kubeconfig(renders.config("private-gpu", CHANNELS[-1]), tmp_path), demo=True)
    assert report.ok, report.as_dict()
    details = {c.name: c.detail for c in report.checks}
    assert details["tfjob-completes"] == "tfjob issue-summarization Succeeded"
    assert details["pytorchjob-completes"] == "pytorchjob pytorchjob-smoke Succeeded"
    assert details["serving-answers"] == "predicted title: 'Export button 500 error'"


def _edit_table(tmp_path: Path, **changes: object) -> None:
    import json

    table = json.loads((tmp_path / "table.json").read_text())
    for key, value in changes.items():
        prefix = {"serving": "get --raw /api/v1/namespaces/kubeflow-user/",
                  "deployment": "get deployment tf-serving -n kubeflow-user"}[key]
        if value is None:
            del table[prefix]
        else:
            table[prefix] = value
    (tmp_path / "table.json").write_text(json.dumps(table))


def test_a_fresh_platform_with_no_model_passes(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any training tf-serving answers 404 for the model (tensorflow/serving
    get_model_status_impl.cc: 'Could not find any versions of model'): that is healthy, not a failure."""
    from installer.verify import verify

    _cluster(tmp_path, monkeypatch, gpus="1", dcgm=[{"metric": {"gpu": "0"}}])
    _edit_table(tmp_path, serving=None)
    report = verify(_with_kubeconfig(renders.config("private-gpu", CHANNELS[-1]), tmp_path))
    assert report.ok, report.as_dict()
    detail = {c.name: c.detail for c in report.checks}["serving-answers"]
    assert detail == "tf-serving Available; no version of model issue-summarization yet (train one: verify --demo)"


def test_serving_not_available_fails(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from installer.verify import verify

    _cluster(tmp_path, monkeypatch, gpus="1", dcgm=[{"metric": {"gpu": "0"}}])
    _edit_table(tmp_path, deployment={"status": {"conditions": [{"type": "Available", "status": "False"}]}})
    report = verify(_with_kubeconfig(renders.config("private-gpu", CHANNELS[-1]), tmp_path))
    failed = {c.name: c.detail for c in report.checks if c.status == "failed"}
    assert failed == {"serving-answers": "deployment tf-serving is not Available (see `kubectl -n kubeflow-user "
                                          "describe deployment tf-serving`)"}
