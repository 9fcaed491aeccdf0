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
    # The SSH host-key policy once checked in this run (installer/upgrade/hops.py host_keys checks it once, before
    # the first playbook, and reuses it: a second check would replace the record of the keys it pinned).
    host_keys: Any = None
    verbosity: int = 0  # -v count: Ansible's verbosity and kfinstall's log (installer/log.py)
    # `up --limit`: the only hosts that get host-phase tasks (installer/limited.py); empty means every host.
    limit: tuple[str, ...] = ()
    # Hosts outside the limit that its delegated tasks connect to: their SSH host keys are checked too.
    contacts: tuple[str, ...] = ()
    # `up` going on from preflight to the host phase: both in one Ansible run (playbooks/up.yml), the
    # host checks judged when preflight.yml's verdict task starts (installer/phases/preflight.py HostChecks,
    # which preflight puts into host_checks for the host phase).
    one_ansible_run: bool = False
    host_checks: Any = None

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


@dataclass(frozen=True)
class Component:
    """A versioned thing a phase installs (plan JSON `components[]`)."""

    name: str
    kind: str  # host-package | chart | image | kubernetes | manifest
    version: str
    source: str
    phase: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "version": self.version, "source": self.source,
                "phase": self.phase}


@dataclass(frozen=True)
class Step:
    """One play of the host playbooks and exactly the hosts Ansible targets with it."""

    playbook: str  # file name under playbooks/
    play: str
    hosts: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "play": self.play, "hosts": list(self.hosts)}


@dataclass(frozen=True)
class PhasePlan:
    """What one phase would do (plan JSON `phases[]`), computed by the phase itself without any SSH."""

    name: str
    runs: bool
    actions: tuple[str, ...] = ()
    reason: str = ""
    components: tuple[Component, ...] = ()
    steps: tuple[Step, ...] | None = None  # the host phase only

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"name": self.name, "runs": self.runs, "actions": list(self.actions),
                                 "reason": self.reason}
        if self.steps is not None:
            found["steps"] = [s.as_dict() for s in self.steps]
        return found


class Phase:
    """A phase of `kfinstall up`: `plan(cfg)` says what `run(ctx)` does, so `kfinstall plan` is the
    phases' own plans (installer/phases/__init__.py holds them in order)."""

    name: str = ""
    # False for a phase whose work another phase's run carries out (gcp's GKE cluster is created by the
    # platform's Pulumi update): it has a plan, and `up` has no separate step for it.
    separate_run: bool = True

    def plan(self, cfg: ClusterConfig) -> PhasePlan:
        raise NotImplementedError

    def run(self, ctx: RunContext) -> PhaseResult:
        raise NotImplementedError
