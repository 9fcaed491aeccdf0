"""`kfinstall up`: the ordered phases under one lock, one run record, and a state update.

Ctrl-C, SIGTERM or SIGHUP set a flag that ansible-runner polls (cancel_callback), so the child
ansible-playbook is stopped and waited for, the run record is kept, the lock is released only then,
and the exit code is 130, 143 or 129 (installer.interrupt). A re-run converges.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from installer.config.resolved import ClusterConfig
from installer.errors import Interrupted, KfinstallError, PreflightError
from installer.interrupt import interrupt_sets
from installer.limited import (
    HOST_PHASES,
    LimitedRun,
    check_limit_phases,
    converged_roles,
    converged_roles_after,
    first_host_refusals,
    limited_run,
)
from installer.lock import run_lock
from installer.log import LOG, run_log
from installer.phases import PHASES as PHASE_OBJECTS
from installer.phases import UP_PHASES, PhaseResult, RunContext, hosts, preflight
from installer.runs import RunRecord
from installer.state import HistoryEntry, State, read_state, write_state

PhaseFn = Callable[[RunContext], PhaseResult]


# The registry's run of each phase `up` runs, by name (the same objects `kfinstall plan` asks for plans).
PHASES: dict[str, PhaseFn] = {phase.name: phase.run for phase in PHASE_OBJECTS if phase.name in UP_PHASES}


# `result` of a run (summary, `-o json`, state history; README "Results"): ok only when every phase
# asked for ran and no step the site asked for was skipped.
RESULTS = ("ok", "incomplete", "failed", "interrupted")


@dataclass
class UpReport:
    run_id: str
    record: str
    phases: list[PhaseResult] = field(default_factory=list)
    result: str = "ok"
    # The run record's scrubber: a failed task's message (in a phase's failures) may echo a value it was
    # given, and this document goes to the terminal, -o json and summary.json alike.
    scrub: Callable[[Any], Any] | None = field(default=None, repr=False, compare=False)
    limit: tuple[str, ...] = ()  # `up --limit`: the only hosts the run gave tasks to

    def skipped(self) -> list[dict[str, str]]:
        """Every step asked for but skipped, with its phase, host and reason."""
        return [{"phase": p.name, **skip} for p in self.phases for skip in p.skipped]

    def as_dict(self) -> dict[str, Any]:
        hosts: dict[str, dict[str, int]] = {}
        for phase in self.phases:
            hosts.update(phase.hosts)
        document = {
            "runId": self.run_id,
            "record": self.record,
            "result": self.result,
            "skipped": self.skipped(),
            "hosts": hosts,
            "phases": [p.as_dict() for p in self.phases],
            **({"limit": list(self.limit)} if self.limit else {}),
        }
        return self.scrub(document) if self.scrub is not None else document


def summary_lines(report: UpReport) -> list[str]:
    """The text summary: each phase, per-host counts, every skipped step with its reason, the result."""
    lines = []
    for phase in report.phases:
        reason = phase.details.get("reason") if phase.status == "skipped" else None
        lines.append(f"{phase.name}: {phase.status} ({phase.duration_s:.1f} s)" + (f": {reason}" if reason else ""))
    for host, stats in sorted(report.as_dict()["hosts"].items()):
        lines.append(f"  {host}: " + " ".join(f"{k}={v}" for k, v in stats.items()))
    skipped = report.skipped()
    for skip in skipped:
        lines.append(f"  SKIPPED on {skip['host']} ({skip['phase']}): {skip['step']}: {skip['reason']}")
    if report.limit:
        lines.append(f"limited to {', '.join(report.limit)}: no other host got a task; platform and verify "
                     "(cluster-wide) did not run")
    verdict = f"result: {report.result}"
    if report.result == "incomplete":
        verdict += f": {len(skipped)} step(s) asked for were skipped (SKIPPED above); fix the reason and run again"
    lines += [verdict, f"run record: {report.record}"]
    return lines


def run_result(phases: list[PhaseResult], error: KfinstallError | None = None) -> str:
    """One of RESULTS: how a run ended, from its phases and the error that ended it, if any."""
    if isinstance(error, Interrupted):
        return "interrupted"
    if error is not None:
        return "failed"
    if any(p.status == "incomplete" or p.skipped for p in phases):
        return "incomplete"
    return "ok"


def selected_phases(only: str | None, start_at: str | None) -> list[str]:
    if only:
        return ["preflight", only] if only != "preflight" else ["preflight"]
    names = list(UP_PHASES)
    return names[names.index(start_at) :] if start_at else names


def against_installed(cfg: ClusterConfig) -> ClusterConfig:
    """`up` converges what is installed; it never changes channel or Kubernetes minor by itself.

    A channel change must go through `kfinstall upgrade` (hops, backups, migrations). A Kubernetes
    version left to the channel stays at the installed one: a defaulted version never upgrades.
    """
    state = read_state(cfg.state_dir)
    if state is None:
        return cfg
    if state.upgrade is not None:
        raise PreflightError(
            f"an upgrade to {state.upgrade.target_channel} is in progress (run {state.upgrade.run_id}); "
            "finish it with `kfinstall upgrade` before `up`"
        )
    if state.installed_channel and state.installed_channel != cfg.release.channel:
        raise PreflightError(
            f"{cfg.name} runs channel {state.installed_channel} but kfinstall.yaml says {cfg.release.channel}; "
            f"change channels with `kfinstall upgrade --to {cfg.release.channel}`"
        )
    if cfg.kubernetes_version_defaulted and state.kubernetes_version:
        return cfg.with_kubernetes_version(state.kubernetes_version)
    return cfg


def run_up(
    cfg: ClusterConfig,
    console: Console,
    *,
    only: str | None = None,
    start_at: str | None = None,
    confirm: Callable[[str], bool] | None = None,
    verbosity: int = 0,
    limit: str | None = None,
    lock: bool = True,
) -> UpReport:
    """Run the phases; raises PreflightError (3), PhaseFailed (4) or Interrupted (130).

    `verbosity` (-v count) reaches Ansible and kfinstall's log (installer/log.py). `limit` (an Ansible host
    pattern) runs preflight and the host phase on the matching hosts only (installer/limited.py). `lock`:
    take the cluster's run lock (False for a caller that holds it, such as `secrets rotate`)."""
    cfg = against_installed(cfg)
    limited = _limited(cfg, limit, only, start_at)
    names = selected_phases(only, start_at)
    if limited is not None:  # the cluster-wide phases do not run under --limit
        names = [n for n in names if n in HOST_PHASES]
    changing = [n for n in names if n in {"hosts", "platform"}]
    if changing and confirm is not None and not confirm(_question(cfg, changing, names, limited)):
        raise PreflightError("not confirmed; nothing was changed")
    with run_lock(cfg.state_dir, "up") if lock else contextlib.nullcontext():
        # Read before any phase: a state older than host_roles has the converged hosts only in the applied
        # record, which the host phase rewrites; _finish adds the limited hosts to these.
        converged_before = converged_roles(cfg) or {}
        record = RunRecord.start(cfg, "up " + " ".join(names) + (f" --limit {limit}" if limited else ""))
        ctx = RunContext(cfg=cfg, record=record, console=console, phases=tuple(names), verbosity=verbosity,
                         limit=limited.hosts if limited else (), contacts=limited.contacts if limited else (),
                         one_ansible_run={"preflight", "hosts"} <= set(names))
        report = UpReport(run_id=record.run_id, record=str(record.path), scrub=record.clean, limit=ctx.limit)
        with run_log(record, verbosity), interrupt_sets(ctx.cancelled):
            try:
                for name in names:
                    _stop_if_asked(ctx, name)
                    LOG.info("phase %s: starting (run %s)", name, record.run_id)
                    report.phases.append(PHASES[name](ctx))
                    LOG.info("phase %s: %s in %.1f s", name, report.phases[-1].status, report.phases[-1].duration_s)
                    _record_applied(ctx, report.phases[-1])
            except KfinstallError as exc:
                # A failed phase's own result, with its host counts; otherwise just its name and the error.
                failed = exc.phase if isinstance(exc.phase, PhaseResult) else PhaseResult(name, type(exc).__name__)
                if not any(phase is failed for phase in report.phases):  # preflight refused in the host phase's run
                    report.phases.append(failed)
                report.result = run_result(report.phases, exc)
                # The message goes to the terminal and -o json unfiltered: a tool's error text (Helm, Pulumi,
                # a failed task) may echo a value it was given, so the run's secrets are scrubbed from it here.
                exc.message = record.clean_text(exc.message)
                exc.args = (exc.message,)
                LOG.info("up %s: %s", report.result, exc.message)
                _finish(cfg, report, record, converged_before)
                exc.report = report
                raise
            report.result = run_result(report.phases)
            LOG.info("up %s; %d step(s) skipped", report.result, len(report.skipped()))
        _finish(cfg, report, record, converged_before)
        return report


