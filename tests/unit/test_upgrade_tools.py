"""Nothing an upgrade runs on this machine is found missing halfway (issue 15 item 8; installer.upgrade.tools).

The kube-prometheus-stack CRD migration runs `helm pull` (migrations.kps_crd_commands); a platform hop
needs the Pulumi CLI and plugins. Both used to be found missing only when their hop started, after the
hops before it had changed the cluster. Now `kfinstall upgrade` refuses the route first (exit 3), naming
the program, the hop and the migration, with nothing run and nothing recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from installer.cli import cli
from installer.config.load import load
from installer.errors import PreflightError
from installer.releases import load_release
from installer.state import State, read_state, write_state
from installer.upgrade import migrations, tools
from installer.upgrade.migration_steps import step_programs
from installer.upgrade.migration_table import KPS_CRDS
from installer.upgrade.route import plan_route
from installer.upgrade.site import site_route


def _no_helm(program: str) -> str | None:
    return None if program == "helm" else f"/usr/bin/{program}"


def _pulumi_ok(cfg) -> None:  # type: ignore[no-untyped-def]
    return None


def test_the_crd_migration_needs_exactly_the_programs_its_commands_run(make_site) -> None:
    cfg = load(make_site(), need_secrets=False)
    ran = {argv[0] for argv in migrations.kps_crd_commands(load_release("1.10"), Path("w"), Path("k"))}
    assert step_programs(KPS_CRDS, cfg) == ran - {"kubectl"} == {"helm"}


def test_a_route_with_the_crd_migration_names_helm_its_hop_and_migration(make_site) -> None:
    cfg = load(make_site({"spec.channel": "1.10"}), need_secrets=False)
    route = site_route(plan_route("1.9", "1.31", "1.10"), cfg)
    problems = tools.tool_problems(cfg, route, which=_no_helm, pulumi_check=_pulumi_ok)
    assert problems == [f"helm is not on PATH, and hop 1, migration {KPS_CRDS} runs it; install helm on this "
                        "machine (or put it on PATH) and run the upgrade again"]
    assert tools.tool_problems(cfg, route, which=lambda p: f"/opt/{p}", pulumi_check=_pulumi_ok) == []


def test_monitoring_off_needs_no_helm(make_site) -> None:
    cfg = load(make_site({"spec.channel": "1.10", "spec.components.monitoring.enabled": False}), need_secrets=False)
    route = site_route(plan_route("1.9", "1.31", "1.10"), cfg)
    assert tools.route_needs(cfg, route, which=_no_helm) == []


def test_pulumi_missing_refuses_before_the_kubernetes_hops_that_come_first(make_site) -> None:
    cfg = load(make_site({"spec.channel": "26.03"}), need_secrets=False)
    route = site_route(plan_route("1.11", "1.32", "26.03"), cfg)
    assert [h.kind for h in route.hops][0] == "kubernetes"
    checked = []

    def missing(target) -> None:  # type: ignore[no-untyped-def]
        checked.append(target.release.channel)
        raise PreflightError("the platform phase cannot run:\n  - pulumi CLI not found")

    problems = tools.tool_problems(cfg, route, which=lambda p: f"/opt/{p}", pulumi_check=missing)
    platform = next(h for h in route.hops if h.kind == "platform")
    assert checked == ["26.03"]
    assert problems == [f"hop {platform.index} ({platform.title()}): the platform phase cannot run:\n"
                        "  - pulumi CLI not found"]


def test_the_command_refuses_a_missing_helm_before_anything(make_site, monkeypatch: pytest.MonkeyPatch) -> None:
    site = make_site({"spec.channel": "1.10"})
    state = State(cluster="test", installed_channel="1.9", kubernetes_version="1.31")
    write_state(site / ".kfinstall" / "test", state)
    monkeypatch.setattr(tools.shutil, "which", _no_helm)
    monkeypatch.setattr(tools, "_pulumi_preflight", _pulumi_ok)
    result = CliRunner().invoke(cli, ["upgrade", "-i", str(site), "--to", "1.10", "--yes", "-o", "json"])
    assert isinstance(result.exception, PreflightError), result.output  # exit 3 through main
    assert "helm is not on PATH, and hop 1, migration kube-prometheus-stack-crds runs it" in result.exception.message
    assert not (site / ".kfinstall" / "test" / "runs").exists(), "refused before the run started"
    assert read_state(site / ".kfinstall" / "test") == state
