"""The verify phase: live checks of the platform (nodes, GPUs, storage, login, TFJob, serving, metrics)."""

from __future__ import annotations

from installer.errors import NotBuilt
from installer.phases.base import PhaseResult, RunContext


def run(ctx: RunContext) -> PhaseResult:
    raise NotBuilt("the verify phase is not wired into `up` yet (issue 4); it needs a live cluster")
