"""`kfinstall node remove HOST`: drain a host, reset it and take it out of the site (installer.noderemove)."""

from __future__ import annotations

import functools
from pathlib import Path

import click
from rich.console import Console

from installer.cli.common import (
    confirm_on_terminal,
    emit_json,
    failure_document,
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
from installer.errors import KfinstallError
from installer.noderemove import DEFAULT_GRACE_S, remove_node


@click.group()
def node() -> None:
    """Change the site one host at a time."""


@node.command("remove")
@click.argument("host")
@inventory_option
@profile_option
@state_dir_option
@click.option("--yes", is_flag=True, help="Do not ask before changing anything (required when not on a terminal).")
@click.option("--dry-run", is_flag=True, help="Show what would be evicted and each step; change nothing.")
@click.option("--keep-inventory", is_flag=True,
              help="Leave hosts.yml as it is and print the exact lines to delete instead.")
@click.option("--unreachable", is_flag=True,
              help="The machine is gone: skip its drain and reset; its etcd member (control plane) is removed "
                   "through a remaining control plane.")
@click.option("--grace-period", type=int, default=DEFAULT_GRACE_S, show_default=True,
              help="Seconds each pod (a notebook kernel) gets to stop before it is killed.")
@output_option
def remove(host: str, inventory: Path, profile: str | None, state_dir: Path | None, yes: bool, dry_run: bool,
           keep_inventory: bool, unreachable: bool, grace_period: int, output: str) -> None:
    """Cordon and drain HOST, reset it, delete its Node and remove it from hosts.yml.

    Shows the pods that will be evicted and every step first, and asks. Refuses (exit 3, nothing
    changed) the NFS server, the last control plane, a control plane whose removal loses etcd quorum,
    the last kube_node and a Gluster brick host, naming the safe path. Re-run after a failure: every
    step is safe to repeat.
    """
    # No secret is needed: the cluster is reached with the site's kubeconfig, the host with SSH.
    cfg = load(inventory, need_secrets=False, state_dir=state_dir, profile=profile)
    progress = stderr if output == "json" else stdout

    def say(line: str) -> None:
        progress.print(line, markup=False, highlight=False)

    try:
        plan = remove_node(cfg, host, keep_inventory=keep_inventory, unreachable=unreachable,
                           grace_period=grace_period, dry_run=dry_run,
                           confirm=None if yes else confirm_on_terminal, say=say,
                           reset_host=functools.partial(_reset_host, console=progress, verbosity=verbosity()))
    except KfinstallError as exc:
        if output == "json":
            emit_json(failure_document(exc, exc.exit_code))
        elif exc.report is not None and hasattr(exc.report, "lines"):
            for line in exc.report.lines():
                stderr.print(line, markup=False, highlight=False)
        raise
    if output == "json":
        emit_json(plan.as_dict())
        return
    if dry_run:
        for line in plan.lines():
            say(line)
        say("dry run: nothing was changed")
        return
    say(f"{plan.host.name} removed")
    if plan.keep_inventory:
        for line in plan.inventory.instructions():
            say(f"  delete by hand: {line}")
    for line in plan.follow_up:
        say(f"  then: {line}")


def _reset_host(cfg: ClusterConfig, host: str, *, console: Console | None = None, verbosity: int = 0) -> None:
    """The host reset of `kfinstall reset` (installer.reset.reset_host: reset.yml on that host alone, under
    node remove's lock, its run record in STATE/runs/)."""
    from installer.reset import reset_host

    reset_host(cfg, host, console=console, verbosity=verbosity)
