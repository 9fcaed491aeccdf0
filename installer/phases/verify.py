"""The verify phase: live checks of the platform (nodes, GPUs, storage, login, TFJob, serving, metrics)."""

from __future__ import annotations

import time

from installer import verify as checks
from installer.config.resolved import ClusterConfig
from installer.errors import PhaseFailed
from installer.phases.base import Phase, PhasePlan, PhaseResult, RunContext


def run(ctx: RunContext) -> PhaseResult:
    start = time.monotonic()
    report = checks.verify(ctx.cfg)
    ctx.record.write_json("verify.json", report.as_dict())
    if not report.ok:
        failed = [c for c in report.checks if c.status == "failed"]
        raise PhaseFailed("verify failed:\n" + "\n".join(f"  {c.name}: {c.detail}" for c in failed))
    return PhaseResult("verify", "ok", time.monotonic() - start, details={"verify": report.as_dict()})


class VerifyPhase(Phase):
    name = "verify"

    def plan(self, cfg: ClusterConfig) -> PhasePlan:
        return PhasePlan(
            "verify",
            True,
            (
                "nodes Ready, GPUs allocatable, default StorageClass, JupyterHub login, "
                "a TFJob completes, a serving query answers, DCGM metrics in Prometheus",
            ),
        )

    def run(self, ctx: RunContext) -> PhaseResult:
        return run(ctx)


VERIFY = VerifyPhase()
