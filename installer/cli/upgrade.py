"""`kfinstall upgrade --to CHANNEL`: walk a cluster one channel at a time (issue 5)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from installer.cli.common import (
    confirm_on_terminal,
    emit_json,
    inventory_option,
    output_option,
    profile_option,
    state_dir_option,
    stderr,
    stdout,
    verbosity,
)
from installer.config.load import load
from installer.config.resolved import ClusterConfig
from installer.errors import ConfigError, PreflightError
from installer.noderemove import DEFAULT_GRACE_S
from installer.releases import channel_names, load_release
from installer.state import State, read_state
from installer.upgrade.dryrun import ClusterView, HopDetail, cluster_note, detail_lines, hop_details
from installer.upgrade.hops import hop_runners
from installer.upgrade.migrations import MIGRATIONS
from installer.upgrade.preflight import refuse_if
from installer.upgrade.route import Route, plan_route
from installer.upgrade.run import run_upgrade
from installer.upgrade.site import site_route
from installer.upgrade.tools import Need, route_needs, tool_problems


@dataclass(frozen=True)
class Installed:
    channel: str
    kubernetes: str
    source: str  # where the two came from, shown with the route


def _installed(cfg: ClusterConfig, state: State | None, from_channel: str | None, kubernetes: str | None) -> Installed:
    """The installed versions: state.json wins; --from/--kubernetes-version only where there is no state."""
    if state is not None and state.installed_channel:
        if from_channel and from_channel != state.installed_channel:
            raise ConfigError(
                f"--from {from_channel} disagrees with {cfg.state_dir / 'state.json'} (channel "
                f"{state.installed_channel}); --from is only for sites without state"
            )
        version = state.kubernetes_version or kubernetes
        if version is None:
            raise ConfigError("state.json records no Kubernetes version; pass --kubernetes-version")
        return Installed(state.installed_channel, version, "state.json")
    if from_channel is None:
        raise ConfigError(
            f"no installed channel in {cfg.state_dir / 'state.json'}; pass --from CHANNEL (and --kubernetes-version) "
            "to plan an upgrade for a site kfinstall has not installed"
        )
    if kubernetes:
        return Installed(from_channel, kubernetes, "--from and --kubernetes-version")
    if cfg.spec.channel == from_channel and cfg.spec.kubernetes.version:
        return Installed(from_channel, cfg.spec.kubernetes.version, "--from and kfinstall.yaml")
    assumed = load_release(from_channel).kubernetes.default_minor
    return Installed(from_channel, assumed, f"--from, Kubernetes assumed at the channel default {assumed}")


def _explicit_target(cfg: ClusterConfig, to_channel: str) -> tuple[str | None, list[str]]:
    """spec.kubernetes.version when kfinstall.yaml describes the target channel and sets one."""
    if cfg.spec.channel != to_channel:
        return None, [
            f'kfinstall.yaml says channel {cfg.spec.channel}: set spec.channel: "{to_channel}" (and '
            "spec.kubernetes.version to go past the intersection rule) before upgrading"
        ]
    return cfg.spec.kubernetes.version, []


def plan_for(
    cfg: ClusterConfig, to_channel: str, from_channel: str | None, kubernetes: str | None
) -> tuple[Installed, Route, list[str]]:
    installed = _installed(cfg, read_state(cfg.state_dir), from_channel, kubernetes)
    explicit, notes = _explicit_target(cfg, to_channel)
    default = load_release(to_channel).kubernetes.default_minor
    route = plan_route(installed.channel, installed.kubernetes, to_channel, explicit, defaulted_kubernetes=default)
    # What the site turned off is neither upgraded nor migrated.
    route = site_route(route, cfg)
    return installed, route, notes + list(route.notes)


@click.command()
@inventory_option
@profile_option
@state_dir_option
@click.option("--to", "to_channel", required=True, type=click.Choice(channel_names()), help="Target channel.")
@click.option(
    "--from",
    "from_channel",
    type=click.Choice(channel_names()),
    default=None,
    help="Installed channel when there is no state.json (planning only).",
)
@click.option(
    "--kubernetes-version",
    "kubernetes",
    default=None,
    metavar="X.Y[.Z]",
    help="Installed Kubernetes version when there is no state.json (planning only).",
)
@click.option("--dry-run", is_flag=True, help="Print the route, migrations and backups; change nothing.")
@click.option("--yes", is_flag=True, help="Do not pause for confirmation before each hop.")
@click.option(
    "--grace-period",
    type=click.IntRange(min=0),
    default=DEFAULT_GRACE_S,
    show_default=True,
    metavar="SECONDS",
    help="Seconds each pod of a drained node (a notebook's kernels too) gets between SIGTERM and SIGKILL.",
)
@output_option
def upgrade(
    inventory: Path,
    profile: str | None,
    state_dir: Path | None,
    to_channel: str,
    from_channel: str | None,
    kubernetes: str | None,
    dry_run: bool,
    yes: bool,
    grace_period: int,
    output: str,
) -> None:
    """Upgrade the platform to channel TO, one hop at a time, with backups before each hop.

    Channels move one upgradesFrom edge at a time and Kubernetes one minor at a time; before a
    channel hop Kubernetes moves into both channels' ranges. Kubernetes goes further only to the
    spec.kubernetes.version kfinstall.yaml sets explicitly. Refused routes exit 3 and name the
    allowed route. state.json is written after every hop, so a re-run resumes.
    """
    cfg = load(inventory, (), need_secrets=not dry_run, state_dir=state_dir, profile=profile)
    installed, route, notes = plan_for(cfg, to_channel, from_channel, kubernetes)
    if dry_run:
        _show_route(cfg, installed, route, notes, output, grace_period)
        return
    if installed.source != "state.json":
        raise PreflightError(
            "--from and --kubernetes-version are for planning (--dry-run); an upgrade starts from state.json"
        )
    if cfg.spec.channel != to_channel:
        raise ConfigError(notes[0] + ", so that a later `kfinstall up` keeps the upgraded platform")
    if not yes and not sys.stdin.isatty():
        raise PreflightError(
            "not on a terminal and --yes not given: nothing was changed (the upgrade pauses before "
            "each hop for confirmation)"
        )
    # Every program the route runs on this machine (helm for a CRD migration, Pulumi for a platform hop)
    # is checked before the first hop, not found missing halfway.
    refuse_if(tool_problems(cfg, route), "the route")
    # With --output json, stdout carries only the JSON document; progress goes to stderr.
    progress = stderr if output == "json" else stdout
    report = run_upgrade(cfg, route, progress, confirm=None if yes else confirm_on_terminal, verbosity=verbosity(),
                         runners=hop_runners(grace_period))
    if output == "json":
        emit_json(report.as_dict())
        return
    stdout.print(
        f"upgraded to {route.to_channel} (Kubernetes {route.kubernetes_to}); run record {report.record}", markup=False
    )


@dataclass(frozen=True)
class DryRun:
    """What the dry run adds to the route, per hop and host (installer.upgrade.dryrun) and the programs it needs."""

    details: list[HopDetail]
    view: ClusterView
    needs: list[Need]
    grace: int


def dry_run_details(cfg: ClusterConfig, route: Route, grace: int) -> DryRun:
    details, view = hop_details(cfg, route, grace)
    return DryRun(details, view, route_needs(cfg, route), grace)


def route_document(cfg: ClusterConfig, installed: Installed, route: Route, notes: list[str],
                   dry: DryRun | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "cluster": cfg.name,
        "dryRun": True,
        "installed": {"channel": installed.channel, "kubernetes": installed.kubernetes, "source": installed.source},
        "route": route.as_dict(),
        "notes": notes,
    }
    if dry is not None:
        doc["drain"] = {"gracePeriodSeconds": dry.grace, "force": True}
        doc["clusterRead"] = {"ok": dry.view.nodes is not None, "note": cluster_note(dry.view)}
        doc["hopDetails"] = [d.as_dict() for d in dry.details]
        doc["programs"] = [n.as_dict() for n in dry.needs]
    return doc


def _show_route(cfg: ClusterConfig, installed: Installed, route: Route, notes: list[str], output: str,
                grace: int = DEFAULT_GRACE_S) -> None:
    dry = dry_run_details(cfg, route, grace)
    if output == "json":
        emit_json(route_document(cfg, installed, route, notes, dry))
        return
    out = stdout
    out.print(
        f"cluster {cfg.name}: channel {installed.channel}, Kubernetes {installed.kubernetes} (from {installed.source})",
        markup=False,
    )
    out.print(f"route: {route.summary()}", markup=False)
    out.print(f"drain: kubectl drain --force --grace-period={grace} (notebook servers get {grace} s, then stop)",
              markup=False)
    if cluster_note(dry.view):
        out.print(f"note: {cluster_note(dry.view)}", markup=False)
    for hop, detail in zip(route.hops, dry.details, strict=True):
        out.print(f"hop {hop.index}  {hop.kind:<10}  {hop.title()}", markup=False)
        out.print(f"    why: {hop.reason}", markup=False)
        for change in hop.changes:
            out.print(f"    change: {change.text()}", markup=False)
        for name in hop.migrations:
            out.print(f"    migration: {name}: {MIGRATIONS.get(name, '')}", markup=False)
        for skipped in hop.skipped:
            out.print(f"    skipped: {skipped}", markup=False)
        for need in dry.needs:
            if need.hop == hop.index:
                out.print(f"    needs: {need.text()}", markup=False)
        out.print(f"    backups: {', '.join(hop.backups)}", markup=False)
        for pause in hop.pauses:
            out.print(f"    pause: {pause}", markup=False)
        for line in detail_lines(detail, grace):
            out.print(line, markup=False)
    for note in notes:
        out.print(f"note: {note}", markup=False)
    out.print("nothing was changed (--dry-run)", markup=False)
