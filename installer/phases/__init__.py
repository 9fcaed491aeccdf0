"""The phases of `kfinstall up`, in order: one registry that `up` runs and `plan` shows.

Each phase is an object with `plan(cfg)` (what it would do, no SSH) and `run(ctx)` (a PhaseResult;
raises on refusal or failure), so `kfinstall plan` is the phases' own plans, never re-derived.
"""

from __future__ import annotations

from installer.phases.base import Phase, PhasePlan, PhaseResult, RunContext
from installer.phases.hosts import HOSTS
from installer.phases.infrastructure import INFRASTRUCTURE
from installer.phases.platform import PLATFORM
from installer.phases.preflight import PREFLIGHT
from installer.phases.verify import VERIFY

PHASES: tuple[Phase, ...] = (PREFLIGHT, HOSTS, INFRASTRUCTURE, PLATFORM, VERIFY)

# The phases `up` runs one after another (--only/--from name them).
UP_PHASES = tuple(phase.name for phase in PHASES if phase.separate_run)

__all__ = ["PHASES", "UP_PHASES", "Phase", "PhasePlan", "PhaseResult", "RunContext"]
