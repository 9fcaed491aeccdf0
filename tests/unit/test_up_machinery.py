"""The pieces of `up` that need no hosts: preflight verdicts, the lock, run records, phase selection."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from installer.adapters.ansible import Failure, HostStats, PlaybookResult, _Collector
from installer.cli import cli
from installer.config.inventory import ROLE_GROUPS
from installer.config.load import load
from installer.errors import PreflightError
from installer.lock import run_lock
from installer.paths import data_dir
from installer.phases.preflight import MAX_CLOCK_SKEW_S, SUDO_TASK, host_problems
from installer.runs import RunRecord, redact
from installer.up import selected_phases

NOW = 1_800_000_000.0
GOOD = {"ansible_os_family": "Debian", "ansible_distribution": "Debian",
        "ansible_mounts": [{"mount": "/", "size_available": 50 * 1024**3}],
        "ansible_date_time": {"epoch": str(int(NOW))}}


def _result(facts: dict, failures: list[Failure] | None = None) -> PlaybookResult:
    return PlaybookResult("successful", 0, 0.1, hosts={h: HostStats(ok=2) for h in facts},
                          failures=failures or [], facts=facts)


def test_preflight_passes_fit_hosts() -> None:
    assert host_problems(_result({"a": GOOD, "b": GOOD}), NOW, ["a", "b"]) == []


def test_preflight_names_each_unfit_host() -> None:
    bad_os = {**GOOD, "ansible_os_family": "RedHat", "ansible_distribution": "Rocky"}
    full = {**GOOD, "ansible_mounts": [{"mount": "/", "size_available": 2 * 1024**3}]}
    skewed = {**GOOD, "ansible_date_time": {"epoch": str(int(NOW) + MAX_CLOCK_SKEW_S + 50)}}
    result = _result(
        {"os": bad_os, "disk": full, "clock": skewed},
        failures=[Failure("gone", SUDO_TASK, "unreachable: ssh: connect to host port 22"),
                  Failure("nosudo", SUDO_TASK, "Missing sudo password"),
                  Failure("nofacts", "Preflight | Read the operating system, mounts and clock", "timeout")],
    )
    problems = host_problems(result, NOW, ["os", "disk", "clock", "nosudo", "nofacts", "silent", "gone"])
    assert problems == [
        "os: OS family RedHat (Rocky) is not supported; use Debian 12+ or Ubuntu 22.04+",
        "disk: only 2.0 GB free on / (needs 10 GB); free space or grow the disk",
        "clock: clock is +60 s off this machine's; enable time sync (chrony)",
        "nosudo: cannot become root without a password (Missing sudo password); "
        "allow passwordless sudo for ansible_user or log in as root",
        "nofacts: facts could not be read (timeout); run `ansible -m setup nofacts -b` to see why",
        "silent: facts could not be read (no answer); run `ansible -m setup silent -b` to see why",
        "gone: not reachable over SSH (unreachable: ssh: connect to host port 22); "
        "check ansible_host, the SSH key and firewall",
    ]


def test_preflight_playbook_targets_the_role_groups_and_names_the_sudo_task() -> None:
    """The verdict code and playbooks/preflight.yml must agree on hosts and task name, or checks go unread."""
    play = yaml.safe_load((data_dir("playbooks") / "preflight.yml").read_text())[0]
    assert play["hosts"].split(":") == list(ROLE_GROUPS)
    names = [task["name"] for task in play["tasks"]]
    assert names.index(SUDO_TASK) == 0  # sudo first: a sudo failure is not mistaken for missing facts


def test_collector_counts_changes_failures_and_ignores_ignored_errors() -> None:
    collector = _Collector(None)
    events = [
        {"event": "runner_on_ok", "event_data": {"host": "h1", "task": "a", "res": {"changed": True}}},
        {"event": "runner_on_ok", "event_data": {"host": "h1", "task": "b", "res": {"changed": False}}},
        {"event": "runner_on_failed", "event_data": {"host": "h2", "task": "c", "res": {"msg": "boom\nmore"}}},
        {"event": "runner_on_failed", "event_data": {"host": "h2", "task": "d", "ignore_errors": True, "res": {}}},
        {"event": "runner_on_unreachable", "event_data": {"host": "h3", "task": "e", "res": {"msg": "no route"}}},
        {"event": "runner_on_skipped", "event_data": {"host": "h1", "task": "f"}},
    ]
    for event in events:
        collector(event)
    assert collector.hosts["h1"].as_dict() == {"ok": 2, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 1}
    assert collector.hosts["h2"].failed == 1
    assert collector.failures == [Failure("h2", "c", "boom"), Failure("h3", "e", "unreachable: no route")]


def _hold_lock(state_dir: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event) -> None:
    with run_lock(Path(state_dir), "test-holder"):
        ready.set()
        release.wait(10)


def test_a_second_concurrent_run_is_refused(tmp_path: Path) -> None:
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(PreflightError, match="another kfinstall run holds .*test-holder"), run_lock(tmp_path, "up"):
            pass
    finally:
        release.set()
        holder.join(10)
    with run_lock(tmp_path, "up"):  # free again once the holder is gone
        pass


def test_run_record_is_redacted_and_private(make_site) -> None:
    cfg = load(make_site(), state_dir=None)
    record = RunRecord.start(cfg, "test")
    secret = cfg.secrets.values()[0]
    record.append_event({"stdout": f"token={secret}"})
    record.write_json("x.json", {"value": secret})
    assert (record.path.stat().st_mode & 0o777) == 0o700
    for file in record.path.iterdir():
        assert secret not in file.read_text()
    assert json.loads((record.path / "config.resolved.json").read_text())["secrets"]["grafana_admin_password"] == "<redacted>"


def test_redact_replaces_longest_first() -> None:
    assert redact("ab abc", ["ab", "abc"]) == "<redacted> <redacted>"


@pytest.mark.parametrize(("only", "start", "expected"), [
    (None, None, ["preflight", "hosts", "platform", "verify"]),
    ("hosts", None, ["preflight", "hosts"]),
    ("preflight", None, ["preflight"]),
    (None, "platform", ["platform", "verify"]),
])
def test_selected_phases(only, start, expected) -> None:
    assert selected_phases(only, start) == expected


def test_up_without_yes_off_a_terminal_changes_nothing(make_site) -> None:
    site = make_site()
    result = CliRunner().invoke(cli, ["up", "-i", str(site), "--only", "hosts"])
    assert result.exit_code != 0
    assert isinstance(result.exception, PreflightError) and "not confirmed" in str(result.exception)
    assert not (site / ".kfinstall").exists()


def test_up_requires_secrets(make_site) -> None:
    site = make_site(secrets=False)
    result = CliRunner().invoke(cli, ["up", "-i", str(site), "--yes"])
    assert result.exception is not None and result.exception.exit_code == 2
    assert any(p.file == "secrets.yml" for p in result.exception.problems)


def test_up_with_unreachable_hosts_is_refused_by_preflight(unreachable_site, tmp_path: Path) -> None:
    """Documentation-range addresses are never routed: SSH fails fast and preflight exits 3."""
    site = unreachable_site
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["up", "-i", str(site), "--only", "hosts", "--yes", "-o", "json"])
    assert isinstance(result.exception, PreflightError), result.output
    assert result.exception.exit_code == 3
    assert "cp1: not reachable over SSH" in str(result.exception)
    # --output json prints the summary on failure too: the failed phase and the error.
    report = json.loads(result.stdout)
    assert report["result"] == "failed" and "cp1: not reachable over SSH" in report["error"]
    assert [(p["name"], p["status"]) for p in report["phases"]] == [("preflight", "PreflightError")]
    runs = list((site / ".kfinstall" / "test" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "summary.json").exists()
    assert time.monotonic() - start < 120


def test_ctrl_c_stops_the_run_keeps_the_record_and_exits_130(make_site, monkeypatch) -> None:
    import os
    import signal
    import threading

    from installer import up as up_module
    from installer.errors import Interrupted
    from installer.phases.base import PhaseResult

    def slow_phase(ctx) -> PhaseResult:
        # Ctrl-C while the phase runs (a timer started with the command fired before up's handlers were
        # in place on a loaded machine, and the test failed for that, not for up).
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
        deadline = time.monotonic() + 10
        while not ctx.cancel_requested() and time.monotonic() < deadline:
            time.sleep(0.02)
        raise Interrupted("interrupted during the test phase")

    monkeypatch.setitem(up_module.PHASES, "preflight", slow_phase)
    site = make_site()
    # What the process had before (a shell's background job inherits SIGINT ignored): up must put it back.
    before = signal.getsignal(signal.SIGINT)
    result = CliRunner().invoke(cli, ["up", "-i", str(site), "--only", "preflight", "--yes"])
    assert isinstance(result.exception, Interrupted) and result.exception.exit_code == 130
    state = json.loads((site / ".kfinstall" / "test" / "state.json").read_text())
    assert state["history"][-1]["result"] == "interrupted"
    summary = json.loads(next((site / ".kfinstall" / "test" / "runs").glob("*/summary.json")).read_text())
    assert summary["phases"][0]["status"] == "Interrupted"
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_main_maps_keyboard_interrupt_to_130(monkeypatch) -> None:
    import sys

    from installer import cli as cli_module

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module.cli, "main", boom)
    monkeypatch.setattr(sys, "argv", ["kfinstall", "channels"])
    with pytest.raises(SystemExit) as caught:
        cli_module.main()
    assert caught.value.code == 130


def _installed(cfg, **fields) -> None:
    from installer.state import State, write_state

    write_state(cfg.state_dir, State(cluster=cfg.name, **fields))


def test_up_refuses_a_channel_change(make_site) -> None:
    from installer.up import against_installed

    cfg = load(make_site())
    _installed(cfg, installed_channel="1.11", kubernetes_version="1.34")
    with pytest.raises(PreflightError, match=r"runs channel 1\.11 but kfinstall\.yaml says 26\.03; "
                                             r"change channels with `kfinstall upgrade --to 26\.03`"):
        against_installed(cfg)


def test_up_keeps_the_installed_kubernetes_when_the_version_is_defaulted(make_site) -> None:
    from installer.up import against_installed

    cfg = load(make_site(), ["spec.channel=26.03.1"])
    assert cfg.kubernetes_version == "1.35"  # the channel's default
    _installed(cfg, installed_channel="26.03.1", kubernetes_version="1.34")
    kept = against_installed(cfg)
    assert kept.kubernetes_version == "1.34" and kept.ansible_vars()["kf_kubernetes_minor"] == "1.34"


def test_up_follows_an_explicit_kubernetes_version(make_site) -> None:
    from installer.up import against_installed

    cfg = load(make_site(), ["spec.channel=26.03.1", "spec.kubernetes.version=1.35"])
    _installed(cfg, installed_channel="26.03.1", kubernetes_version="1.34")
    assert against_installed(cfg).kubernetes_version == "1.35"


def test_up_refuses_while_an_upgrade_is_in_progress(make_site) -> None:
    from installer.state import UpgradeProgress
    from installer.up import against_installed

    cfg = load(make_site())
    progress = UpgradeProgress(target_channel="26.03.1", run_id="r1", started_at="now")
    _installed(cfg, installed_channel="26.03", upgrade=progress)
    with pytest.raises(PreflightError, match="an upgrade to 26.03.1 is in progress"):
        against_installed(cfg)


def test_clock_is_compared_with_when_the_host_answered_not_with_now() -> None:
    """Slow fact gathering (a loaded controller) must not look like clock skew."""
    from installer.phases.preflight import clock_skew

    answered = {"ansible_date_time": {"epoch": str(int(NOW) - 28)}, "kf_gathered_between": (NOW - 30, NOW - 25)}
    assert clock_skew(answered, NOW) == 0.0
    late = {"ansible_date_time": {"epoch": str(int(NOW) - 90)}, "kf_gathered_between": (NOW - 30, NOW - 25)}
    assert clock_skew(late, NOW) == -60.0
    ahead = {"ansible_date_time": {"epoch": str(int(NOW) + 40)}, "kf_gathered_between": (NOW - 30, NOW - 25)}
    assert clock_skew(ahead, NOW) == 65.0


def test_free_space_comes_from_df_before_the_gathered_mounts() -> None:
    """Fact gathering leaves out a container's overlay root; preflight.yml's df reading is checked instead."""
    low_df = {**GOOD, "kf_root_free_bytes": 2 * 1024**3}  # the mounts say 50 GB
    overlay_root = {**GOOD, "ansible_mounts": [], "kf_root_free_bytes": 50 * 1024**3}
    unread = {**GOOD, "ansible_mounts": []}
    problems = host_problems(_result({"low": low_df, "ok": overlay_root, "unread": unread}), NOW, ["low", "ok", "unread"])
    assert problems == [
        "low: only 2.0 GB free on / (needs 10 GB); free space or grow the disk",
        "unread: the free space on / could not be read; run `df -Pk /` on unread to see why",
    ]


def test_collector_keeps_the_gathering_window_when_later_tasks_set_facts() -> None:
    """The clock check compares with when the host read its clock, not when a later set_fact ran."""
    collector = _Collector(None)
    gathered = {"ansible_facts": {"ansible_date_time": {"epoch": "100"}}}
    collector({"event": "runner_on_ok", "event_data": {
        "host": "h1", "task": "gather", "res": gathered,
        "start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T00:00:02+00:00"}})
    collector({"event": "runner_on_ok", "event_data": {
        "host": "h1", "task": "df", "res": {"ansible_facts": {"kf_root_free_bytes": "1024"}},
        "start": "2026-01-01T00:00:09+00:00", "end": "2026-01-01T00:00:09+00:00"}})
    facts = collector.facts["h1"]
    assert facts["kf_root_free_bytes"] == "1024"
    assert facts["kf_gathered_between"][1] - facts["kf_gathered_between"][0] == 2.0
