"""How a platform hop runs each migration of the table (migration_table.py): one step per row.

A step receives the hop's run (context, facts, the command and probe it may use) and the
configuration the hop deploys so far; it returns that configuration (changed only by a
configuration-level migration) and the note the run record keeps for it
(runs/<id>/migrations-hop-NN.json). The checks refuse with PreflightError before anything changes;
the computing is in migrations.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installer import catalogue
from installer.adapters import kube
from installer.config.resolved import ClusterConfig
from installer.errors import PhaseFailed, PreflightError
from installer.interrupt import run_child
from installer.phases.base import RunContext
from installer.upgrade import migrations
from installer.upgrade.facts import ClusterFacts, Z2jhSettings, z2jh_settings
from installer.upgrade.migration_table import (
    INGRESS_SWITCH,
    KPS_CRDS,
    POD_SECURITY,
    TRAINING_STANDALONE,
    Z2JH_3_TO_4,
)
from installer.upgrade.route import Hop
from installer.upgrade.rules import load_rules

Command = Callable[[list[str]], None]
Probe = Callable[[list[str]], tuple[int, str, str]]
Renderer = Callable[[RunContext, Hop], dict[str, str]]


# The hub's settings ------------------------------------------------------------------------------


def with_jupyterhub_values(cfg: ClusterConfig, values: dict[str, Any]) -> ClusterConfig:
    components = cfg.spec.components
    jupyterhub = components.jupyterhub.model_copy(update={"values": values})
    spec = cfg.spec.model_copy(update={"components": components.model_copy(update={"jupyterhub": jupyterhub})})
    return dataclasses.replace(cfg, cluster=cfg.cluster.model_copy(update={"spec": spec}))


def z2jh_from_config(cfg: ClusterConfig) -> Z2jhSettings | None:
    """What the hub will run with: kfinstall's own allow config (stacks/jupyterhub.py) plus the overrides."""
    if not cfg.spec.components.jupyterhub.enabled:
        return None
    values = cfg.spec.components.jupyterhub.values
    settings = z2jh_settings(values)
    # kfinstall always says who may log in (allow_all, or the LDAP allowed_groups); only an
    # override that turns allow_all off without a list of its own leaves the hub closed.
    config = (values.get("hub") or {}).get("config") or {}
    turned_off = any(isinstance(section, dict) and section.get("allow_all") is False for section in config.values())
    return dataclasses.replace(settings, allow_configured=settings.allow_configured or not turned_off)


def migrated_config(target: ClusterConfig, hop: Hop) -> ClusterConfig:
    """The hop's configuration-level migrations applied to what the platform phase deploys."""
    if not any(rule.migration in hop.migrations for rule in load_rules().jupyterhub.major_migrations):
        return target
    settings = z2jh_from_config(target)
    values = migrations.z2jh_values_3_to_4(
        target.spec.components.jupyterhub.values, allowed_elsewhere=bool(settings and settings.allow_configured)
    )
    return with_jupyterhub_values(target, values)


# Commands and read-only probes -------------------------------------------------------------------


TIMED_OUT = 124  # the exit status timeout(1) reports; a command that ran out of time is judged as failed


