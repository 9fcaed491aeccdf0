"""`kfinstall status`: the installed channel, phases done and upgrade history from state.json."""

from __future__ import annotations

from pathlib import Path

import click

from installer.cli.common import emit_json, inventory_option, output_option, profile_option, state_dir_option, stdout
from installer.config.load import load
from installer.state import read_state


@click.command()
@inventory_option
@profile_option
@state_dir_option
@output_option
def status(inventory: Path, profile: str | None, state_dir: Path | None, output: str) -> None:
    """Show what is installed according to the state dir (no host or cluster is contacted)."""
    cfg = load(inventory, need_secrets=False, state_dir=state_dir, profile=profile)
    state = read_state(cfg.state_dir)
    if output == "json":
        emit_json(
            {
                "cluster": cfg.name,
                "stateDir": str(cfg.state_dir),
                "state": state.model_dump(mode="json") if state else None,
            }
        )
        return
    if state is None:
        stdout.print(f"{cfg.name}: nothing installed yet (no state in {cfg.state_dir})", markup=False)
        return
    stdout.print(
        f"{cfg.name}: channel {state.installed_channel or '-'}, Kubernetes {state.kubernetes_version or '-'}, "
        f"phases done: {', '.join(state.phases_done) or '-'}, last run {state.last_run_id or '-'}",
        markup=False,
    )
    if state.upgrade is not None:
        upgrade = state.upgrade
        stdout.print(
            f"upgrade in progress to {upgrade.target_channel} (run {upgrade.run_id}, since "
            f"{upgrade.started_at}); hops done: {', '.join(upgrade.hops_done) or '-'}; "
            "re-run `kfinstall upgrade` to resume",
            markup=False,
        )
    for entry in state.history:
        kubernetes = (
            f" kubernetes {entry.kubernetes_from}->{entry.kubernetes_to}"
            if entry.kubernetes_from or entry.kubernetes_to
            else ""
        )
        channels = (
            f" {entry.from_channel or ''}->{entry.to_channel or ''}" if entry.from_channel or entry.to_channel else ""
        )
        hop = f" [{entry.hop}]" if entry.hop else ""
        stdout.print(f"  {entry.at} {entry.action}{hop}{channels}{kubernetes} {entry.result}", markup=False)
