"""The host phase: playbooks/site.yml with the model's kf_* extra vars. A failure names host and task."""

from __future__ import annotations

from typing import Any

from installer.adapters.ansible import EventSink, PlaybookResult, run_playbook
from installer.adapters.ssh import HostKeyPolicy
from installer.errors import Interrupted, PhaseFailed
from installer.phases.base import FACTS_CACHE, PhaseResult, RunContext, outcome
from installer.progress import HostProgress

SITE_PLAYBOOK = "site.yml"


def run(ctx: RunContext, *, check: bool = False) -> PhaseResult:
    if not ctx.cfg.profile.host_phase:
        return PhaseResult("hosts", "skipped", details={"reason": f"profile {ctx.cfg.spec.profile} has no hosts"})
    inventory = ctx.cfg.inventory.path
    assert inventory is not None
    extravars = ctx.cfg.ansible_vars()
    ctx.record.write_json("ansible-vars.json", extravars)  # what the playbooks received
    with HostProgress(ctx.console, "hosts (check)" if check else "hosts") as view:
        result = run_playbook(
            SITE_PLAYBOOK,
            inventory,
            extravars,
            ctx.record.path / "ansible",
            check=check,
            sink=_recording(ctx, view),
            cancel=ctx.cancel_requested,
            facts_cache=ctx.record.path / FACTS_CACHE,
            host_keys=HostKeyPolicy.of(ctx.cfg),
        )
    phase = _to_phase(result, check)
    ctx.record.write_json("hosts.json", phase.as_dict())
    if ctx.cancel_requested() or result.status == "canceled":
        raise Interrupted(f"interrupted during the host phase; run record {ctx.record.path}; re-run to converge")
    if not result.ok and not check:  # in check mode a failure is a finding to report, not an error
        raise PhaseFailed(_failure_text(result, ctx), phase=phase)
    return phase


def _recording(ctx: RunContext, view: HostProgress) -> EventSink:
    """Every event goes to the run record (redacted) and to the live view."""

    def sink(event: dict[str, Any]) -> None:
        ctx.record.append_event(event)
        view(event)

    return sink


def _to_phase(result: PlaybookResult, check: bool) -> PhaseResult:
    skipped = [skip.__dict__ for skip in result.skipped]
    return PhaseResult(
        "hosts",
        outcome(result.ok, skipped),
        result.duration_s,
        hosts={name: stats.as_dict() for name, stats in result.hosts.items()},
        skipped=skipped,
        details={
            "check": check,
            "failures": [f.__dict__ for f in result.failures],
            **({"diffs": result.diffs} if check else {}),
        },
    )


def _failure_text(result: PlaybookResult, ctx: RunContext) -> str:
    lines = [f"host phase failed ({result.status}, rc {result.rc}); run record {ctx.record.path}"]
    lines += [f"  {f.host}: task '{f.task}': {f.message}" for f in result.failures]
    lines.append("fix the cause and run the same command again: finished tasks are not repeated")
    return "\n".join(lines)
