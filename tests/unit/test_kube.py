"""installer.adapters.kube: one kubeconfig per site, whatever the shell says, and one way to run kubectl."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from installer.adapters import kube
from installer.config.load import load
from installer.errors import Interrupted, PreflightError
from installer.interrupt import interrupt_sets

# A stand-in kubectl: logs its argv (one JSON list a line), then behaves as KUBECTL_MODE says.
FAKE_KUBECTL = r'''#!{python}
import json, os, sys, time
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
mode = open({mode!r}).read().strip()
if mode == "fail":
    sys.stderr.write("W1130 12:00:00 a warning first\nerror: the server doesn't have a resource type \"nope\"\n")
    sys.exit(1)
if mode == "sleep":
    time.sleep(30)
sys.stdout.write(json.dumps({{"serverVersion": {{"gitVersion": "v1.34.2"}}}}))
'''


class FakeKubectl:
    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log, self.mode = folder / "kubectl.log", folder / "kubectl.mode"
        self.set_mode("ok")
        script = folder / "kubectl"
        script.write_text(FAKE_KUBECTL.format(python=sys.executable, log=str(self.log), mode=str(self.mode)))
        script.chmod(0o755)
        monkeypatch.setenv("PATH", str(folder))

    def set_mode(self, mode: str) -> None:
        self.mode.write_text(mode)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def _kubeconfig_in(argv: list[str]) -> str:
    """The kubeconfig a kubectl call named (`--kubeconfig PATH` or `--kubeconfig=PATH`)."""
    for i, arg in enumerate(argv):
        if arg == "--kubeconfig":
            return argv[i + 1]
        if arg.startswith("--kubeconfig="):
            return arg.removeprefix("--kubeconfig=")
    return "$KUBECONFIG or ~/.kube/config"


@pytest.fixture
def fake_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    folder = tmp_path / "bin"
    folder.mkdir()
    return FakeKubectl(folder, monkeypatch)


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An operator's shell that points $KUBECONFIG at another cluster."""
    other = tmp_path / "other-cluster.kubeconfig"
    other.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(other))
    return other


def _site_kubeconfig(cfg) -> Path:  # noqa: ANN001 - a ClusterConfig
    path = cfg.state_dir / "kubeconfig"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("apiVersion: v1\nkind: Config\n")
    return path


def test_verify_talks_to_the_sites_cluster_whatever_kubeconfig_says(make_site, fake_kubectl, elsewhere) -> None:
    from installer.verify import preflight

    cfg = load(make_site(), need_secrets=False)
    site = _site_kubeconfig(cfg)
    preflight(cfg)
    assert [_kubeconfig_in(argv) for argv in fake_kubectl.calls()] == [str(site)]


def test_verify_refuses_without_the_sites_kubeconfig_even_when_kubeconfig_is_set(make_site, fake_kubectl,
                                                                                   elsewhere) -> None:
    from installer.verify import preflight

    cfg = load(make_site(), need_secrets=False)
    with pytest.raises(PreflightError) as refused:
        preflight(cfg)
    assert f"no kubeconfig at {cfg.state_dir / 'kubeconfig'}: run `kfinstall up -i {cfg.site}`" in refused.value.message
    assert str(elsewhere) not in refused.value.message
    assert fake_kubectl.calls() == []  # nothing asked of any cluster


def test_backup_and_upgrade_read_the_sites_cluster(make_site, fake_kubectl, elsewhere) -> None:
    from installer.upgrade.facts import kubectl_runner

    cfg = load(make_site(), need_secrets=False)
    site = _site_kubeconfig(cfg)
    kubectl_runner(cfg)(["get", "nodes", "-o", "json"])
    assert [_kubeconfig_in(argv) for argv in fake_kubectl.calls()] == [str(site)]


def test_the_platform_phase_uses_the_same_path(make_site) -> None:
    from installer.adapters.pulumi import _kubeconfig_problem

    cfg = load(make_site(), need_secrets=False)
    assert _kubeconfig_problem(cfg) == [f"no kubeconfig at {kube.kubeconfig_path(cfg)}: {kube.kubeconfig_fix(cfg)}"]
    _site_kubeconfig(cfg)
    assert _kubeconfig_problem(cfg) == []


def test_no_kubectl_and_no_kubeconfig_are_both_named(make_site, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    cfg = load(make_site(), need_secrets=False)
    with pytest.raises(PreflightError) as refused:
        kube.site_kubectl(cfg)
    assert refused.value.exit_code == 3
    assert refused.value.message.startswith("no cluster reachable: kubectl not found on PATH")
    assert f"no kubeconfig at {cfg.state_dir / 'kubeconfig'}" in refused.value.message


def test_arguments_reach_kubectl_as_they_are_with_a_request_timeout(make_site, fake_kubectl, tmp_path: Path) -> None:
    cfg = load(make_site(), need_secrets=False)
    _site_kubeconfig(cfg)
    planted = tmp_path / "planted"
    kube.site_kubectl(cfg).run("get", f"ns; touch {planted}", f"$(touch {planted})")
    (argv,) = fake_kubectl.calls()
    assert argv[0] == f"--request-timeout={kube.REQUEST_TIMEOUT}"
    assert argv[-2:] == [f"ns; touch {planted}", f"$(touch {planted})"]
    assert not planted.exists()  # no shell ever saw them


def test_a_failure_carries_kubectls_last_line(make_site, fake_kubectl) -> None:
    cfg = load(make_site(), need_secrets=False)
    _site_kubeconfig(cfg)
    fake_kubectl.set_mode("fail")
    with pytest.raises(kube.KubectlFailed) as failed:
        kube.site_kubectl(cfg).run("get", "nope")
    assert failed.value.said == 'error: the server doesn\'t have a resource type "nope"'
    assert failed.value.command == "kubectl get nope"


def test_a_silent_kubectl_times_out(make_site, fake_kubectl) -> None:
    cfg = load(make_site(), need_secrets=False)
    fake_kubectl.set_mode("sleep")
    kubectl = kube.Kubectl(_site_kubeconfig(cfg), timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(kube.KubectlFailed, match=r"no answer within 0\.5 s"):
        kubectl.run("get", "nodes")
    assert time.monotonic() - started < 10


def test_a_stop_signal_ends_kubectl_at_once(make_site, fake_kubectl) -> None:
    cfg = load(make_site(), need_secrets=False)
    fake_kubectl.set_mode("sleep")
    stop = threading.Event()
    started = time.monotonic()
    with interrupt_sets(stop), pytest.raises(Interrupted):
        threading.Timer(0.3, stop.set).start()
        kube.Kubectl(_site_kubeconfig(cfg)).run("get", "nodes")
    assert time.monotonic() - started < 10


def test_gcp_fix_writes_the_credentials_into_the_sites_file(make_site) -> None:
    site = make_site({"spec.profile": "gcp", "spec.gcp": {"project": "proj-1", "region": "europe-west4",
                                                          "zone": "europe-west4-a"}}, hosts_text="all: {}\n")
    cfg = load(site, need_secrets=False)
    assert kube.kubeconfig_path(cfg) == cfg.state_dir / "kubeconfig"
    assert (f"KUBECONFIG={cfg.state_dir / 'kubeconfig'} gcloud container clusters get-credentials test "
            "--region europe-west4 --project proj-1") in kube.kubeconfig_fix(cfg)
