"""What one hop of a route does, by kind (HOP_RUNNERS); the executor (executor.py) runs them in order.

    kubernetes hop: playbooks/upgrade.yml (kf_upgrade_action=kubernetes) with the hop's minor: the
                    Kubernetes packages and kubeadm upgrade, node by node
    platform hop:   Pulumi preflight first (nothing changes when it cannot run), the migrations
                    (migration_steps.py, whose checks refuse before nodes change), node runtime changes
                    (kf_upgrade_action=runtime) when containerd or the driver move, then the platform
                    program with the new channel's pins
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from installer.config.resolved import ClusterConfig
from installer.errors import Interrupted, PhaseFailed, PreflightError
from installer.phases.base import RunContext
from installer.releases import load_release
from installer.upgrade.backup import checked_host_keys
from installer.upgrade.executor import HopRunner
from installer.upgrade.facts import ClusterFacts
from installer.upgrade.migration_steps import run_migrations
from installer.upgrade.route import Hop
from installer.upgrade.rules import load_rules

UPGRADE_PLAYBOOK = "upgrade.yml"


def hop_config(cfg: ClusterConfig, hop: Hop) -> ClusterConfig:
    """The configuration a hop deploys: its target channel's pins at its target Kubernetes version."""
    spec = cfg.spec
    kubernetes = spec.kubernetes.model_copy(update={"version": hop.kubernetes_to})
    new_spec = spec.model_copy(update={"channel": hop.to_channel, "kubernetes": kubernetes})
    return dataclasses.replace(
        cfg, cluster=cfg.cluster.model_copy(update={"spec": new_spec}), release=load_release(hop.to_channel)
    )


# The upgrade playbook ----------------------------------------------------------------------------


def host_keys(ctx: RunContext) -> Any:
    """The site's SSH host-key policy, checked (keys recorded) once per run, before the first playbook.

    Every later playbook of the run (facts, hops, the cluster backup) reuses it: checking again would
    probe every host again (up to ~30 s per silent one) and replace host-keys.json, turning this run's
    "pinned" keys into "verified" ones in the record."""
    if ctx.host_keys is None:
        ctx.host_keys = checked_host_keys(ctx.cfg, ctx.record, ctx.console)
    return ctx.host_keys


def upgrade_playbook(ctx: RunContext, extravars: dict[str, Any], what: str) -> None:
    """playbooks/upgrade.yml with `extravars`; Interrupted or PhaseFailed naming `what` and the record."""
    from installer.adapters.ansible import run_playbook

    inventory = ctx.cfg.inventory.path
    if inventory is None or not ctx.cfg.profile.host_phase:
        raise PreflightError(f"{what}: profile {ctx.cfg.spec.profile} has no hosts kfinstall manages")
    result = run_playbook(
        UPGRADE_PLAYBOOK,
        ctx.cfg.inventory,
        extravars,
        ctx.record.path / "ansible",
        sink=ctx.record.append_event,
        cancel=ctx.cancel_requested,
        host_keys=host_keys(ctx),
        verbosity=ctx.verbosity,
    )
    if ctx.cancel_requested() or result.status == "canceled":
        raise Interrupted(
            f"interrupted during {what}; run record {ctx.record.path}; run the same upgrade again to "
            "resume (finished hops are recorded in state.json)"
        )
    if not result.ok:
        lines = [f"  {f.host}: task '{f.task}': {f.message}" for f in result.failures]
        raise PhaseFailed(
            "\n".join(
                [
                    f"{what} failed ({result.status}, rc {result.rc}); run record {ctx.record.path}",
                    *lines,
                    "fix the cause and run the same upgrade again: finished hops are not repeated",
                ]
            )
        )


# The hops ----------------------------------------------------------------------------------------


def runtime_gate_vars(kubernetes: str) -> dict[str, Any]:
    """The node runtime gate for the playbook's precheck, from upgrade-rules.yml (the strictest that applies)."""
    applying = load_rules().requirements_for(kubernetes)
    if not applying:
        return {"kf_upgrade_runtime_from_minor": ""}
    last = applying[-1]
    return {
        "kf_upgrade_runtime_from_minor": last.from_kubernetes,
        "kf_upgrade_containerd_min": last.containerd_min,
        "kf_upgrade_cgroup_version": last.cgroup_version,
    }


def drain_vars(grace_period: int) -> dict[str, Any]:
    """How the playbook drains a node (kube_upgrade/tasks/drain.yml): every pod, a notebook server's too,
    gets `grace_period` seconds between SIGTERM and SIGKILL."""
    return {"kf_upgrade_drain_grace_period": grace_period}


def kubernetes_hop(ctx: RunContext, hop: Hop, facts: ClusterFacts, drain: Mapping[str, Any] | None = None) -> None:
    target = hop_config(ctx.cfg, hop)
    extra = {**target.ansible_vars(), **runtime_gate_vars(hop.kubernetes_to), **(drain or {}),
             "kf_upgrade_action": "kubernetes"}
    upgrade_playbook(ctx, extra, f"hop {hop.index} ({hop.title()})")
    record_hop(ctx, target, "hosts")


def platform_hop(ctx: RunContext, hop: Hop, facts: ClusterFacts, drain: Mapping[str, Any] | None = None) -> None:
    from installer.adapters import pulumi as pulumi_adapter
    from installer.phases import platform

    target = hop_config(ctx.cfg, hop)
    pulumi_adapter.preflight(target)  # before any change: a clear PreflightError when it cannot run
    # Migrations first: their checks (TFJob CRDs, Pod Security dry run) refuse before nodes change.
    target = run_migrations(ctx, hop, target, facts)
    if hop.node_changes and target.profile.host_phase:
        driver = any(c.component == "nvidia-driver" for c in hop.node_changes)
        extra = {**target.ansible_vars(), **(drain or {}), "kf_upgrade_action": "runtime",
                 "kf_upgrade_driver_changed": driver}
        upgrade_playbook(ctx, extra, f"hop {hop.index} node runtime")
    platform.run(dataclasses.replace(ctx, cfg=target))
    record_hop(ctx, target, "platform")


def record_hop(ctx: RunContext, applied: ClusterConfig, part: str) -> None:
    """`plan` diffs against the last recorded apply (installer.applied): a hop that succeeded applied
    `applied` (its channel's pins, its Kubernetes version, the migrated values), so its part is recorded
    as `up` records a phase's; a failed hop leaves the previous record as it was."""
    from installer.applied import record_apply

    record_apply(applied, (part,), run_id=ctx.record.run_id)


HOP_RUNNERS: dict[str, HopRunner] = {"kubernetes": kubernetes_hop, "platform": platform_hop}


def hop_runners(grace_period: int) -> dict[str, HopRunner]:
    """The runners with the drain's grace period bound (`kfinstall upgrade --grace-period`)."""
    drain = drain_vars(grace_period)

    def kubernetes(ctx: RunContext, hop: Hop, facts: ClusterFacts) -> None:
        kubernetes_hop(ctx, hop, facts, drain)

    def platform(ctx: RunContext, hop: Hop, facts: ClusterFacts) -> None:
        platform_hop(ctx, hop, facts, drain)

    return {"kubernetes": kubernetes, "platform": platform}
