"""`kfinstall upgrade` records what each hop applied (installer.applied), so `plan` after an upgrade diffs
against the upgraded site, not the pre-upgrade record (F1 item 3).

The real hop runners (installer.upgrade.hops) with the tools under them standing in: ansible-runner and the
SSH host-key check for a Kubernetes hop; Pulumi's preflight, the migrations and the Pulumi update for a
platform hop.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from installer.adapters import ansible, ssh
from installer.applied import read_applied, record_apply
from installer.config.load import load
from installer.errors import PhaseFailed
from installer.phases.base import PhaseResult, RunContext
from installer.plandiff import plan_diff
from installer.runs import RunRecord
from installer.state import State, write_state
from installer.upgrade import hops
from installer.upgrade.facts import ClusterFacts, NodeFacts, Z2jhSettings
from installer.upgrade.route import Hop, plan_route


def _facts(hop: Hop) -> ClusterFacts:
    version = f"v{hop.kubernetes_from}.3"
    node = NodeFacts("cp1", True, True, version, "2.1.4", 2, True)
    return ClusterFacts(nodes=(node,), apiserver_versions=(version,), z2jh=Z2jhSettings("escape", True))


def _installed(make_site, channel: str, kubernetes: str, target: str):  # type: ignore[no-untyped-def]
    """A site installed at `channel`/`kubernetes` by `up` (its hosts phase recorded; the platform part is left
    out: rendering it takes seconds), kfinstall.yaml now at `target`."""
    before = load(make_site({"spec.channel": channel}))
    record_apply(before, ("hosts",), run_id="up-before")
    write_state(before.state_dir, State(cluster="test", installed_channel=channel, kubernetes_version=kubernetes))
    return load(make_site({"spec.channel": target}))


def _ctx(cfg) -> RunContext:  # type: ignore[no-untyped-def]
    return RunContext(cfg=cfg, record=RunRecord.start(cfg, "upgrade test"), console=Console(file=io.StringIO()))


@pytest.fixture
def playbooks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """ansible-runner and the host-key check stand-ins: every playbook succeeds unless told to fail."""
    outcome: list[str] = []

    def check(policy: ssh.HostKeyPolicy) -> ssh.HostKeyReport:
        return ssh.HostKeyReport(policy.mode, str(policy.known_hosts))

    def playbook(name, inventory, extravars, work_dir, **kwargs):  # noqa: ANN001, ANN003, ANN202
        status = outcome[0] if outcome else "successful"
        return ansible.PlaybookResult(status=status, rc=0 if status == "successful" else 2, duration_s=0.1)

    monkeypatch.setattr(ssh, "check_host_keys", check)
    monkeypatch.setattr(ansible, "run_playbook", playbook)
    return outcome


def test_a_kubernetes_hop_records_the_hosts_part_at_its_version(make_site, playbooks) -> None:
    cfg = _installed(make_site, "26.03", "1.34", "26.03")
    hop = plan_route("26.03", "1.34", "26.03", "1.35").hops[0]
    assert hop.kind == "kubernetes"
    platform_before = read_applied(cfg.state_dir).get("platform")
    ctx = _ctx(cfg)
    hops.kubernetes_hop(ctx, hop, _facts(hop))
    record = read_applied(cfg.state_dir)
    assert record["hosts"]["runId"] == ctx.record.run_id
    assert record["hosts"]["versions"]["kubernetes"] == hop.kubernetes_to
    assert record["hosts"]["settings"]["kubernetesVersion"] == hop.kubernetes_to
    assert record.get("platform") == platform_before  # the hop did not touch the platform


def test_a_failed_kubernetes_hop_keeps_the_previous_record(make_site, playbooks) -> None:
    cfg = _installed(make_site, "26.03", "1.34", "26.03")
    hop = plan_route("26.03", "1.34", "26.03", "1.35").hops[0]
    before = read_applied(cfg.state_dir)
    playbooks.append("failed")
    with pytest.raises(PhaseFailed):
        hops.kubernetes_hop(_ctx(cfg), hop, _facts(hop))
    assert read_applied(cfg.state_dir) == before


def test_a_platform_hop_records_the_platform_part_with_the_hops_configuration(make_site, monkeypatch,
                                                                            playbooks) -> None:
    """After the hop, plan's diff is against the new channel: no version left to change, no stale record."""
    from installer.adapters import pulumi
    from installer.phases import platform

    cfg = _installed(make_site, "26.03", "1.34", "26.03.1")
    hop = plan_route("26.03", "1.34", "26.03.1").hops[0]
    assert hop.kind == "platform"
    deployed: list[str] = []
    monkeypatch.setattr(pulumi, "preflight", lambda target, **kw: None)
    monkeypatch.setattr(hops, "run_migrations", lambda ctx, hop, target, facts: target)
    monkeypatch.setattr(platform, "run", lambda ctx: deployed.append(ctx.cfg.release.channel) or
                        PhaseResult("platform", "ok"))
    before = plan_diff(cfg)
    assert any(v["key"] == "channel" for v in before["versions"]), before["versions"]
    ctx = _ctx(cfg)
    hops.platform_hop(ctx, hop, _facts(hop))
    assert deployed == ["26.03.1"]
    record = read_applied(cfg.state_dir)
    assert record["platform"]["runId"] == ctx.record.run_id
    assert record["platform"]["versions"]["channel"] == "26.03.1"
    write_state(cfg.state_dir, State(cluster="test", installed_channel="26.03.1", kubernetes_version="1.34"))
    after = plan_diff(cfg)
    assert after["versions"] == [] and after["settings"] == [], after
    assert "upgraded since" not in after["summary"]


def test_a_failed_platform_update_keeps_the_previous_record(make_site, monkeypatch, playbooks) -> None:
    from installer.adapters import pulumi
    from installer.phases import platform

    cfg = _installed(make_site, "26.03", "1.34", "26.03.1")
    hop = plan_route("26.03", "1.34", "26.03.1").hops[0]
    before = read_applied(cfg.state_dir)

    def broken(ctx: RunContext) -> PhaseResult:
        raise PhaseFailed("pulumi up failed")

    monkeypatch.setattr(pulumi, "preflight", lambda target, **kw: None)
    monkeypatch.setattr(hops, "run_migrations", lambda ctx, hop, target, facts: target)
    monkeypatch.setattr(platform, "run", broken)
    with pytest.raises(PhaseFailed):
        hops.platform_hop(_ctx(cfg), hop, _facts(hop))
    assert read_applied(cfg.state_dir) == before
