"""Execute a route: lock, run record, upgrade preflight, then per hop: confirm, fresh facts, backup, hop.

state.json is written after every completed hop (installed channel, Kubernetes version, a history
entry), so an interrupted or failed upgrade resumes on the next run: the route is planned again from
the installed versions and only the missing hops remain.
    kubernetes hop: playbooks/upgrade.yml (kf_upgrade_action=kubernetes) with the hop's minor
    platform hop:   Pulumi preflight first (nothing changes when it cannot run), node runtime
                    changes (kf_upgrade_action=runtime) when containerd or the driver move, the
                    migrations, then the platform phase with the new channel's pins
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from installer.config.resolved import ClusterConfig
from installer.errors import Interrupted, KfinstallError, PhaseFailed, PreflightError
from installer.interrupt import interrupt_sets, run_child
from installer.lock import run_lock
from installer.phases.base import RunContext
from installer.releases import load_release
from installer.runs import RunRecord
from installer.state import HistoryEntry, State, UpgradeProgress, read_state, write_state
from installer.upgrade import migrations
from installer.upgrade.backup import (
    ansible_cluster_backup,
    checked_host_keys,
    hub_db_backup,
    hub_db_skip_reason,
    take_backup,
)
from installer.upgrade.facts import (
    ClusterFacts,
    Z2jhSettings,
    collect_cluster_facts,
    kubectl_runner,
    read_host_facts,
    z2jh_settings,
)
from installer.upgrade.preflight import hop_problems, refuse_if, route_problems
from installer.upgrade.route import Hop, Route
from installer.upgrade.rules import load_rules

UPGRADE_PLAYBOOK = "upgrade.yml"
FactsCollector = Callable[[RunContext, Hop], ClusterFacts]
HopRunner = Callable[[RunContext, Hop, ClusterFacts], None]
Confirm = Callable[[str], bool]


@dataclass
class UpgradeReport:
    run_id: str
    record: str
    route: Route
    done: list[str] = field(default_factory=list)
    result: str = "running"

    def as_dict(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "record": self.record,
            "result": self.result,
            "hopsDone": self.done,
            "route": self.route.as_dict(),
        }


def _now() -> str:
    return time.strftime("%FT%TZ", time.gmtime())


def hop_config(cfg: ClusterConfig, hop: Hop) -> ClusterConfig:
    """The configuration a hop deploys: its target channel's pins at its target Kubernetes version."""
    spec = cfg.spec
    kubernetes = spec.kubernetes.model_copy(update={"version": hop.kubernetes_to})
    new_spec = spec.model_copy(update={"channel": hop.to_channel, "kubernetes": kubernetes})
    return dataclasses.replace(
        cfg, cluster=cfg.cluster.model_copy(update={"spec": new_spec}), release=load_release(hop.to_channel)
    )


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


# Facts ------------------------------------------------------------------------------------------


def live_facts(ctx: RunContext, hop: Hop) -> ClusterFacts:
    """Facts from the running site: kubectl for the cluster, upgrade.yml's facts play for the hosts."""
    cfg = ctx.cfg
    run = kubectl_runner(cfg.state_dir / "kubeconfig")  # refuses first when there is no cluster
    folder = ctx.record.path / "facts" / f"hop-{hop.index:02d}"
    if cfg.profile.host_phase and cfg.inventory.path is not None:
        _playbook(
            ctx,
            {**cfg.ansible_vars(), "kf_upgrade_action": "facts", "kf_upgrade_facts_dir": str(folder)},
            f"facts before hop {hop.index}",
        )
    return collect_cluster_facts(
        run, load_rules().training_operator.guarded_crds, read_host_facts(folder), z2jh_from_config(cfg)
    )


def _host_keys(ctx: RunContext) -> Any:
    """The site's SSH host-key policy, checked (keys recorded) once per run, before the first playbook.

    Every later playbook of the run (facts, hops, the cluster backup) reuses it: checking again would
    probe every host again (up to ~30 s per silent one) and replace host-keys.json, turning this run's
    "pinned" keys into "verified" ones in the record."""
    if ctx.host_keys is None:
        ctx.host_keys = checked_host_keys(ctx.cfg, ctx.record, ctx.console)
    return ctx.host_keys


