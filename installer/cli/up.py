"""`kfinstall up`: preflight, then the host phase (Ansible), then the platform phase (Pulumi)."""

from __future__ import annotations

from pathlib import Path

import click

from installer.cli.common import (
    confirm_on_terminal,
    emit_json,
    failure_document,
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
from installer.config.load import load
from installer.errors import KfinstallError
from installer.phases import UP_PHASES
from installer.up import run_up, summary_lines


@click.command()
@inventory_option
@profile_option
@set_option
@state_dir_option
@click.option("--only", type=click.Choice(UP_PHASES), default=None, help="Run preflight and then this phase alone.")
@click.option("--from", "start_at", type=click.Choice(UP_PHASES), default=None, help="Start at this phase.")
@click.option("--yes", is_flag=True, help="Do not ask before changing hosts (required when not on a terminal).")
@limit_option
@output_option
def up(
    inventory: Path,
    profile: str | None,
    sets: tuple[str, ...],
    state_dir: Path | None,
    only: str | None,
    start_at: str | None,
    yes: bool,
    limit: str | None,
    output: str,
) -> None:
    """Bring the site to the state kfinstall.yaml describes (re-runs converge).

    Validates everything first (exit 2), checks the hosts (exit 3), then runs the phases in order
    (exit 4 names the failing host and task). Every run leaves STATE/runs/<id>/.
    """
    cfg = load(inventory, sets, need_secrets=True, state_dir=state_dir, profile=profile)
    # The configuration's warnings (file:line, e.g. a legacy group name read as a role group): on stderr
    # before anything runs, and in the JSON document, as `plan` and `inventory validate` show them.
    print_problems(cfg.warnings)
    warnings = {"warnings": [w.as_dict() for w in cfg.warnings]}
    # With --output json, stdout carries only the JSON document; progress goes to stderr.
    progress = stderr if output == "json" else stdout
    try:
        report = run_up(cfg, progress, only=only, start_at=start_at, confirm=None if yes else confirm_on_terminal,
                        verbosity=verbosity(), limit=limit)
    except KfinstallError as exc:
        if output == "json":
            # The report so far (per-host counts, each phase's status), then result, error and exitCode.
            emit_json({**failure_document(exc, exc.exit_code), **warnings})
        raise
    if output == "json":
        emit_json({**report.as_dict(), **warnings})
        return
    for line in summary_lines(report):
        stdout.print(line, markup=False, highlight=False)