def _limited(cfg: ClusterConfig, limit: str | None, only: str | None, start_at: str | None) -> LimitedRun | None:
    """`--limit`: bad input (exit 2) for a pattern matching no host or a cluster-wide phase; a refusal
    (exit 3, nothing touched) for what a limited run cannot do safely (installer/limited.py)."""
    if limit is None:
        refusals = first_host_refusals(cfg, converged_roles(cfg)) if "hosts" in selected_phases(only, start_at) else []
        if refusals:
            raise PreflightError("up refused (nothing was changed):\n  " + "\n  ".join(refusals))
        return None
    check_limit_phases(only, start_at)
    limited = limited_run(cfg, limit, converged_roles(cfg))
    if limited.refusals:
        raise PreflightError("up --limit refused (nothing was changed):\n  " + "\n  ".join(limited.refusals))
    return limited


def run_check(cfg: ClusterConfig, console: Console, verbosity: int = 0, limit: tuple[str, ...] = (),
              contacts: tuple[str, ...] = ()) -> PhaseResult:
    """Preflight, then the host phase in check/diff mode: what would change, changing nothing.

    Under the cluster's lock like `up`: it reaches every host over SSH, and its record and fact
    cache must not mix with a run that is changing them.
    """
    with run_lock(cfg.state_dir, "plan --check-hosts"):
        record = RunRecord.start(cfg, "plan --check-hosts")
        ctx = RunContext(cfg=cfg, record=record, console=console, phases=("preflight", "hosts"), verbosity=verbosity,
                         limit=limit, contacts=contacts)
        try:
            with interrupt_sets(ctx.cancelled):
                preflight.run(ctx)
                _stop_if_asked(ctx, "hosts")
                return hosts.run(ctx, check=True)
        finally:
            record.seal()


