"""Honest results of `up` (issue 13 item 5): skipped steps reach the summary with their reason, and
`result` is ok only when nothing asked for was skipped; `--only preflight` really checks."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from installer.adapters.ansible import SKIP_MARKER, PlaybookResult, Skip, _Collector
from installer.cli import cli
from installer.errors import Interrupted, PhaseFailed, PreflightError
from installer.paths import data_dir
from installer.phases import hosts as hosts_phase
from installer.phases.base import PhaseResult
from installer.up import UpReport, run_result, summary_lines

REASON = "Kubernetes 1.34 packages cannot be reached from h1: GET https://mirror.invalid/Release failed (no answer)."


def _event(action: str, msg: Any, host: str = "h1", task: str = "Kubernetes | Report the skipped steps") -> dict:
    return {"event": "runner_on_ok",
            "event_data": {"host": host, "task": task, "task_action": action, "res": {"msg": msg, "changed": False}}}


def test_collector_reads_a_roles_skip_marker() -> None:
    collector = _Collector(None)
    collector(_event("ansible.builtin.debug", f"SKIPPED kubeadm, kubelet, kubectl and the cluster steps: {REASON}"))
    assert collector.skipped == [Skip("h1", "Kubernetes | Report the skipped steps",
                                      "kubeadm, kubelet, kubectl and the cluster steps", REASON)]


@pytest.mark.parametrize("action, msg", [
    ("ansible.builtin.debug", "h1: no NVIDIA GPU: nothing to do."),  # a note, not a skip
    ("ansible.builtin.command", "SKIPPED x: y"),  # only a debug task announces a skip
    ("debug", {"SKIPPED": "x"}),
])
def test_collector_ignores_other_messages(action: str, msg: Any) -> None:
    collector = _Collector(None)
    collector(_event(action, msg))
    assert collector.skipped == []


def test_a_skip_makes_the_host_phase_incomplete() -> None:
    skip = Skip("h1", "t", "kubeadm and the cluster steps", REASON)
    phase = hosts_phase._to_phase(PlaybookResult("successful", 0, 1.0, skipped=[skip]), check=False)
    assert phase.status == "incomplete"
    assert phase.as_dict()["skipped"] == [{"host": "h1", "task": "t", "step": "kubeadm and the cluster steps",
                                           "reason": REASON}]
    assert hosts_phase._to_phase(PlaybookResult("successful", 0, 1.0), check=False).status == "ok"


def _incomplete_hosts() -> PhaseResult:
    return PhaseResult("hosts", "incomplete", 2.0, hosts={"h1": {"ok": 3}},
                       skipped=[{"host": "h1", "task": "t", "step": "kubeadm and the cluster steps", "reason": REASON}])


@pytest.mark.parametrize("phases, error, expected", [
    ([PhaseResult("preflight", "ok"), PhaseResult("hosts", "ok")], None, "ok"),
    ([PhaseResult("preflight", "ok"), PhaseResult("hosts", "skipped", details={"reason": "gcp"})], None, "ok"),
    ([PhaseResult("preflight", "ok"), _incomplete_hosts()], None, "incomplete"),
    ([PhaseResult("preflight", "ok"), PhaseResult("hosts", "failed")], PhaseFailed("x"), "failed"),
    ([PhaseResult("preflight", "PreflightError")], PreflightError("x"), "failed"),
    ([_incomplete_hosts()], Interrupted("stopped"), "interrupted"),
])
def test_run_result(phases: list[PhaseResult], error: Exception | None, expected: str) -> None:
    assert run_result(phases, error) == expected  # type: ignore[arg-type]


def test_text_summary_names_each_skip_with_its_reason() -> None:
    report = UpReport("r1", "/state/runs/r1", [PhaseResult("preflight", "ok"), _incomplete_hosts()], "incomplete")
    lines = summary_lines(report)
    assert "hosts: incomplete (2.0 s)" in lines
    assert f"  SKIPPED on h1 (hosts): kubeadm and the cluster steps: {REASON}" in lines
    assert lines[-2].startswith("result: incomplete: 1 step(s) asked for were skipped")


def test_up_reports_incomplete_in_text_json_record_and_state(make_site, monkeypatch) -> None:
    from installer import up as up_module

    monkeypatch.setitem(up_module.PHASES, "preflight", lambda ctx: PhaseResult("preflight", "ok"))
    monkeypatch.setitem(up_module.PHASES, "hosts", lambda ctx: _incomplete_hosts())
    site = make_site()
    done = CliRunner().invoke(cli, ["up", "-i", str(site), "--only", "hosts", "--yes", "-o", "json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["result"] == "incomplete"
    assert report["skipped"] == [{"phase": "hosts", "host": "h1", "task": "t",
                                  "step": "kubeadm and the cluster steps", "reason": REASON}]
    summary = json.loads(Path(report["record"], "summary.json").read_text())
    assert summary["result"] == "incomplete" and summary["skipped"] == report["skipped"]
    state = json.loads((site / ".kfinstall" / "test" / "state.json").read_text())
    assert state["history"][-1]["result"] == "incomplete"
    assert "hosts" not in state["phases_done"]  # the cluster was not built: not done
    text = CliRunner().invoke(cli, ["up", "-i", str(site), "--only", "hosts", "--yes"])
    assert f"SKIPPED on h1 (hosts): kubeadm and the cluster steps: {REASON}" in text.stdout
    assert "result: incomplete" in text.stdout


def test_every_skip_marker_in_the_roles_names_step_and_reason() -> None:
    """The convention kfinstall reads (SKIP_MARKER): 'SKIPPED <what>: <why>' in a debug task's msg."""
    found = 0
    for path in sorted((data_dir("playbooks") / "roles").glob("*/tasks/*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            debug = task.get("ansible.builtin.debug") or {}
            msg = str(debug.get("msg", "")) if isinstance(debug, dict) else ""
            if msg.lstrip().startswith(SKIP_MARKER.strip()):
                found += 1
                assert "ansible.builtin.debug" in task, path
                assert re.match(r"SKIPPED [^:{]+\S.*?: \S", " ".join(msg.split())), (path, msg)
    assert found >= 2  # kubernetes (packages unreachable), etcd_backup (no control plane)


def test_only_preflight_checks_the_hosts_and_names_the_unreachable_one(unreachable_site) -> None:
    """`up --only preflight` ran no check at all before ('preflight: ok (0.0 s)'): now it refuses, exit 3."""
    site = unreachable_site
    start = time.monotonic()
    done = CliRunner().invoke(cli, ["up", "-i", str(site), "--only", "preflight", "--yes", "-o", "json"])
    assert isinstance(done.exception, PreflightError) and done.exception.exit_code == 3, done.output
    for host in ("cp1", "n1", "n2"):
        assert f"{host}: not reachable over SSH" in done.exception.message
    report = json.loads(done.stdout)
    assert report["result"] == "failed" and "cp1: not reachable over SSH" in report["error"]
    assert time.monotonic() - start < 120


def test_the_confirmation_shows_the_plans_summary_and_warnings_before_asking(make_site) -> None:
    """Issue 13 item 6: the question named the phases and a host count only."""
    from rich.console import Console

    from installer.config.load import load
    from installer.up import run_up

    site = make_site()
    (site / "secrets.yml").unlink()  # a warning of the plan: "secrets.yml: file not found ..."
    cfg = load(site, need_secrets=False)
    asked: list[str] = []
    with pytest.raises(PreflightError, match="not confirmed"):
        run_up(cfg, Console(), only="hosts", confirm=lambda question: asked.append(question) or False)
    [question] = asked
    lines = question.splitlines()
    assert lines[0].startswith("Plan for cluster test: profile bare-metal, channel 26.03, Kubernetes ")
    assert any(line.startswith("  hosts: os_prepare: ") and "containerd" in line for line in lines), question
    assert not any(line.startswith("  platform: ") for line in lines)  # --only hosts: not run
    assert "1 warning(s):" in lines and any(line.startswith("  warning: secrets.yml: file not found") for line in lines)
    assert lines[-1] == "Apply hosts to cluster test (3 host(s))?"
    assert not (site / ".kfinstall").exists()  # refused before the lock and the run record


def _unreachable_site(make_site):  # type: ignore[no-untyped-def]
    hosts = {f"all.hosts.{h}": {"ansible_host": "127.0.0.1", "ansible_port": port,
                                "ansible_ssh_common_args": "-o ConnectTimeout=2"}
             for h, port in (("cp1", 1), ("n1", 2), ("n2", 3))}
    return make_site(hosts=hosts)


def _only_record(site: Path) -> Path:
    [record] = (site / ".kfinstall" / "test" / "runs").iterdir()
    return record


def test_verbose_reaches_ansible_and_kfinstalls_log(make_site, kfinstall) -> None:
    """Issue 13 item 6: -v was accepted and ignored."""
    site = _unreachable_site(make_site)
    code, out = kfinstall("-vvv", "up", "-i", str(site), "--only", "preflight", "--yes")
    assert code == 3, out
    record = _only_record(site)
    [command] = (record / "ansible-preflight" / "artifacts").glob("*/command")
    assert "-vvv" in json.loads(command.read_text())["command"]
    assert "kfinstall: INFO: phase preflight: starting" in out
    assert "ESTABLISH SSH CONNECTION" in out  # Ansible's own -vvv output, through kfinstall's log
    log = (record / "kfinstall.log").read_text()
    assert "phase preflight: starting" in log and "ansible-playbook preflight.yml" in log
    assert (record / "kfinstall.log").stat().st_mode & 0o077 == 0


def test_without_verbose_stderr_carries_no_log(make_site, kfinstall) -> None:
    site = _unreachable_site(make_site)
    code, out = kfinstall("up", "-i", str(site), "--only", "preflight", "--yes")
    assert code == 3, out
    assert "kfinstall: INFO" not in out and "ESTABLISH SSH CONNECTION" not in out
    record = _only_record(site)
    [command] = (record / "ansible-preflight" / "artifacts").glob("*/command")
    assert not any(arg.startswith("-v") for arg in json.loads(command.read_text())["command"])
    assert "phase preflight: starting" in (record / "kfinstall.log").read_text()  # the record keeps it


def test_the_log_never_holds_a_secret(tmp_path: Path, capsys) -> None:
    from installer.log import LOG, run_log, setup_logging
    from installer.runs import RunRecord

    setup_logging(2)
    record = RunRecord(path=tmp_path, run_id="r1", secret_values=["s3cret-value-1234"])
    with run_log(record, 2):
        LOG.info("ansible said %s", 'password: "s3cret-value-1234"')
    assert "s3cret-value-1234" not in (tmp_path / "kfinstall.log").read_text()
    assert "<redacted>" in (tmp_path / "kfinstall.log").read_text()
    err = capsys.readouterr().err
    assert "ansible said" in err and "s3cret-value-1234" not in err
    setup_logging(0)


SKIPPING_PLAYBOOK = """
- name: A role that skips a step on purpose
  hosts: all
  gather_facts: false
  tasks:
    - name: Demo | Report the skipped step
      ansible.builtin.debug:
        msg: "SKIPPED the demo step: {{ inventory_hostname }} has no demo device."
    - name: Demo | A note that is no skip
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }}: nothing to do."
"""


def test_a_real_ansible_run_carries_the_skip_marker(tmp_path: Path) -> None:
    """The marker reaches kfinstall through ansible-runner's real events (task_action, res.msg)."""
    import sys

    from installer.adapters.ansible import run_playbook
    from installer.adapters.ssh import HostKeyPolicy

    playbook = tmp_path / "skip.yml"
    playbook.write_text(SKIPPING_PLAYBOOK)
    inventory = tmp_path / "local.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    keys = HostKeyPolicy("strict", tmp_path / "known_hosts")  # a local connection: no ssh
    result = run_playbook(str(playbook), inventory, {}, tmp_path / "ansible", host_keys=keys)
    assert result.ok, (result.status, result.failures)
    assert result.skipped == [Skip("localhost", "Demo | Report the skipped step", "the demo step",
                                   "localhost has no demo device.")]
