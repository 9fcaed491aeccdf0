"""`kfinstall down`: remove the platform (and with --purge-data, its volumes)."""

from __future__ import annotations

from pathlib import Path

import click

from installer.cli.common import inventory_option
from installer.errors import NotBuilt


@click.command()
@inventory_option
@click.option("--purge-data", is_flag=True, help="Also delete persistent volumes (notebooks, models, metrics).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def down(inventory: Path, purge_data: bool, yes: bool) -> None:
    """Tear the platform down; data volumes are kept unless --purge-data is given."""
    raise NotBuilt("`down` is not built yet: it needs the platform phase (issue 4) to destroy its stack")