def _record_applied(ctx: RunContext, result: PhaseResult) -> None:
    """`plan` diffs against what was applied (installer.applied): a phase's part is recorded only once
    it succeeded in full; a failed or incomplete phase leaves the previous record as it was."""
    from installer.applied import PARTS, record_apply

    if result.name in PARTS and result.status == "ok":
        record_apply(ctx.cfg, (result.name,), run_id=ctx.record.run_id, limit=ctx.limit)


def _stop_if_asked(ctx: RunContext, phase: str) -> None:
    """A stop that a phase's own children did not turn into Interrupted ends the run before the next phase."""
    if ctx.cancel_requested():
        raise Interrupted(f"interrupted before the {phase} phase; run record {ctx.record.path}; re-run to converge")


CONFIRM_ACTIONS = 4  # per phase in the confirmation; `kfinstall plan` shows them all


def _question(cfg: ClusterConfig, changing: list[str], names: list[str], limited: LimitedRun | None = None) -> str:
    """What `up` asks before changing anything: the plan's summary of the phases it runs and every
    warning of the plan, then the question (`kfinstall plan` is the whole plan)."""
    from installer.plan import build_plan

    plan = build_plan(cfg).as_dict()
    hosts = len(cfg.inventory.hosts)
    lines = [f"Plan for cluster {cfg.name}: profile {plan['profile']}, channel {plan['channel']}, "
             f"Kubernetes {plan['kubernetesVersion']}, {hosts} host(s)"]
    for phase in plan["phases"]:
        if phase["name"] not in names or not phase["runs"]:
            continue
        actions = phase["actions"]
        shown = "; ".join(actions[:CONFIRM_ACTIONS])
        more = f"; and {len(actions) - CONFIRM_ACTIONS} more (kfinstall plan)" if len(actions) > CONFIRM_ACTIONS else ""
        lines.append(f"  {phase['name']}: {shown}{more}")
    warnings = plan["warnings"]
    lines += [f"{len(warnings)} warning(s):"] if warnings else []
    lines += [f"  {w['severity']}: " + (f"{_where(w)}: " if w.get("file") else "") + w["message"] for w in warnings]
    if limited is not None:
        lines += limited.lines()
        lines.append(f"Apply {' and '.join(changing)} to {', '.join(limited.hosts)} of cluster {cfg.name} only?")
        return "\n".join(lines)
    lines.append(f"Apply {' and '.join(changing)} to cluster {cfg.name} ({hosts} host(s))?")
    return "\n".join(lines)


def _where(warning: dict[str, Any]) -> str:
    """file[:line:column] of a plan warning."""
    line = warning.get("line")
    return f"{warning['file']}:{line}:{warning.get('column') or 1}" if line else str(warning["file"])


def _finish(cfg: ClusterConfig, report: UpReport, record: RunRecord, converged_before: dict[str, list[str]]) -> None:
    record.seal()
    record.write_json("summary.json", report.as_dict())
    state = read_state(cfg.state_dir) or State(cluster=cfg.name)
    done = [p.name for p in report.phases if p.status == "ok"]
    state.phases_done = sorted(set(state.phases_done) | set(done))
    state.last_run_id = report.run_id
    if "hosts" in done:
        state.kubernetes_version = cfg.kubernetes_version
    if any(p.name == "hosts" and p.status in ("ok", "incomplete") for p in report.phases):
        state.host_roles = converged_roles_after(cfg, converged_before, report.limit)
    if any(p.name == "hosts" for p in report.phases):
        # The host phase ran on these hosts (failed halfway included): a later reset must undo it again, so
        # they are no longer among the hosts already reset (installer/reset.py leaves those out).
        ran_on = set(report.limit) if report.limit else {h.name for h in cfg.inventory.hosts}
        state.reset_hosts = [h for h in state.reset_hosts if h not in ran_on]
    if "platform" in done:
        state.installed_channel = cfg.release.channel
    state.history.append(
        HistoryEntry(
            at=time.strftime("%FT%TZ", time.gmtime()),
            action="up",
            run_id=report.run_id,
            to_channel=cfg.release.channel,
            result=report.result,
        )
    )
    write_state(cfg.state_dir, state)