def _playbook(ctx: RunContext, extravars: dict[str, Any], what: str) -> None:
    from installer.adapters.ansible import run_playbook

    inventory = ctx.cfg.inventory.path
    if inventory is None or not ctx.cfg.profile.host_phase:
        raise PreflightError(f"{what}: profile {ctx.cfg.spec.profile} has no hosts kfinstall manages")
    result = run_playbook(
        UPGRADE_PLAYBOOK,
        inventory,
        extravars,
        ctx.record.path / "ansible",
        sink=ctx.record.append_event,
        cancel=ctx.cancel_requested,
        host_keys=_host_keys(ctx),
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


# Hops -------------------------------------------------------------------------------------------


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


def kubernetes_hop(ctx: RunContext, hop: Hop, facts: ClusterFacts) -> None:
    target = hop_config(ctx.cfg, hop)
    extra = {**target.ansible_vars(), **runtime_gate_vars(hop.kubernetes_to), "kf_upgrade_action": "kubernetes"}
    _playbook(ctx, extra, f"hop {hop.index} ({hop.title()})")


def platform_hop(ctx: RunContext, hop: Hop, facts: ClusterFacts) -> None:
    from installer.adapters import pulumi as pulumi_adapter
    from installer.phases import platform

    target = hop_config(ctx.cfg, hop)
    pulumi_adapter.preflight(target)  # before any change: a clear PreflightError when it cannot run
    # Migrations first: their checks (TFJob CRDs, Pod Security dry run) refuse before nodes change.
    target = run_migrations(ctx, hop, target, facts)
    if hop.node_changes and target.profile.host_phase:
        driver = any(c.component == "nvidia-driver" for c in hop.node_changes)
        extra = {**target.ansible_vars(), "kf_upgrade_action": "runtime", "kf_upgrade_driver_changed": driver}
        _playbook(ctx, extra, f"hop {hop.index} node runtime")
    platform.run(dataclasses.replace(ctx, cfg=target))


Command = Callable[[list[str]], None]
Probe = Callable[[list[str]], tuple[int, str, str]]
Renderer = Callable[[RunContext, Hop], dict[str, str]]


def _command(argv: list[str]) -> None:
    tool = shutil.which(argv[0])
    if tool is None:
        raise PreflightError(f"{argv[0]} is not on PATH; the migration needs it")
    done = run_child([tool, *argv[1:]], timeout=600)  # argv list; a stop signal ends it (Interrupted)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no output"])[0]
        raise PhaseFailed(f"{' '.join(argv[:3])} failed: {first}")


def _probe(argv: list[str]) -> tuple[int, str, str]:
    """Run a read-only command; (rc, stdout, stderr) for the caller to judge."""
    tool = shutil.which(argv[0])
    if tool is None:
        raise PreflightError(f"{argv[0]} is not on PATH; the migration needs it")
    done = run_child([tool, *argv[1:]], timeout=120)  # argv list; a stop signal ends it (Interrupted)
    return done.returncode, done.stdout, done.stderr


def target_namespace_levels(ctx: RunContext, hop: Hop) -> dict[str, str]:
    """The Pod Security level of every namespace the target program creates (kfinstall render in a
    child process: the mock engine must not share a process with the real Pulumi run).

    The render holds Secret objects with their values (the Grafana admin password among them), so
    it goes to a private temporary folder, never the run record, and is removed once read; the
    record keeps only the levels (migrations-hop-NN.json).
    """
    with tempfile.TemporaryDirectory(prefix=f"kfinstall-render-hop-{hop.index:02d}-") as scratch:
        out = Path(scratch) / "render"
        argv = [
            sys.executable,
            "-m",
            "installer",
            "render",
            "-i",
            str(ctx.cfg.site),
            "--out",
            str(out),
            "--set",
            f"spec.channel={hop.to_channel}",
            "--set",
            f"spec.kubernetes.version={hop.kubernetes_to}",
        ]
        done = run_child(argv, timeout=600)  # argv list, no shell; a stop signal ends it (Interrupted)
        if done.returncode != 0:
            raise PhaseFailed(
                f"rendering channel {hop.to_channel} for the Pod Security check failed: "
                + ctx.record.clean_text((done.stderr.strip().splitlines() or ["no output"])[-1])
            )
        documents = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(out.rglob("*.yaml"))]
    return migrations.namespace_levels([d for d in documents if isinstance(d, dict)])


