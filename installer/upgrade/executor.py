"""Run a route's hops in order: lock, run record, upgrade preflight, then per hop: confirm, fresh facts,
backup, the hop's runner.

state.json is written after every completed hop (installed channel, Kubernetes version, a history
entry), so an interrupted or failed upgrade resumes on the next run: the route is planned again from
the installed versions and only the missing hops remain. A refusal (the route's or a hop's
preflight, or a hop not confirmed) changes nothing of the hop it stops.

The executor touches no site itself: what facts are, what a backup and each kind of hop do, come in
as HopWork (run.py passes the live ones, hops.py holds the runners; tests pass fakes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from installer.config.resolved import ClusterConfig
from installer.errors import KfinstallError, PreflightError
from installer.interrupt import interrupt_sets
from installer.lock import run_lock
from installer.phases.base import RunContext
from installer.runs import RunRecord
from installer.state import HistoryEntry, State, UpgradeProgress, read_state, write_state
from installer.upgrade.facts import ClusterFacts
from installer.upgrade.preflight import hop_problems, refuse_if, route_problems
from installer.upgrade.route import Hop, Route

FactsCollector = Callable[[RunContext, Hop], ClusterFacts]
HopRunner = Callable[[RunContext, Hop, ClusterFacts], None]
Backup = Callable[[RunContext, Hop], None]
Confirm = Callable[[str], bool]


@dataclass(frozen=True)
class HopWork:
    """What the executor calls for every hop: facts before it, its backup, its runner by kind, a confirmation."""

    collect: FactsCollector
    runners: Mapping[str, HopRunner]
    backup: Backup
    confirm: Confirm | None = None


@dataclass
class UpgradeReport:
    run_id: str
    record: str
    route: Route
    done: list[str] = field(default_factory=list)
    result: str = "running"

    def as_dict(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "record": self.record,
            "result": self.result,
            "hopsDone": self.done,
            "route": self.route.as_dict(),
        }


def _now() -> str:
    return time.strftime("%FT%TZ", time.gmtime())


def execute(cfg: ClusterConfig, route: Route, console: Console, work: HopWork, verbosity: int = 0) -> UpgradeReport:
    """Run every hop; raises PreflightError (3), PhaseFailed (4) or Interrupted (130). `verbosity`: -v count."""
    with run_lock(cfg.state_dir, "upgrade"):
        record = RunRecord.start(cfg, f"upgrade --to {route.to_channel}")
        record.write_json("route.json", route.as_dict())
        report = UpgradeReport(run_id=record.run_id, record=str(record.path), route=route)
        ctx = RunContext(cfg=cfg, record=record, console=console, verbosity=verbosity)
        # From here a stop signal sets the flag: the preflight's kubectl, host-key check and playbook honour it.
        with interrupt_sets(ctx.cancelled):
            facts = work.collect(ctx, route.hops[0])
        refuse_if(route_problems(facts, route, training_enabled=cfg.spec.components.training.enabled), "the route")
        state = _begin(cfg, route, record.run_id)
        try:
            with interrupt_sets(ctx.cancelled):
                for hop in route.hops:
                    first = facts if hop.index == 1 else None
                    _one_hop(ctx, hop, state, report, work, first)
        except KfinstallError:
            report.result = "failed"
            record.write_json("summary.json", report.as_dict())
            raise
        state.upgrade = None
        state.history.append(
            HistoryEntry(
                at=_now(),
                action="upgrade",
                from_channel=route.from_channel,
                to_channel=route.to_channel,
                run_id=record.run_id,
                result="ok",
                kubernetes_from=route.kubernetes_from,
                kubernetes_to=route.kubernetes_to,
            )
        )
        write_state(cfg.state_dir, state)
        report.result = "ok"
        record.write_json("summary.json", report.as_dict())
        return report


def _begin(cfg: ClusterConfig, route: Route, run_id: str) -> State:
    """The state with this upgrade in progress; a resumed upgrade to the same channel keeps its progress."""
    state = read_state(cfg.state_dir) or State(cluster=cfg.name)
    if state.upgrade is None or state.upgrade.target_channel != route.to_channel:
        state.upgrade = UpgradeProgress(
            target_channel=route.to_channel,
            run_id=run_id,
            started_at=_now(),
            target_kubernetes=route.kubernetes_to if route.kubernetes_explicit else None,
        )
    state.last_run_id = run_id
    write_state(cfg.state_dir, state)
    return state


def _one_hop(
    ctx: RunContext, hop: Hop, state: State, report: UpgradeReport, work: HopWork, facts: ClusterFacts | None
) -> None:
    if work.confirm is not None and not work.confirm(
        f"Hop {hop.index}/{len(report.route.hops)}: {hop.title()}. Go on?"
    ):
        raise PreflightError(
            f"not confirmed before hop {hop.index}; {len(report.done)} hop(s) done and recorded, "
            "run the same command again to resume"
        )
    ctx.console.print(f"==> hop {hop.index}: {hop.title()}", markup=False)
    facts = facts or work.collect(ctx, hop)
    refuse_if(
        hop_problems(facts, hop, training_enabled=ctx.cfg.spec.components.training.enabled),
        f"hop {hop.index} ({hop.title()})",
    )
    work.backup(ctx, hop)
    entry = dict(
        action=f"upgrade-{hop.kind}",
        from_channel=hop.from_channel,
        to_channel=hop.to_channel,
        run_id=ctx.record.run_id,
        hop=hop.key,
        kubernetes_from=hop.kubernetes_from,
        kubernetes_to=hop.kubernetes_to,
    )
    try:
        work.runners[hop.kind](ctx, hop, facts)
    except KfinstallError:
        state.history.append(HistoryEntry(at=_now(), result="failed", **entry))
        write_state(ctx.cfg.state_dir, state)
        raise
    _hop_done(ctx, hop, state, entry)
    report.done.append(hop.key)


def _hop_done(ctx: RunContext, hop: Hop, state: State, entry: dict[str, Any]) -> None:
    """Record the hop in state.json at once: a later failure or stop resumes after it."""
    state.installed_channel = hop.to_channel
    state.kubernetes_version = hop.kubernetes_to
    if state.upgrade is not None:
        state.upgrade.hops_done.append(hop.key)
    state.history.append(HistoryEntry(at=_now(), result="ok", **entry))
    write_state(ctx.cfg.state_dir, state)
