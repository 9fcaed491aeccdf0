"""What every phase receives (RunContext) and returns (PhaseResult)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from installer.config.resolved import ClusterConfig
from installer.runs import RunRecord

# Per run, under its record: the preflight's facts, reused by the host phase of the same run.
FACTS_CACHE = "facts"


@dataclass
class RunContext:
    cfg: ClusterConfig
    record: RunRecord
    console: Console
    phases: tuple[str, ...] = ()
    cancelled: threading.Event = field(default_factory=threading.Event)
    # The SSH host-key policy once checked in this run (installer/upgrade/run.py checks it once, before
    # the first playbook, and reuses it: a second check would replace the record of the keys it pinned).
    host_keys: Any = None

    def cancel_requested(self) -> bool:
        return self.cancelled.is_set()


@dataclass
class PhaseResult:
    name: str
    # ok | incomplete (ran, but skipped steps the site asked for: `skipped`) | failed | interrupted |
    # skipped (the phase does not apply: details["reason"], e.g. a profile without hosts)
    status: str
    duration_s: float = 0.0
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    # Steps asked for but skipped on purpose, each {"host", "step", "reason", "task"}.
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "duration_s": round(self.duration_s, 2),
            "hosts": self.hosts,
            "skipped": self.skipped,
            **self.details,
        }


def outcome(ok: bool, skipped: list[dict[str, str]]) -> str:
    """A phase's status from its tool's verdict and the steps its roles skipped on purpose."""
    if not ok:
        return "failed"
    return "incomplete" if skipped else "ok"

