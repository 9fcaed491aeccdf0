"""`up`'s preflight and the site's kubeconfig (issue 13, F1 item 1).

A fresh host-based site has no STATE/kubeconfig until the hosts phase of the same run fetches it, so a
full `up` refused at preflight ("no kubeconfig at ...") on every new site. The kubeconfig check now waits
for the platform phase when this run's hosts phase comes first, and preflight says so; `--only platform`
and `--from platform` still check it before anything changes. Every other platform check stays in
preflight, before any host is touched.

The Pulumi CLI and the provider plugin are stand-ins at the SDK's versions (a script answering `version`
and a file where Pulumi looks for the plugin), so only the kubeconfig can be missing.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from installer.adapters import pulumi as engine
from installer.adapters.ansible import PlaybookResult
from installer.config.load import load
from installer.config.resolved import ClusterConfig
from installer.errors import PreflightError
from installer.phases import UP_PHASES, platform, preflight
from installer.phases.base import RunContext
from installer.runs import RunRecord
from installer.up import run_up, selected_phases


@pytest.fixture
def pulumi_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `pulumi` on PATH reporting the SDK's version and the kubernetes plugin where Pulumi keeps it."""
    bin_dir, home = tmp_path / "bin", tmp_path / "pulumi-home"
    bin_dir.mkdir()
    cli = bin_dir / "pulumi"
    cli.write_text(f"#!{sys.executable}\nprint('v{engine.sdk_version()}')\n")
    cli.chmod(0o755)
    version = engine.plugin_version("kubernetes")
    plugin = home / "plugins" / f"resource-kubernetes-v{version}" / "pulumi-resource-kubernetes"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("PULUMI_HOME", str(home))


def _context(cfg: ClusterConfig, phases: list[str]) -> tuple[RunContext, Console]:
    console = Console(record=True, width=200)
    return RunContext(cfg=cfg, record=RunRecord.start(cfg, "test"), console=console, phases=tuple(phases)), console


def _healthy_hosts(monkeypatch: pytest.MonkeyPatch, cfg: ClusterConfig) -> None:
    """Preflight's SSH playbook answers for every host with fit facts (no SSH in a unit test)."""
    facts = {"ansible_os_family": "Debian", "kf_root_free_bytes": 100 * 1024**3,
             "ansible_date_time": {"epoch": str(int(time.time()))}}
    result = PlaybookResult("successful", 0, 0.1, facts={h.name: dict(facts) for h in cfg.inventory.hosts})
    monkeypatch.setattr(preflight, "run_playbook", lambda *args, **kwargs: result)
    monkeypatch.setattr(preflight, "check_host_keys", lambda policy: None)
    monkeypatch.setattr(preflight, "show_host_keys", lambda record, console, report: None)


def test_a_full_up_on_a_fresh_site_passes_preflight_and_says_why_the_kubeconfig_waits(
        make_site, pulumi_tools, monkeypatch) -> None:
    cfg = load(make_site(), need_secrets=True)
    assert not (cfg.state_dir / "kubeconfig").exists()
    _healthy_hosts(monkeypatch, cfg)
    ctx, console = _context(cfg, selected_phases(None, None))
    result = preflight.run(ctx)
    assert result.status == "ok"
    assert result.details["later"] == {"kubeconfig": "written by the hosts phase of this run"}
    assert "preflight: kubeconfig not checked now: written by the hosts phase of this run" in console.export_text()


def test_only_preflight_answers_for_a_full_up(make_site, pulumi_tools, monkeypatch) -> None:
    cfg = load(make_site(), need_secrets=True)
    _healthy_hosts(monkeypatch, cfg)
    ctx, _ = _context(cfg, selected_phases("preflight", None))
    assert preflight.run(ctx).details["later"] == {"kubeconfig": "written by the hosts phase of this run"}


def test_the_other_platform_checks_still_refuse_before_any_host(make_site, pulumi_tools, monkeypatch) -> None:
    """Only the kubeconfig waits: a missing plugin still refuses in preflight, before the SSH playbook."""
    cfg = load(make_site(), need_secrets=True)
    monkeypatch.setenv("PULUMI_HOME", str(cfg.site / "no-plugins"))
    monkeypatch.setattr(preflight, "run_playbook", lambda *a, **k: pytest.fail("SSH before the platform check"))
    ctx, _ = _context(cfg, list(UP_PHASES))
    with pytest.raises(PreflightError) as refused:
        preflight.run(ctx)
    assert refused.value.exit_code == 3
    assert "provider plugin kubernetes" in refused.value.message
    assert "no kubeconfig" not in refused.value.message


def test_only_platform_checks_the_kubeconfig_in_preflight(make_site, pulumi_tools) -> None:
    cfg = load(make_site(), need_secrets=True)
    ctx, _ = _context(cfg, selected_phases("platform", None))
    with pytest.raises(PreflightError) as refused:
        preflight.run(ctx)
    assert refused.value.exit_code == 3
    assert f"no kubeconfig at {cfg.state_dir / 'kubeconfig'}" in refused.value.message


def test_from_platform_checks_the_kubeconfig_before_the_platform_changes_anything(make_site, pulumi_tools,
                                                                                  monkeypatch) -> None:
    """`--from platform` runs no preflight phase: the platform phase's own check refuses first."""
    cfg = load(make_site(), need_secrets=True)
    monkeypatch.setattr(engine, "_operation", lambda *a, **k: pytest.fail("Pulumi ran without a kubeconfig"))
    with pytest.raises(PreflightError) as refused:
        run_up(cfg, Console(record=True), start_at="platform")
    assert refused.value.exit_code == 3
    assert f"no kubeconfig at {cfg.state_dir / 'kubeconfig'}" in refused.value.message


@pytest.mark.parametrize("phases, later", [
    (("preflight", "hosts", "platform", "verify"), True),
    (("preflight", "platform"), False),
    (("platform", "verify"), False),
    (("preflight", "hosts"), False),
])
def test_which_runs_leave_the_kubeconfig_to_the_platform_phase(make_site, phases, later) -> None:
    cfg = load(make_site(), need_secrets=False)
    assert ("kubeconfig" in platform.checks_later(cfg, phases)) is later


def test_gcp_has_no_hosts_phase_to_wait_for(make_site) -> None:
    cfg = load(make_site(), need_secrets=False)
    no_hosts = replace(cfg, profile=cfg.profile.model_copy(update={"host_phase": False}))
    assert platform.checks_later(no_hosts, tuple(UP_PHASES)) == {}