def pod_security_check(levels: dict[str, str], kubeconfig: Path, probe: Probe) -> dict[str, str]:
    """Dry-run the target levels on the namespaces that exist; PreflightError listing violating pods."""
    rc, listed, err = probe(["kubectl", "--kubeconfig", str(kubeconfig), "get", "namespaces", "-o", "name"])
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


def program_crds(cfg: ClusterConfig) -> set[str]:
    """The training CRDs the platform program applies for `cfg` (none when training is off)."""
    if not cfg.spec.components.training.enabled:
        return set()
    from stacks.training_crds import all_crds

    return {str(body["metadata"]["name"]) for body in all_crds().values()}


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


def migrated_config(target: ClusterConfig, hop: Hop) -> ClusterConfig:
    """The hop's configuration-level migrations applied to what the platform phase deploys."""
    if not any(rule.migration in hop.migrations for rule in load_rules().jupyterhub.major_migrations):
        return target
    settings = z2jh_from_config(target)
    values = migrations.z2jh_values_3_to_4(
        target.spec.components.jupyterhub.values, allowed_elsewhere=bool(settings and settings.allow_configured)
    )
    return with_jupyterhub_values(target, values)


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
    rules = load_rules()
    kubeconfig = ctx.cfg.state_dir / "kubeconfig"
    notes: dict[str, Any] = {}
    for name in hop.migrations:
        if name == migrations.KPS_CRDS:
            for argv in migrations.kps_crd_commands(target.release, ctx.record.path / "charts", kubeconfig):
                command(argv)
            notes[name] = migrations.kps_crd_source(target.release)
        elif name == migrations.TRAINING_STANDALONE:
            previous = program_crds(ctx.cfg)
            notes[name] = migrations.training_operator_standalone(
                facts.crd_objects, previous, program_crds(target), rules
            )
        elif name == migrations.POD_SECURITY:
            notes[name] = pod_security_check(levels(ctx, hop), kubeconfig, probe)
        elif name == migrations.INGRESS_SWITCH:
            notes[name] = ingress_switch(ctx.cfg, target, kubeconfig, probe)
        else:  # a JupyterHub chart major migration named in upgrade-rules.yml
            target = migrated_config(target, hop)
            notes[name] = {"values": target.spec.components.jupyterhub.values}
    ctx.record.write_json(f"migrations-hop-{hop.index:02d}.json", notes)
    return target


HOP_RUNNERS: dict[str, HopRunner] = {"kubernetes": kubernetes_hop, "platform": platform_hop}


# The run ----------------------------------------------------------------------------------------


