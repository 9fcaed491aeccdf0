"""The upgrade executor with fake hops: state after every hop, resume after a failure, migrations."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from installer.config.load import load
from installer.errors import PhaseFailed, PreflightError
from installer.phases.base import RunContext
from installer.runs import RunRecord
from installer.state import State, read_state, write_state
from installer.upgrade import run as upgrade_run
from installer.upgrade.facts import ClusterFacts, NodeFacts, Z2jhSettings
from installer.upgrade.route import Hop, plan_route
from installer.upgrade.run import (
    hop_config,
    platform_hop,
    pod_security_check,
    run_migrations,
    run_upgrade,
    target_namespace_levels,
    z2jh_from_config,
)


def _facts_for(hop: Hop) -> ClusterFacts:
    version = f"v{hop.kubernetes_from}.3"
    node = NodeFacts("cp1", True, True, version, "2.1.4", 2, True)
    return ClusterFacts(nodes=(node,), apiserver_versions=(version,), z2jh=Z2jhSettings("escape", True))


def _console() -> Console:
    return Console(file=io.StringIO())


class Recorder:
    def __init__(self, fail_at: str | None = None) -> None:
        self.ran: list[str] = []
        self.backups: list[str] = []
        self.fail_at = fail_at

    def hop(self, ctx: RunContext, hop: Hop, facts: ClusterFacts) -> None:
        if hop.key == self.fail_at:
            raise PhaseFailed(f"{hop.key} broke")
        self.ran.append(hop.key)

    def backup(self, ctx: RunContext, hop: Hop) -> None:
        self.backups.append(hop.key)

    def run(self, cfg, route, **kw):  # noqa: ANN001, ANN003, ANN201 - test helper
        return run_upgrade(cfg, route, _console(), collect=lambda ctx, hop: _facts_for(hop),
                           runners={"kubernetes": self.hop, "platform": self.hop}, backup=self.backup, **kw)


def _site(make_site, channel: str, installed: str, kubernetes: str, version: str | None = None) -> Path:
    changes = {"spec.channel": channel}
    if version:
        changes["spec.kubernetes.version"] = version
    site = make_site(changes)
    write_state(site / ".kfinstall" / "test", State(cluster="test", installed_channel=installed,
                                                    kubernetes_version=kubernetes))
    return site


def test_every_hop_is_backed_up_run_and_recorded(make_site) -> None:
    site = _site(make_site, "26.03", "1.11", "1.32")
    cfg = load(site)
    route = plan_route("1.11", "1.32", "26.03")
    recorder = Recorder()
    report = recorder.run(cfg, route)
    keys = [h.key for h in route.hops]
    assert recorder.ran == keys and recorder.backups == keys and report.done == keys
    state = read_state(cfg.state_dir)
    assert state is not None and state.installed_channel == "26.03" and state.kubernetes_version == "1.34"
    assert state.upgrade is None
    assert [(e.action, e.hop, e.result) for e in state.history] == [
        ("upgrade-kubernetes", keys[0], "ok"), ("upgrade-kubernetes", keys[1], "ok"),
        ("upgrade-platform", keys[2], "ok"), ("upgrade", None, "ok")]
    summary = json.loads((Path(report.record) / "summary.json").read_text())
    assert summary["result"] == "ok" and summary["hopsDone"] == keys


def test_a_failed_hop_keeps_the_done_ones_and_a_rerun_resumes(make_site) -> None:
    site = _site(make_site, "26.03", "1.11", "1.32")
    cfg = load(site)
    route = plan_route("1.11", "1.32", "26.03")
    broken = Recorder(fail_at=route.hops[1].key)
    with pytest.raises(PhaseFailed):
        broken.run(cfg, route)
    state = read_state(cfg.state_dir)
    assert state is not None and (state.installed_channel, state.kubernetes_version) == ("1.11", "1.33")
    assert state.upgrade is not None and state.upgrade.hops_done == [route.hops[0].key]
    assert state.history[-1].result == "failed"

    resumed = plan_route(state.installed_channel, state.kubernetes_version, "26.03")
    assert [h.key for h in resumed.hops] == [h.key for h in route.hops[1:]]
    fixed = Recorder()
    fixed.run(cfg, resumed)
    final = read_state(cfg.state_dir)
    assert final is not None and final.installed_channel == "26.03" and final.upgrade is None


def test_a_preflight_refusal_before_the_first_hop_changes_nothing(make_site) -> None:
    site = _site(make_site, "26.03", "1.11", "1.32")
    cfg = load(site)
    route = plan_route("1.11", "1.32", "26.03")
    recorder = Recorder()

    def unhealthy(ctx: RunContext, hop: Hop) -> ClusterFacts:
        facts = _facts_for(hop)
        return ClusterFacts(nodes=facts.nodes, apiserver_versions=facts.apiserver_versions,
                            unhealthy=("pod x is Pending",))

    refusal = "upgrade preflight refused the route:\n  - cluster health: pod x is Pending"
    with pytest.raises(PreflightError, match=refusal):
        run_upgrade(cfg, route, _console(), collect=unhealthy, runners={"kubernetes": recorder.hop},
                    backup=recorder.backup)
    assert recorder.ran == [] and recorder.backups == []
    state = read_state(cfg.state_dir)
    assert state is not None and state.upgrade is None and state.installed_channel == "1.11"


def test_not_confirming_a_hop_stops_before_it(make_site) -> None:
    site = _site(make_site, "26.03", "1.11", "1.32")
    cfg = load(site)
    recorder = Recorder()
    answers = iter([True, False])
    with pytest.raises(PreflightError, match="not confirmed before hop 2; 1 hop\\(s\\) done and recorded"):
        recorder.run(cfg, plan_route("1.11", "1.32", "26.03"), confirm=lambda question: next(answers))
    assert len(recorder.ran) == 1


def test_hop_config_carries_the_target_channel_and_kubernetes(make_site) -> None:
    cfg = load(_site(make_site, "26.03", "1.11", "1.32"))
    hop = plan_route("1.11", "1.34", "26.03").hops[0]
    target = hop_config(cfg, hop)
    assert target.release.channel == "26.03" and target.spec.channel == "26.03"
    assert target.ansible_vars()["kf_kubernetes_minor"] == "1.34"
    assert target.ansible_vars()["kf_containerd_version"] == target.release.containerd.version


def _ctx(cfg) -> RunContext:  # noqa: ANN001 - test helper
    return RunContext(cfg=cfg, record=RunRecord.start(cfg, "test"), console=_console())


def test_migrations_run_in_order_with_the_target_values(make_site) -> None:
    values = {"hub": {"config": {"Authenticator": {"allow_all": True}}}}
    cfg = load(_site(make_site, "1.10", "1.9", "1.31"))
    cfg = upgrade_run.with_jupyterhub_values(cfg, values)
    hop = plan_route("1.9", "1.31", "1.10").hops[0]
    commands: list[list[str]] = []
    probes: list[list[str]] = []

    def probe(argv: list[str]) -> tuple[int, str, str]:
        probes.append(argv)
        return (0, "namespace/jupyterhub\nnamespace/default\n", "") if "get" in argv else (0, "", "")

    ctx = _ctx(cfg)
    target = run_migrations(ctx, hop, hop_config(cfg, hop), _facts_for(hop), command=commands.append, probe=probe,
                            levels=lambda ctx, hop: {"jupyterhub": "baseline", "kubeflow": "restricted"})
    assert target.spec.components.jupyterhub.values["hub"]["config"]["KubeSpawner"] == {"slug_scheme": "escape"}
    assert [c[:2] for c in commands] == [["helm", "pull"], ["kubectl", "--kubeconfig"]]
    assert "70.10.0" in commands[0]
    notes = json.loads((ctx.record.path / "migrations-hop-01.json").read_text())
    assert list(notes) == ["z2jh-values-3-to-4", "pod-security-labels", "kube-prometheus-stack-crds"]
    assert notes["pod-security-labels"] == {"jupyterhub": "baseline"}  # kubeflow does not exist yet
    assert probes[1][3:8] == ["label", "--dry-run=server", "--overwrite", "namespace", "jupyterhub"]


def test_pod_security_dry_run_refuses_when_running_pods_would_violate(tmp_path: Path) -> None:
    def probe(argv: list[str]) -> tuple[int, str, str]:
        if "get" in argv:
            return 0, "namespace/kubeflow\n", ""
        return 0, "namespace/kubeflow labeled\n", (
            'Warning: existing pods in namespace "kubeflow" violate the new PodSecurity enforce level '
            '"restricted:latest"\nWarning: trainer-0: allowPrivilegeEscalation != false\n')

    with pytest.raises(PreflightError) as refused:
        pod_security_check({"kubeflow": "restricted"}, tmp_path / "kc", probe)
    assert refused.value.message == (
        "Pod Security levels of the target channel would reject running pods:\n"
        '  - kubeflow (restricted): existing pods in namespace "kubeflow" violate the new PodSecurity enforce '
        'level "restricted:latest"\n'
        "  - kubeflow (restricted): trainer-0: allowPrivilegeEscalation != false")


def test_target_namespace_levels_come_from_the_catalogue_without_a_child_process(make_site, monkeypatch) -> None:
    import subprocess

    cfg = load(_site(make_site, "26.03.1", "26.03", "1.34"))
    hop = plan_route("26.03", "1.34", "26.03.1").hops[0]

    def no_child(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the render used to start one
        raise AssertionError(f"a child process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_child)
    levels = target_namespace_levels(_ctx(cfg), hop)
    assert levels["jupyterhub"] == "baseline" and levels["kubeflow"] == "restricted"


def test_z2jh_settings_from_config_follow_kfinstall_and_the_overrides(make_site) -> None:
    cfg = load(_site(make_site, "1.10", "1.9", "1.31"))
    assert z2jh_from_config(cfg) == Z2jhSettings(None, True, "dynamic")
    closed = upgrade_run.with_jupyterhub_values(cfg, {"hub": {"config": {"Authenticator": {"allow_all": False}}}})
    assert z2jh_from_config(closed) == Z2jhSettings(None, False, "dynamic")


def test_a_platform_hop_fails_clearly_when_pulumi_cannot_run(make_site, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    cfg = load(_site(make_site, "26.03.1", "26.03", "1.34"))
    hop = plan_route("26.03", "1.34", "26.03.1").hops[0]
    with pytest.raises(PreflightError, match="the platform phase cannot run:\n  - Pulumi CLI not found"):
        platform_hop(_ctx(cfg), hop, _facts_for(hop))


def test_ctrl_c_during_a_hop_playbook_is_interrupted_and_the_done_hops_stay(make_site, monkeypatch) -> None:
    from installer.adapters import ansible
    from installer.errors import Interrupted

    def cancelled_playbook(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - stands in for ansible-runner
        return ansible.PlaybookResult(status="canceled", rc=130, duration_s=0.1)

    monkeypatch.setattr(ansible, "run_playbook", cancelled_playbook)
    site = _site(make_site, "26.03", "1.11", "1.32")
    cfg = load(site)
    route = plan_route("1.11", "1.32", "26.03")
    recorder = Recorder()
    with pytest.raises(Interrupted, match="interrupted during hop 1 .*run the same upgrade again to resume"):
        run_upgrade(cfg, route, _console(), collect=lambda ctx, hop: _facts_for(hop), backup=recorder.backup)
    state = read_state(cfg.state_dir)
    assert state is not None and state.installed_channel == "1.11" and state.kubernetes_version == "1.32"
    assert state.upgrade is not None and state.history[-1].result == "failed"


def test_an_upgrade_checks_host_keys_once_before_its_first_playbook_and_keeps_the_pinned_record(
    make_site, monkeypatch
) -> None:
    from installer.adapters import ansible, ssh

    events: list[str] = []

    def check(policy: ssh.HostKeyPolicy) -> ssh.HostKeyReport:  # stands in for ssh -G / ssh-keygen / ssh
        events.append("check")
        first = events.count("check") == 1
        report = ssh.HostKeyReport(policy.mode, str(policy.known_hosts))
        for name in policy.targets:
            if first:
                report.pinned[name] = [f"ssh-ed25519 SHA256:{name}"]
            else:
                report.verified.append(name)
        return report

    def playbook(name, inventory, extravars, work_dir, **kwargs):  # noqa: ANN001, ANN003, ANN202 - ansible-runner
        assert kwargs["host_keys"] is not None
        events.append(f"{name}:{extravars.get('kf_upgrade_action', 'backup')}")
        return ansible.PlaybookResult(status="successful", rc=0, duration_s=0.1)

    def facts_by_playbook(ctx: RunContext, hop: Hop) -> ClusterFacts:  # live_facts without kubectl
        upgrade_run._playbook(ctx, {"kf_upgrade_action": "facts"}, f"facts before hop {hop.index}")
        return _facts_for(hop)

    monkeypatch.setattr(ssh, "check_host_keys", check)
    monkeypatch.setattr(ansible, "run_playbook", playbook)
    monkeypatch.setattr(upgrade_run, "hub_db_skip_reason", lambda cfg: "JupyterHub is not enabled")
    cfg = load(_site(make_site, "26.03", "1.11", "1.32"))
    route = plan_route("1.11", "1.32", "26.03")  # kubernetes, kubernetes, platform: facts and backup each
    report = run_upgrade(cfg, route, _console(), collect=facts_by_playbook,
                         runners={"kubernetes": upgrade_run.kubernetes_hop, "platform": lambda *args: None})
    assert events[0] == "check" and events.count("check") == 1
    assert events.count("upgrade.yml:facts") == events.count("backup.yml:backup") == len(route.hops) == 3
    assert events.count("upgrade.yml:kubernetes") == 2
    record = json.loads((Path(report.record) / "host-keys.json").read_text())
    assert sorted(record["pinned"]) == ["cp1", "n1", "n2"] and record["verified"] == []
