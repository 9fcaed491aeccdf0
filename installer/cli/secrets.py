"""`kfinstall secrets rotate KEY`: a new value for one secret, applied everywhere (installer/rotate.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

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
from installer.config.problems import Problems
from installer.config.resolved import ClusterConfig
from installer.config.safefile import read_text
from installer.errors import KfinstallError


@click.group()
def secrets() -> None:
    """Secrets of a running site (secrets.yml)."""


@secrets.command()
@click.argument("key")
@inventory_option
@profile_option
@state_dir_option
@click.option("--value-file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True), default=None,
              help="For a key you provide (ldap_bind_password): the file holding the new value alone, one "
                   "trailing newline allowed ('-' reads stdin). Without it, a terminal prompts. Never a "
                   "command-line value: argv is visible to every user (ps).")
@click.option("--dry-run", is_flag=True, help="Show what changes; write and apply nothing.")
@click.option("--yes", is_flag=True, help="Do not ask (required when not on a terminal).")
@output_option
def rotate(key: str, inventory: Path, profile: str | None, state_dir: Path | None, value_file: Path | None,
           dry_run: bool, yes: bool, output: str) -> None:
    """Rotate KEY: a new value applied everywhere the platform uses it, the old one kept until that run succeeded.

    Generated keys get a new random value; ldap_bind_password takes yours (--value-file or the prompt).
    The JupyterHub crypt key keeps its old value for decryption; pulumi_passphrase re-encrypts the stack.
    A failed run leaves KEY as it was (the new value waits as KEY_next); run the same command again to finish.
    """
    from installer.rotate import new_value, plan_rotation, run_rotation

    cfg = load(inventory, need_secrets=True, state_dir=state_dir, profile=profile)
    given = _given_value(cfg, key, value_file, dry_run)
    plan = plan_rotation(cfg, key, given=given is not None)
    if dry_run:
        if output == "json":
            emit_json({**plan.as_dict(), "dryRun": True, "result": "ok"})
        else:
            for line in plan.lines():
                stdout.print(line, markup=False, highlight=False)
        return
    progress = stderr if output == "json" else stdout
    try:
        report = run_rotation(cfg, plan, new_value(cfg, key, given), progress,
                              confirm=None if yes else confirm_on_terminal, verbosity=verbosity())
    except KfinstallError as exc:
        if output == "json":
            emit_json({"rotation": plan.as_dict(), **failure_document(exc, exc.exit_code)})
        raise
    if output == "json":
        emit_json(report.as_dict())
        return
    for line in plan.lines():
        stdout.print(line, markup=False, highlight=False)
    stdout.print(f"rotated {key}: {report.result}", markup=False, highlight=False)


def _given_value(cfg: ClusterConfig, key: str, value_file: Path | None, dry_run: bool) -> str | None:
    """The operator's new value for a provided key (None: generated, or a pending value is reused).
    Problems name the file and the key, never the value (exit 2)."""
    from installer.config.secrets import generated
    from installer.rotate import MAX_VALUE_BYTES, check_key, provided_value_problem

    check_key(cfg, key)
    secrets_now = cfg.secrets
    assert secrets_now is not None  # load(need_secrets=True)
    problems = Problems()
    display = "--value-file" if value_file is None else ("stdin" if str(value_file) == "-" else str(value_file))
    if value_file is not None:
        text = _read_value(value_file, display, problems, MAX_VALUE_BYTES)
    elif generated(key) or dry_run or secrets_now.pending(key) is not None:
        return None
    elif sys.stdin.isatty():
        text = click.prompt(f"New value of {key}", hide_input=True, confirmation_prompt=True, err=True)
    else:
        problems.error("secrets rotate", key, "no new value given and not on a terminal to ask",
                       f"pass --value-file FILE (holding the new {key} alone), or run it on a terminal")
        problems.raise_if_errors()
        return None
    if text is None:
        problems.raise_if_errors()
        return None
    value = text[:-1] if text.endswith("\n") else text
    value = value[:-1] if value.endswith("\r") else value
    problem = provided_value_problem(key, value, getattr(secrets_now, key).get_secret_value())
    if problem:
        problems.error(display, key, problem, f"give the new {key} alone in the file (one trailing newline allowed)")
        problems.raise_if_errors()
    return value


def _read_value(path: Path, display: str, problems: Problems, max_bytes: int) -> str | None:
    if str(path) == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        if len(data) > max_bytes:
            problems.error(display, "", f"more than {max_bytes} bytes", "give the value alone")
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            problems.error(display, "", "not UTF-8 text", "give the value as UTF-8 text")
            return None
    return read_text(path, display, problems, max_bytes)
