"""The platform phase: the Pulumi program (stacks.program) through installer.adapters.pulumi.

The adapter's preflight (CLI, plugins, kubeconfig, passphrase) raises PreflightError (exit 3)
with the fix for each missing piece; a failed update raises PhaseFailed (exit 4).
"""

from __future__ import annotations

import time

from installer.adapters import pulumi as engine
from installer.phases.base import PhaseResult, RunContext


def check(ctx: RunContext) -> None:
    """Part of preflight: refuse before the host phase when the platform phase could not run."""
    engine.preflight(ctx.cfg)


def run(ctx: RunContext) -> PhaseResult:
    start = time.monotonic()

    def on_output(line: str) -> None:
        ctx.record.append_event({"event": "pulumi", "line": line.rstrip()})
        ctx.console.print(line.rstrip(), markup=False, highlight=False)

    summary = engine.up(ctx.cfg, on_output=on_output)
    ctx.record.write_json("pulumi-up.json", summary.as_dict())
    return PhaseResult("platform", "ok", time.monotonic() - start, details={"pulumi": summary.as_dict()})