def _run_tool(argv: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """kubectl through the site's door (installer.adapters.kube), any other tool (helm) from PATH; both as
    an argv list under the run's stop flag (Interrupted). Running out of time is a failed result, not a
    traceback."""
    try:
        if argv[0] == kube.KUBECTL:
            return kube.run_argv(argv, timeout_s=timeout_s)
        tool = shutil.which(argv[0])
        if tool is None:
            raise PreflightError(f"{argv[0]} is not on PATH; the migration needs it")
        return run_child([tool, *argv[1:]], timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, TIMED_OUT, "", f"no answer within {timeout_s:g} s")


def _command(argv: list[str]) -> None:
    """Run a changing command; PhaseFailed naming it and its first line of error when it fails."""
    done = _run_tool(argv, timeout_s=600)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no output"])[0]
        raise PhaseFailed(f"{' '.join(argv[:3])} failed: {first}")


def _probe(argv: list[str]) -> tuple[int, str, str]:
    """Run a read-only command; (rc, stdout, stderr) for the caller to judge."""
    done = _run_tool(argv, timeout_s=120)
    return done.returncode, done.stdout, done.stderr


# Pod Security labels -----------------------------------------------------------------------------


def target_namespace_levels(ctx: RunContext, hop: Hop) -> dict[str, str]:
    """The Pod Security level of every namespace the target program creates: the catalogue's levels
    for the hop's configuration (installer.catalogue, the table stacks/ build the namespaces from),
    without rendering the program."""
    from installer.upgrade.hops import hop_config  # hops imports this module: a top-level import would cycle

    return dict(catalogue.namespace_levels(hop_config(ctx.cfg, hop)))


def pod_security_check(levels: dict[str, str], kubeconfig: Path, probe: Probe) -> dict[str, str]:
    """Dry-run the target levels on the namespaces that exist; PreflightError listing violating pods."""
    rc, listed, err = probe(kube.kubectl_argv(kubeconfig, "get", "namespaces", "-o", "name"))
    if rc != 0:
        raise PreflightError(f"Pod Security check: cannot list namespaces: {err.strip() or 'no output'}")
    existing = {line.removeprefix("namespace/") for line in listed.split()}
    checked, problems = {}, []
    for namespace, level in sorted(levels.items()):
        if namespace not in existing:
            continue
        rc, _, err = probe(migrations.pod_security_dry_run(namespace, level, kubeconfig))
        warnings = migrations.pod_security_warnings(err)
        if rc != 0 or warnings:
            problems += [f"{namespace} ({level}): {w}" for w in warnings] or [f"{namespace}: {err.strip()}"]
        checked[namespace] = level
    if problems:
        raise PreflightError(
            "Pod Security levels of the target channel would reject running pods:\n  - " + "\n  - ".join(problems)
        )
    return checked


# training-operator kept standalone ---------------------------------------------------------------


def program_crds(cfg: ClusterConfig) -> set[str]:
    """The training CRDs the platform program applies for `cfg` (none when training is off)."""
    if not cfg.spec.components.training.enabled:
        return set()
    from stacks.training_crds import all_crds

    return {str(body["metadata"]["name"]) for body in all_crds().values()}


# ingress-nginx -> Traefik ------------------------------------------------------------------------


def _kubectl_listing(command: list[str], kinds: str, probe: Probe) -> dict[str, Any]:
    """`kubectl get <kinds> -o json` through the probe; a failure or non-JSON answer refuses the hop."""
    rc, listed, err = probe(command)
    if rc != 0:
        raise PreflightError(f"ingress switch: cannot list {kinds}: {err.strip() or 'no output'}")
    try:
        listing = json.loads(listed)
    except ValueError:
        raise PreflightError(f"ingress switch: kubectl did not answer with a JSON list of {kinds}") from None
    return listing if isinstance(listing, dict) else {}


def ingress_switch(installed: ClusterConfig, target: ClusterConfig, kubeconfig: Path,
                   probe: Probe) -> dict[str, Any]:
    """Check nothing of the operator's would go dark; record the old controller's address for the DNS pause."""
    old_class = installed.spec.networking.ingress.class_name or migrations.DEFAULT_CLASS["ingress-nginx"]
    new_class = target.spec.networking.ingress.class_name or migrations.DEFAULT_CLASS["traefik"]
    listing = _kubectl_listing(migrations.ingress_list_command(kubeconfig), "Ingresses", probe)
    migrations.ingress_switch_check(listing, old_class, new_class,
                                    set(target.release.charts) | set(installed.release.charts))
    rc, address, _ = probe(migrations.old_address_command(kubeconfig))
    if target.spec.networking.metallb.enabled:
        services = _kubectl_listing(migrations.service_list_command(kubeconfig), "Services", probe)
        migrations.pool_capacity_check(target.spec.networking.metallb.addresses, services)
    return {"controller": {"from": "ingress-nginx", "to": "traefik"},
            "ingressClass": {"from": old_class, "to": new_class},
            "oldAddress": address.strip() if rc == 0 and address.strip() else None,
            "host": target.spec.networking.ingress.host}


# The steps, one per row of the table ------------------------------------------------------------


@dataclass(frozen=True)
class MigrationRun:
    """What every step of one hop may use."""

    ctx: RunContext
    hop: Hop
    facts: ClusterFacts
    command: Command
    probe: Probe
    levels: Renderer
    kubeconfig: Path


# (the run, the configuration the hop deploys so far) -> (that configuration after the step, its note)
Step = Callable[[MigrationRun, ClusterConfig], tuple[ClusterConfig, Any]]


def _z2jh_3_to_4(run: MigrationRun, target: ClusterConfig) -> tuple[ClusterConfig, Any]:
    target = migrated_config(target, run.hop)
    return target, {"values": target.spec.components.jupyterhub.values}


def _training_standalone(run: MigrationRun, target: ClusterConfig) -> tuple[ClusterConfig, Any]:
    kept = migrations.training_operator_standalone(
        run.facts.crd_objects, program_crds(run.ctx.cfg), program_crds(target), load_rules()
    )
    return target, kept


def _pod_security(run: MigrationRun, target: ClusterConfig) -> tuple[ClusterConfig, Any]:
    return target, pod_security_check(run.levels(run.ctx, run.hop), run.kubeconfig, run.probe)


def _ingress_switch(run: MigrationRun, target: ClusterConfig) -> tuple[ClusterConfig, Any]:
    return target, ingress_switch(run.ctx.cfg, target, run.kubeconfig, run.probe)


def _kps_crds(run: MigrationRun, target: ClusterConfig) -> tuple[ClusterConfig, Any]:
    for argv in migrations.kps_crd_commands(target.release, run.ctx.record.path / "charts", run.kubeconfig):
        run.command(argv)
    return target, migrations.kps_crd_source(target.release)


def step_programs(name: str, target: ClusterConfig) -> set[str]:
    """The programs migration `name` runs on this machine besides kubectl (which the upgrade reaches through
    installer.adapters.kube and checks before it reads the cluster), from the step's own command builder."""
    if name == KPS_CRDS:
        commands = migrations.kps_crd_commands(target.release, Path("charts"), Path("kubeconfig"))
        return {argv[0] for argv in commands} - {kube.KUBECTL}
    return set()


STEPS: dict[str, Step] = {
    Z2JH_3_TO_4: _z2jh_3_to_4,
    TRAINING_STANDALONE: _training_standalone,
    POD_SECURITY: _pod_security,
    INGRESS_SWITCH: _ingress_switch,
    KPS_CRDS: _kps_crds,
}


def run_migrations(
    ctx: RunContext,
    hop: Hop,
    target: ClusterConfig,
    facts: ClusterFacts,
    command: Command = _command,
    probe: Probe = _probe,
    levels: Renderer = target_namespace_levels,
) -> ClusterConfig:
    """Run the hop's migrations in order; returns the configuration the platform phase deploys."""
    run = MigrationRun(ctx, hop, facts, command, probe, levels, kube.kubeconfig_path(ctx.cfg))
    notes: dict[str, Any] = {}
    for name in hop.migrations:
        target, notes[name] = STEPS[name](run, target)
    ctx.record.write_json(f"migrations-hop-{hop.index:02d}.json", notes)
    return target
