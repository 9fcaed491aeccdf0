"""`kfinstall plan`: what `up` would do, where, with which versions; no SSH, nothing changed."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from installer.cli.common import (
    emit_json,
    inventory_option,
    limit_option,
    output_option,
    print_problems,
    profile_option,
    set_option,
    state_dir_option,
    stderr,
    stdout,
    verbosity,
)
from installer.config.inventory import ROLE_GROUPS
from installer.config.load import load
from installer.config.resolved import ClusterConfig
from installer.interrupt import interrupt_sets
from installer.limited import LimitedRun, converged_roles, limited_run
from installer.plan import Plan, build_plan
from installer.plandiff import as_up_applies, diff_lines, plan_diff

MAX_NAMES = 12


@click.command()
@inventory_option
@profile_option
@set_option
@state_dir_option
@click.option(
    "--check-hosts", is_flag=True, help="Also run the host playbooks in Ansible check/diff mode (SSH; changes nothing)."
)
@limit_option
@output_option
def plan(
    inventory: Path, profile: str | None, sets: tuple[str, ...], state_dir: Path | None, check_hosts: bool,
    limit: str | None, output: str,
) -> None:
    """Show hosts by role, phases in order, component versions, storage, auth and warnings.

    Reads only the site folder and kfinstall's release data; connects to nothing unless
    --check-hosts is given, which adds what Ansible would change on each reachable host. With
    --output json the result is the documented plan document (docs/plan-json.md).
    """
    cfg = as_up_applies(load(inventory, sets, need_secrets=check_hosts, state_dir=state_dir, profile=profile))
    limited = _limited(cfg, limit)
    result = build_plan(cfg)
    checked = _check_hosts(cfg, limited) if check_hosts else None
    preview = None if limited else _platform_preview(cfg)  # up --limit runs no platform phase
    diff = plan_diff(cfg)
    if output == "json":
        extra = {"hostCheck": checked} if checked is not None else {}
        extra |= {"limit": limited.as_dict()} if limited else {}
        emit_json({**result.as_dict(), "diff": diff, **extra, **({"platformPreview": preview} if preview else {})})
        return
    if preview:
        stdout.print(f"Pulumi preview: {preview['changes']}", markup=False)
    _print_text(result)
    for line in diff_lines(diff, preview=preview is not None):
        stdout.print(line, markup=False)
    for line in limited.lines() if limited else ():
        stdout.print(line, markup=False)
    if checked is not None:
        for host, stats in sorted(checked["hosts"].items()):
            stdout.print(
                f"check mode {host}: would change {stats['changed']} task(s), failed {stats['failed']}", markup=False
            )


def _platform_preview(cfg: ClusterConfig) -> dict[str, Any] | None:
    """A Pulumi preview when the CLI, its plugins, a kubeconfig and secrets are all there; else None.

    `shutil.which` first: without a CLI, plan never pays for importing the Pulumi SDK.
    """
    if shutil.which("pulumi") is None or cfg.secrets is None:
        return None
    from installer.adapters import pulumi as engine

    if not engine.available(cfg):
        return None
    # No lock (a preview changes nothing), but a TERM must not leave the pulumi CLI running: it gets
    # the stop as its own Ctrl-C, kfinstall waits for it and exits 128 + the signal.
    with interrupt_sets(threading.Event()):
        return engine.preview(cfg).as_dict()


def _limited(cfg: ClusterConfig, limit: str | None) -> LimitedRun | None:
    """`plan --limit`: what `up --limit` would run where, read from outside, or refuse (exit 2 for a bad pattern)."""
    if limit is None:
        return None
    return limited_run(cfg, limit, converged_roles(cfg))


def _check_hosts(cfg: ClusterConfig, limited: LimitedRun | None) -> dict[str, Any]:
    """Preflight, then site.yml with --check --diff; reachable hosts report what would change."""
    from installer.up import run_check

    hosts, contacts = (limited.hosts, limited.contacts) if limited else ((), ())
    return run_check(cfg, stderr, verbosity=verbosity(), limit=hosts, contacts=contacts).as_dict()


def _print_text(result: Plan) -> None:
    cfg = result.cfg
    stdout.print(
        f"Cluster {cfg.name}: profile {cfg.spec.profile}, channel {cfg.release.channel} "
        f"({cfg.release.kubeflow_ref}), Kubernetes {cfg.kubernetes_version}",
        markup=False,
    )
    stdout.print(_hosts_table(result))
    for index, phase in enumerate(result.phases, start=1):
        state = "" if phase.runs else f" (skipped: {phase.reason})"
        stdout.print(f"{index}. {phase.name}{state}", markup=False)
        for action in phase.actions:
            stdout.print(f"     - {action}", markup=False)
        for step in phase.steps or ():
            stdout.print(
                f"     step {step.playbook} | {step.play}: {len(step.hosts)} host(s): {_capped(step.hosts) or '-'}",
                markup=False,
            )
    stdout.print(_components_table(result))
    for line in _storage_and_auth(result):
        stdout.print(line, markup=False)
    print_problems(cfg.warnings)
    for message in result.extra_warnings:
        stderr.print(f"warning: {message}", style="yellow", markup=False, highlight=False)


def _hosts_table(result: Plan) -> Table:
    table = Table(title="Hosts by role")
    table.add_column("role")
    table.add_column("count", justify="right")
    table.add_column("hosts")
    for role in ROLE_GROUPS:
        names = result.cfg.inventory.names(role)
        table.add_row(role, str(len(names)), _capped(names) or "-")
    return table


def _capped(names: Sequence[str]) -> str:
    """At most MAX_NAMES names, then how many more."""
    return ", ".join(names[:MAX_NAMES]) + (f" ... (+{len(names) - MAX_NAMES})" if len(names) > MAX_NAMES else "")


def _components_table(result: Plan) -> Table:
    table = Table(title="Components")
    for column in ("component", "kind", "version", "phase", "source"):
        table.add_column(column)
    for component in result.components:
        table.add_row(component.name, component.kind, component.version, component.phase, component.source)
    return table


def _storage_and_auth(result: Plan) -> list[str]:
    cfg = result.cfg
    nfs, gluster, auth = cfg.spec.storage.nfs, cfg.spec.storage.gluster, cfg.spec.auth
    lines = [f"Storage: default StorageClass from {cfg.spec.storage.default_class}"]
    if nfs.enabled:
        lines.append(
            f"  nfs ({nfs.implementation}) {cfg.nfs_server_address()}:{nfs.export_path} -> class {nfs.storage_class}"
        )
    if gluster.enabled:
        lines.append(
            f"  gluster volume {gluster.volume} replica {gluster.replica} on "
            f"{', '.join(cfg.inventory.names('gluster'))}, mounted at {gluster.mount_path} "
            f"-> class {gluster.storage_class}"
        )
    if auth.type == "ldap":
        groups = "; ".join(auth.ldap.allowed_groups) or "any user found"
        lines.append(
            f"Auth: LDAP {auth.ldap.url} as {auth.ldap.bind_dn}, "
            f"users under {auth.ldap.user_search_base}, allowed: {groups}"
        )
    else:
        lines.append("Auth: dummy authenticator with the shared lab password from secrets.yml")
    return lines
