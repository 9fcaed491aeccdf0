"""`kfinstall down`: remove the platform stack (Pulumi destroy). Data goes only with --purge-data."""

from __future__ import annotations

import threading
from pathlib import Path

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
)
from installer.config.load import load
from installer.errors import PreflightError
from installer.interrupt import interrupt_sets
from installer.lock import run_lock


@click.command()
@inventory_option
@profile_option
@state_dir_option
@click.option(
    "--purge-data",
    is_flag=True,
    help="Required: destroying the stack deletes its volumes (notebooks, models, metrics).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required when not on a terminal).")
@output_option
def down(
    inventory: Path, profile: str | None, state_dir: Path | None, purge_data: bool, yes: bool, output: str
) -> None:
    """Destroy everything the platform stack created; the hosts and their Kubernetes stay.

    Pulumi's destroy removes the stack's PersistentVolumeClaims with the rest, so `down` refuses
    unless --purge-data says that is intended (take `kfinstall backup` first).
    """
    cfg = load(inventory, need_secrets=True, state_dir=state_dir, profile=profile)
    if not purge_data:
        raise PreflightError(
            "down deletes the platform's volumes (notebooks, models, metrics) with the stack; "
            "run `kfinstall backup` first and pass --purge-data to confirm"
        )
    if not yes and not confirm_on_terminal(f"Destroy the platform of {cfg.name} and its data?"):
        raise PreflightError("not confirmed; nothing was changed")
    from installer.adapters import pulumi as engine

    # A stop signal reaches the pulumi CLI as its own Ctrl-C (it cancels cleanly, saves the stack's
    # state and exits); the lock is held until it has, and the exit code is 128 + the signal.
    with run_lock(cfg.state_dir, "down"), interrupt_sets(threading.Event()):
        # With --output json, stdout carries only the JSON document; Pulumi's output goes to stderr.
        progress = stderr if output == "json" else stdout
        summary = engine.destroy(cfg, on_output=lambda line: progress.print(line.rstrip(), markup=False))
    if output == "json":
        emit_json(summary.as_dict())
    else:
        stdout.print(f"destroyed: {summary.changes}", markup=False)
