"""`kfinstall upgrade --grace-period`: how long the pods of a drained node (notebook kernels) get to stop,
carried from the command line to the playbook's drain (playbooks/roles/kube_upgrade/tasks/drain.yml; the
role side and the upstream kubectl drain facts are in tests/playbooks/test_kube_upgrade_drain.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from installer.cli import cli
from installer.config.load import load
from installer.noderemove import DEFAULT_GRACE_S
from installer.state import State, write_state
from installer.upgrade import hops
from installer.upgrade.route import Change, Hop


def _hop(kind: str, channel: str, changes: tuple[Change, ...] = ()) -> Hop:
    return Hop(index=1, kind=kind, from_channel=channel, to_channel=channel,  # type: ignore[arg-type]
               kubernetes_from="1.33", kubernetes_to="1.34", changes=changes)


@dataclass(frozen=True)
class _Ctx:
    cfg: Any


@pytest.fixture
def playbook_vars(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The extra vars of every upgrade.yml run; nothing else of a hop runs."""
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(hops, "upgrade_playbook", lambda ctx, extra, what: seen.append(extra))
    monkeypatch.setattr(hops, "record_hop", lambda *args: None)
    return seen


def test_a_kubernetes_hop_drains_with_the_grace_period_given(make_site, playbook_vars) -> None:
    cfg = load(make_site(), need_secrets=False)
    hops.hop_runners(45)["kubernetes"](SimpleNamespace(cfg=cfg), _hop("kubernetes", cfg.release.channel), None)
    assert [v["kf_upgrade_drain_grace_period"] for v in playbook_vars] == [45]
    assert playbook_vars[0]["kf_upgrade_action"] == "kubernetes"


def test_a_runtime_change_drains_with_the_grace_period_given(make_site, playbook_vars, monkeypatch) -> None:
    from installer.adapters import pulumi
    from installer.phases import platform

    monkeypatch.setattr(pulumi, "preflight", lambda cfg: None)
    monkeypatch.setattr(platform, "run", lambda ctx: None)
    monkeypatch.setattr(hops, "run_migrations", lambda ctx, hop, target, facts: target)
    cfg = load(make_site(), need_secrets=False)
    ctx = _Ctx(cfg)  # the hop hands the platform phase a copy with the target configuration
    hop = _hop("platform", cfg.release.channel, (Change("containerd", "2.0.0", "2.1.0"),))
    hops.hop_runners(300)["platform"](ctx, hop, None)  # type: ignore[arg-type]
    assert [(v["kf_upgrade_action"], v["kf_upgrade_drain_grace_period"]) for v in playbook_vars] == [("runtime", 300)]


def test_the_command_passes_its_grace_period_to_the_hops(make_site, monkeypatch, playbook_vars) -> None:
    import installer.cli.upgrade as command

    site = make_site({"spec.channel": "26.03.1"})
    write_state(site / ".kfinstall" / "test", State(cluster="test", installed_channel="26.03",
                                                    kubernetes_version="1.34"))
    given: dict[str, Any] = {}

    def fake_run(cfg, route, console, **kwargs):  # type: ignore[no-untyped-def]
        given.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(command, "run_upgrade", fake_run)
    monkeypatch.setattr(command, "tool_problems", lambda cfg, route: [])  # no Pulumi CLI here
    result = CliRunner().invoke(cli, ["upgrade", "-i", str(site), "--to", "26.03.1", "--yes", "--grace-period", "33"])
    assert result.exit_code == 0, result.output
    cfg = load(site, need_secrets=False)
    given["runners"]["kubernetes"](SimpleNamespace(cfg=cfg), _hop("kubernetes", cfg.release.channel), None)
    assert playbook_vars[0]["kf_upgrade_drain_grace_period"] == 33


def test_the_default_grace_period_is_node_removes(make_site) -> None:
    result = CliRunner().invoke(cli, ["upgrade", "--help"])
    assert f"[default: {DEFAULT_GRACE_S};" in " ".join(result.output.split())


@pytest.mark.parametrize("value", ["-1", "2m"])
def test_a_bad_grace_period_is_exit_2_before_anything(make_site, value: str) -> None:
    site: Path = make_site({"spec.channel": "26.03.1"})
    result = CliRunner().invoke(cli, ["upgrade", "-i", str(site), "--to", "26.03.1", "--yes", "--grace-period", value])
    assert result.exit_code == 2
    assert "Invalid value for '--grace-period'" in result.output
    assert not (site / ".kfinstall").exists()
