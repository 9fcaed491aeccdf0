"""`kfinstall upgrade`'s entry point: the executor (executor.py) bound to the live site.

The live parts are here: facts from the running site before each hop (kubectl for the cluster,
upgrade.yml's facts play for the hosts) and the backups before each hop. What a hop does is in
hops.py, which migration runs at which channel boundary in migration_table.py, and how a platform
hop runs each one in migration_steps.py.
"""

from __future__ import annotations

from rich.console import Console

from installer.config.resolved import ClusterConfig
from installer.phases.base import RunContext
from installer.upgrade.backup import (
    ansible_cluster_backup,
    hop_backup_folder,
    hub_db_backup,
    hub_db_skip_reason,
    take_backup,
)
from installer.upgrade.executor import Backup, Confirm, FactsCollector, HopRunner, HopWork, UpgradeReport, execute
from installer.upgrade.facts import ClusterFacts, collect_cluster_facts, kubectl_runner, read_host_facts
from installer.upgrade.hops import (  # noqa: F401 - hop_config and the hops stay importable from here
    HOP_RUNNERS,
    hop_config,
    host_keys,
    kubernetes_hop,
    platform_hop,
    upgrade_playbook,
)
from installer.upgrade.migration_steps import (  # noqa: F401 - importable from here as before the split
    migrated_config,
    pod_security_check,
    run_migrations,
    target_namespace_levels,
    with_jupyterhub_values,
    z2jh_from_config,
)
from installer.upgrade.route import Hop, Route
from installer.upgrade.rules import load_rules

_playbook = upgrade_playbook  # the name the tests call


def live_facts(ctx: RunContext, hop: Hop) -> ClusterFacts:
    """Facts from the running site: kubectl for the cluster, upgrade.yml's facts play for the hosts."""
    cfg = ctx.cfg
    run = kubectl_runner(cfg)  # refuses first when there is no cluster
    folder = ctx.record.path / "facts" / f"hop-{hop.index:02d}"
    if cfg.profile.host_phase and cfg.inventory.path is not None:
        upgrade_playbook(
            ctx,
            {**cfg.ansible_vars(), "kf_upgrade_action": "facts", "kf_upgrade_facts_dir": str(folder)},
            f"facts before hop {hop.index}",
        )
    return collect_cluster_facts(
        run, load_rules().training_operator.guarded_crds, read_host_facts(folder), z2jh_from_config(cfg)
    )


def backup_before(ctx: RunContext, hop: Hop) -> None:
    """Every backup before a hop; a cluster part that fails stops the upgrade before the hop."""
    cfg = ctx.cfg
    folder = hop_backup_folder(ctx.record.path, hop.index, hop.kind)
    cluster = ansible_cluster_backup(
        cfg, ctx.record.path / "ansible", ctx.cancel_requested, host_keys=lambda: host_keys(ctx),
        verbosity=ctx.verbosity,
    )
    skip = hub_db_skip_reason(cfg)
    hub = None if skip else hub_db_backup(kubectl_runner(cfg))
    take_backup(
        cfg,
        folder,
        cluster_backup=cluster if cfg.profile.host_phase else None,
        hub_backup=hub,
        hub_skipped=skip or "",
        label=hop.key,
    )


def run_upgrade(
    cfg: ClusterConfig,
    route: Route,
    console: Console,
    *,
    confirm: Confirm | None = None,
    collect: FactsCollector = live_facts,
    runners: dict[str, HopRunner] | None = None,
    backup: Backup = backup_before,
    verbosity: int = 0,
) -> UpgradeReport:
    """Run every hop; raises PreflightError (3), PhaseFailed (4) or Interrupted (130)."""
    work = HopWork(collect=collect, runners=runners or HOP_RUNNERS, backup=backup, confirm=confirm)
    return execute(cfg, route, console, work, verbosity=verbosity)
