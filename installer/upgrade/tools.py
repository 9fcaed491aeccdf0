"""The programs an upgrade route runs on this machine, checked before anything happens (issue 15 item 8).

A hop used to find out halfway that it needs a program: the kube-prometheus-stack CRD migration shells
out to `helm pull`, and a platform hop checks the Pulumi CLI and plugins only when it starts, after the
Kubernetes hops before it have already run. Here the whole route is checked first: each migration step's
programs (migration_steps.step_programs, from the step's own command builder) and, when the route has a
platform hop, the Pulumi preflight for that hop's configuration. A missing program refuses the upgrade
(exit 3) naming it, the hop and the migration that needs it. kubectl is checked by the upgrade's first
read of the cluster (installer.adapters.kube.site_kubectl), before this route's first change too.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass

from installer.config.resolved import ClusterConfig
from installer.errors import PreflightError
from installer.upgrade.hops import hop_config
from installer.upgrade.migration_steps import step_programs
from installer.upgrade.route import Route

Which = Callable[[str], str | None]
PulumiCheck = Callable[[ClusterConfig], None]  # raises PreflightError listing what is missing


@dataclass(frozen=True)
class Need:
    """One program a hop runs, why, and where it was found (None: not on PATH)."""

    program: str
    hop: int
    why: str
    found: str | None

    def as_dict(self) -> dict[str, object]:
        return {"program": self.program, "hop": self.hop, "why": self.why, "found": self.found}

    def text(self) -> str:
        where = f"found at {self.found}" if self.found else "NOT on PATH: the upgrade refuses before any change"
        return f"{self.program} ({self.why}): {where}"


def route_needs(cfg: ClusterConfig, route: Route, which: Which = shutil.which) -> list[Need]:
    """Every program the route's migration steps run, per hop."""
    needs = []
    for hop in route.hops:
        target = hop_config(cfg, hop)
        for name in hop.migrations:
            for program in sorted(step_programs(name, target)):
                needs.append(Need(program, hop.index, f"hop {hop.index}, migration {name}", which(program)))
    return needs


def _pulumi_preflight(cfg: ClusterConfig) -> None:
    from installer.adapters import pulumi

    pulumi.preflight(cfg, kubeconfig=False)  # the kubeconfig is checked with the cluster's first read


def tool_problems(cfg: ClusterConfig, route: Route, which: Which = shutil.which,
                  pulumi_check: PulumiCheck | None = None) -> list[str]:
    """What is missing on this machine for the whole route, one line each (empty: everything is there)."""
    problems = [
        f"{need.program} is not on PATH, and {need.why} runs it; install {need.program} on this machine "
        "(or put it on PATH) and run the upgrade again"
        for need in route_needs(cfg, route, which) if need.found is None
    ]
    platform = next((hop for hop in route.hops if hop.kind == "platform"), None)
    if platform is not None:
        try:
            (pulumi_check or _pulumi_preflight)(hop_config(cfg, platform))
        except PreflightError as exc:
            problems.append(f"hop {platform.index} ({platform.title()}): {exc.message}")
    return problems
