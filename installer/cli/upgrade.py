"""`kfinstall upgrade --to CHANNEL`: walk a cluster one channel at a time (issue 5)."""

from __future__ import annotations

from pathlib import Path

import click

from installer.cli.common import inventory_option, output_option
from installer.errors import NotBuilt
from installer.releases import channel_names


@click.command()
@inventory_option
@click.option("--to", "to_channel", required=True, type=click.Choice(channel_names()), help="Target channel.")
@click.option(
    "--from",
    "from_channel",
    type=click.Choice(channel_names()),
    default=None,
    help="Installed channel when there is no state.json (planning only).",
)
@click.option("--dry-run", is_flag=True, help="Print the route, migrations and backups; change nothing.")
@output_option
def upgrade(inventory: Path, to_channel: str, from_channel: str | None, dry_run: bool, output: str) -> None:
    """Upgrade the platform to channel TO, one hop at a time, with backups before each hop."""
    raise NotBuilt("upgrades are not built yet (issue 5): no route planner, preflight or backups exist")