def backup_before(ctx: RunContext, hop: Hop) -> None:
    """Every backup before a hop; a cluster part that fails stops the upgrade before the hop."""
    cfg = ctx.cfg
    folder = ctx.record.path / "backup" / f"hop-{hop.index:02d}-{hop.kind}"
    cluster = ansible_cluster_backup(
        cfg, ctx.record.path / "ansible", ctx.cancel_requested, host_keys=lambda: _host_keys(ctx)
    )
    skip = hub_db_skip_reason(cfg)
    hub = None if skip else hub_db_backup(kubectl_runner(cfg.state_dir / "kubeconfig"))
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
    backup: Callable[[RunContext, Hop], None] = backup_before,
) -> UpgradeReport:
    """Run every hop; raises PreflightError (3), PhaseFailed (4) or Interrupted (130)."""
    runners = runners or HOP_RUNNERS
    with run_lock(cfg.state_dir, "upgrade"):
        record = RunRecord.start(cfg, f"upgrade --to {route.to_channel}")
        record.write_json("route.json", route.as_dict())
        report = UpgradeReport(run_id=record.run_id, record=str(record.path), route=route)
        ctx = RunContext(cfg=cfg, record=record, console=console)
        # From here a stop signal sets the flag: the preflight's kubectl, host-key check and playbook honour it.
        with interrupt_sets(ctx.cancelled):
            facts = collect(ctx, route.hops[0])
        refuse_if(route_problems(facts, route, training_enabled=cfg.spec.components.training.enabled), "the route")
        state = _begin(cfg, route, record.run_id)
        try:
            with interrupt_sets(ctx.cancelled):
                for hop in route.hops:
                    first = facts if hop.index == 1 else None
                    _one_hop(ctx, hop, state, report, confirm, collect, runners, backup, first)
        except KfinstallError:
            report.result = "failed"
            record.write_json("summary.json", report.as_dict())
            raise
        state.upgrade = None
        state.history.append(
            HistoryEntry(
                at=_now(),
                action="upgrade",
                from_channel=route.from_channel,
                to_channel=route.to_channel,
                run_id=record.run_id,
                result="ok",
                kubernetes_from=route.kubernetes_from,
                kubernetes_to=route.kubernetes_to,
            )
        )
        write_state(cfg.state_dir, state)
        report.result = "ok"
        record.write_json("summary.json", report.as_dict())
        return report


def _begin(cfg: ClusterConfig, route: Route, run_id: str) -> State:
    state = read_state(cfg.state_dir) or State(cluster=cfg.name)
    if state.upgrade is None or state.upgrade.target_channel != route.to_channel:
        state.upgrade = UpgradeProgress(
            target_channel=route.to_channel,
            run_id=run_id,
            started_at=_now(),
            target_kubernetes=route.kubernetes_to if route.kubernetes_explicit else None,
        )
    state.last_run_id = run_id
    write_state(cfg.state_dir, state)
    return state


def _one_hop(
    ctx: RunContext,
    hop: Hop,
    state: State,
    report: UpgradeReport,
    confirm: Confirm | None,
    collect: FactsCollector,
    runners: dict[str, HopRunner],
    backup: Callable[[RunContext, Hop], None],
    facts: ClusterFacts | None,
) -> None:
    if confirm is not None and not confirm(f"Hop {hop.index}/{len(report.route.hops)}: {hop.title()}. Go on?"):
        raise PreflightError(
            f"not confirmed before hop {hop.index}; {len(report.done)} hop(s) done and recorded, "
            "run the same command again to resume"
        )
    ctx.console.print(f"==> hop {hop.index}: {hop.title()}", markup=False)
    facts = facts or collect(ctx, hop)
    refuse_if(
        hop_problems(facts, hop, training_enabled=ctx.cfg.spec.components.training.enabled),
        f"hop {hop.index} ({hop.title()})",
    )
    backup(ctx, hop)
    entry = dict(
        action=f"upgrade-{hop.kind}",
        from_channel=hop.from_channel,
        to_channel=hop.to_channel,
        run_id=ctx.record.run_id,
        hop=hop.key,
        kubernetes_from=hop.kubernetes_from,
        kubernetes_to=hop.kubernetes_to,
    )
    try:
        runners[hop.kind](ctx, hop, facts)
    except KfinstallError:
        state.history.append(HistoryEntry(at=_now(), result="failed", **entry))
        write_state(ctx.cfg.state_dir, state)
        raise
    state.installed_channel = hop.to_channel
    state.kubernetes_version = hop.kubernetes_to
    if state.upgrade is not None:
        state.upgrade.hops_done.append(hop.key)
    state.history.append(HistoryEntry(at=_now(), result="ok", **entry))
    write_state(ctx.cfg.state_dir, state)
    report.done.append(hop.key)
