"""`up`'s preflight as the first play of the host phase's one Ansible run (playbooks/up.yml, issue 14's P3).

preflight.yml's last tasks wait for the verdict kfinstall writes when the first of them starts; nothing
of site.yml may run before it, and a refusal must stop the run on every host with the preflight's own
exit. These runs are real ansible-playbook runs on localhost (local connection) with preflight.yml's own
tasks, through the real adapter and its checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.adapters.ansible import Checkpoint, PlaybookResult, _Collector, run_playbook
from installer.adapters.ssh import HostKeyPolicy
from installer.config.inventory import ROLE_GROUPS
from installer.errors import Interrupted, PreflightError
from installer.paths import data_dir
from installer.phases import preflight
from installer.phases.base import PhaseResult
from installer.phases.hosts import SITE_PLAYBOOK, UP_PLAYBOOK, site_plays
from installer.phases.preflight import SUDO_TASK, VERDICT_TASK, VERDICT_VAR, HostChecks
from installer.runs import RunRecord

PLAYBOOKS = data_dir("playbooks")


def _preflight_tasks() -> list[dict[str, Any]]:
    """preflight.yml's tasks as they are, without `become` (these runs are the test's own user on localhost)."""
    [play] = yaml.safe_load((PLAYBOOKS / "preflight.yml").read_text())
    return [{k: v for k, v in task.items() if k != "become"} for task in play["tasks"]]


def _playbook(tmp_path: Path, marker: Path) -> Path:
    """preflight.yml's play, then a play that changes something (as site.yml's first change would)."""
    plays = [
        {"name": "Preflight", "hosts": "all", "gather_facts": False, "tasks": _preflight_tasks()},
        {"name": "Change the host", "hosts": "all", "gather_facts": False,
         "tasks": [{"name": "Site | Write the marker",
                    "ansible.builtin.copy": {"dest": str(marker), "content": "changed\n", "mode": "0600"}}]},
    ]
    path = tmp_path / "up-like.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False))
    return path


def _run(tmp_path: Path, checks: HostChecks | None) -> tuple[PlaybookResult, Path]:
    marker = tmp_path / "changed.txt"
    inventory = tmp_path / "local.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    extravars = {VERDICT_VAR: str(checks.verdict_file)} if checks else {}
    result = run_playbook(str(_playbook(tmp_path, marker)), inventory, extravars, tmp_path / "ansible",
                          host_keys=HostKeyPolicy("strict", tmp_path / "known_hosts"),
                          checkpoint=checks.checkpoint() if checks else None)
    return result, marker


def _checks(tmp_path: Path) -> HostChecks:
    record = RunRecord(path=tmp_path / "record", run_id="r1", secret_values=[])
    record.path.mkdir()
    return HostChecks(record, ["localhost"], PhaseResult("preflight", "ok"))


def test_a_fit_host_gets_go_and_the_run_goes_on_to_the_changes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(preflight, "MIN_FREE_ROOT_GB", 0)  # this machine's disk is not what is tested
    checks = _checks(tmp_path)
    result, marker = _run(tmp_path, checks)
    assert result.ok, (result.status, result.failures)
    assert checks.problems == [] and checks.verdict_file.read_text() == "go"
    assert checks.verdict_file.stat().st_mode & 0o077 == 0
    assert marker.read_text() == "changed\n"
    checks.after(result, cancelled=False)  # no refusal
    assert checks.result.status == "ok" and checks.result.duration_s == checks.judged_after_s > 0
    assert (checks.record.path / "preflight.json").is_file()


def test_a_refused_host_stops_the_run_before_any_change(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(preflight, "MIN_FREE_ROOT_GB", 10**9)  # no disk has a billion GB free
    checks = _checks(tmp_path)
    result, marker = _run(tmp_path, checks)
    assert not marker.exists()  # the play after preflight never ran
    assert [f.task for f in result.failures] == ["Preflight | Stop before any change when kfinstall refused a host"]
    assert checks.verdict_file.read_text() == "stop"
    [problem] = checks.problems or []
    assert problem.startswith("localhost: only ") and "(needs 1000000000 GB)" in problem
    with pytest.raises(PreflightError, match="preflight refused:\n  localhost: only ") as refused:
        checks.after(result, cancelled=False)
    assert refused.value.phase is checks.result and checks.result.status == "PreflightError"


def test_run_by_hand_the_verdict_tasks_are_skipped(tmp_path: Path) -> None:
    """Without kf_preflight_verdict (ansible-playbook up.yml by hand) nothing waits: preflight then site."""
    result, marker = _run(tmp_path, None)
    assert result.ok, (result.status, result.failures)
    assert marker.read_text() == "changed\n"


def test_a_run_that_never_reaches_the_verdict_is_judged_at_its_end(tmp_path: Path) -> None:
    """Every host failed before the verdict task (unreachable): Ansible ends the run by itself, and
    kfinstall still refuses with what went wrong, as a preflight run of its own would."""
    checks = _checks(tmp_path)
    gone = PlaybookResult("failed", 4, 1.0)
    collector = _Collector(None)
    collector({"event": "runner_on_unreachable",
               "event_data": {"host": "localhost", "task": SUDO_TASK, "res": {"msg": "ssh: connect to host port 22"}}})
    gone.failures = collector.failures
    with pytest.raises(PreflightError, match="localhost: not reachable over SSH"):
        checks.after(gone, cancelled=False)
    assert checks.verdict_file.read_text() == "stop"


def test_a_stop_before_the_verdict_is_an_interrupted_preflight(tmp_path: Path) -> None:
    checks = _checks(tmp_path)
    with pytest.raises(Interrupted, match="interrupted during preflight; nothing was changed"):
        checks.after(PlaybookResult("canceled", 130, 1.0), cancelled=True)


def test_the_checkpoint_fires_once_on_its_task_with_the_results_so_far() -> None:
    seen: list[PlaybookResult] = []
    collector = _Collector(None, checkpoint=Checkpoint(VERDICT_TASK, seen.append))
    collector({"event": "runner_on_ok", "event_data": {"host": "h1", "task": SUDO_TASK,
                                                       "res": {"ansible_facts": {"kf_root_free_bytes": 7}}}})
    collector({"event": "playbook_on_task_start", "event_data": {"task": "Preflight | another task"}})
    assert seen == []
    collector({"event": "playbook_on_task_start", "event_data": {"task": VERDICT_TASK}})
    [so_far] = seen
    assert so_far.status == "running" and so_far.facts == {"h1": {"kf_root_free_bytes": 7}}


def test_up_yml_is_preflight_then_site_and_the_plan_still_reads_site() -> None:
    """up.yml adds the preflight play in front of site.yml's plays and nothing else."""
    [(playbook, name, hosts), *rest] = site_plays(PLAYBOOKS, UP_PLAYBOOK)
    assert (playbook, name, hosts.split(":")) == ("preflight.yml", "Preflight", list(ROLE_GROUPS))
    assert tuple(rest) == site_plays(PLAYBOOKS, SITE_PLAYBOOK)
    names = [task["name"] for task in _preflight_tasks()]
    assert names.index(VERDICT_TASK) == len(names) - 2  # judged after every check, just before the stop
