"""`kfinstall inventory validate`: every problem in the site's files, before any host is touched."""

from __future__ import annotations

from pathlib import Path

import click

from installer.cli.common import (
    emit_json,
    failure_document,
    inventory_option,
    output_option,
    print_problems,
    profile_option,
    set_option,
    stdout,
)
from installer.config.load import load
from installer.config.problems import InvalidConfig


@click.group()
def inventory() -> None:
    """Inspect and check a site's inventory and kfinstall.yaml."""


@inventory.command()
@inventory_option
@profile_option
@set_option
@output_option
def validate(inventory: Path, profile: str | None, sets: tuple[str, ...], output: str) -> None:
    """Validate hosts.yml, kfinstall.yaml and secrets.yml without connecting to any host.

    Prints one line per problem (file:line:column, key path, fix) and exits 2 when any is an error.
    """
    try:
        cfg = load(inventory, sets, need_secrets=False, profile=profile)
    except InvalidConfig as exc:
        if output == "json":
            emit_json({"valid": False, **failure_document(exc, exc.exit_code)})
        raise
    if output == "json":
        emit_json({"valid": True, "problems": [p.as_dict() for p in cfg.warnings]})
        return
    print_problems(cfg.warnings)
    stdout.print(
        f"{inventory}: valid ({len(cfg.inventory.hosts)} hosts, profile {cfg.spec.profile}, "
        f"channel {cfg.release.channel}, {len(cfg.warnings)} warning(s))",
        markup=False,
    )
