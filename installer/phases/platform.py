"""The platform phase: the Pulumi program (stacks.program) through installer.adapters.pulumi."""

from __future__ import annotations

from installer.errors import NotBuilt
from installer.phases.base import PhaseResult, RunContext


def run(ctx: RunContext) -> PhaseResult:
    raise NotBuilt(
        "the platform phase is not wired into `up` yet (issue 4); "
        f"`kfinstall render -i {ctx.cfg.site}` shows what it will create"
    )
