"""Shared click pieces: site options, the output switch and printing of problems.

Commands stay thin: parse options, call one function, print its result. Errors are raised as
KfinstallError subclasses and turned into exit codes in installer.cli.main only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from installer.config.problems import InvalidConfig, Problem
from installer.config.safefile import state_dir_problem
from installer.config.secrets import VAULT_PASSWORD_ENV, set_vault_password_file
from installer.errors import KfinstallError
from installer.profiles import profile_names

F = TypeVar("F", bound=Callable[..., Any])

# Redirected output (CI logs, `| less`) gets a wide fixed width instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
stdout = Console(soft_wrap=True, highlight=False, width=_WIDTH)
stderr = Console(stderr=True, soft_wrap=True, highlight=False, width=_WIDTH)


def inventory_option(func: F) -> F:
    return click.option(
        "-i",
        "--inventory",
        "inventory",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="KFINSTALL_INVENTORY",
        default=Path("."),
        show_default=True,
        help="Site folder holding hosts.yml, kfinstall.yaml and secrets.yml (env KFINSTALL_INVENTORY).",
    )(func)


def profile_option(func: F) -> F:
    return click.option(
        "--profile",
        "profile",
        type=click.Choice(profile_names()),
        default=None,
        help="The site's profile (sets spec.profile). A site folder without kfinstall.yaml "
        "is then the profile's defaults, the cluster named after the folder; a kfinstall.yaml naming another "
        "profile is refused (exit 2).",
    )(func)


def set_option(func: F) -> F:
    return click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one setting, e.g. --set spec.gpu.enabled=false (repeatable; wins over kfinstall.yaml).",
    )(func)


def _state_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Refuse (exit 2, before anything is read or written) a state dir kfinstall could not own: under
    /proc, /sys or /dev, a non-folder, or below a file."""
    reason = None if value is None else state_dir_problem(value)
    if reason is not None:
        raise click.BadParameter(reason, ctx=ctx, param=param)
    return value


def state_dir_option(func: F) -> F:
    return click.option(
        "--state-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        callback=_state_dir,
        help="Where run records, locks and Pulumi state live (default: SITE/.kfinstall/<cluster>).",
    )(func)


def limit_option(func: F) -> F:
    return click.option(
        "--limit",
        "limit",
        metavar="PATTERN",
        default=None,
        help="Only these hosts (an Ansible host pattern: 'h4', 'kube_node:!h1', 'h4,h5'): preflight and the host "
        "phase run on them alone; what they need from the others is read, not changed (docs/operations.md).",
    )(func)


def _use_vault_password_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        set_vault_password_file(value)


def vault_password_option(func: F) -> F:
    """--vault-password-file, as ansible-playbook spells it; the env var Ansible reads works too."""
    return click.option(
        "--vault-password-file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        expose_value=False,
        is_eager=True,
        callback=_use_vault_password_file,
        help=f"Decrypts an ansible-vault encrypted secrets.yml (file or script, as for ansible-vault; "
        f"env {VAULT_PASSWORD_ENV}).",
    )(func)


def add_vault_password_option(command: click.Command) -> None:
    """Every verb that reads a site folder (has -i/--inventory) also takes --vault-password-file; a
    group's verbs are walked (installer.cli adds it to each verb as the verb is loaded)."""
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            add_vault_password_option(subcommand)
    elif any(p.name == "inventory" for p in command.params) and not any(
        "--vault-password-file" in getattr(p, "opts", ()) for p in command.params
    ):
        vault_password_option(command)


def _more_verbose(ctx: click.Context, param: click.Parameter, value: int) -> None:
    """-v given after the verb (`kfinstall up -v`) counts like -v before it: the root's count grows
    and kfinstall's own log is set up again at the new level."""
    if not value:
        return
    from installer.log import setup_logging

    root = ctx.find_root()
    root.ensure_object(dict)
    root.obj["verbose"] = int(root.obj.get("verbose", 0)) + value
    setup_logging(root.obj["verbose"])


def add_verbose_option(command: click.Command) -> None:
    """Every verb (a group's verbs too) takes -v/--verbose as well as the group, so `kfinstall up -vv`
    means what `kfinstall -vv up` means."""
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            add_verbose_option(subcommand)
    elif not any("-v" in getattr(p, "opts", ()) for p in command.params):
        click.option("-v", "--verbose", "_verbose", count=True, expose_value=False, callback=_more_verbose,
                     help="More on stderr (same as -v before the verb; repeat for Ansible's -vv).")(command)


# Keys of the run's shared object (click's ctx.obj, a dict installer.cli.main passes in): they tell
# main, once a command has failed, whether JSON was asked for and whether the command printed it.
OUTPUT = "output"
JSON_PRINTED = "jsonPrinted"


def _remember_output(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if isinstance(ctx.obj, dict):
        ctx.obj[OUTPUT] = value
    return value


def output_option(func: F) -> F:
    return click.option(
        "--output",
        "-o",
        "output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        # Eager: taken before the other options, so a bad value of one of them still fails as JSON.
        is_eager=True,
        callback=_remember_output,
        help="text for people, json for scripts (stable fields, documented; a JSON document on failure too).",
    )(func)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, dict):
        ctx.obj[JSON_PRINTED] = True


def failure_result(exit_code: int) -> str:
    """`result` of a failed command: invalid (exit 2, bad input), interrupted (128 + a signal) or failed."""
    if exit_code == 2:
        return "invalid"
    return "interrupted" if exit_code >= 128 else "failed"


def failure_document(exc: BaseException, exit_code: int) -> dict[str, Any]:
    """What a failed command prints on stdout with --output json (README "Output for scripts").

    A run's report so far (exc.report, e.g. up's phases), then result, error, exitCode and problems
    (every problem of a validation failure: file, line, column, key, message, fix, severity)."""
    report: Any = getattr(exc, "report", None)
    if isinstance(exc, click.ClickException):
        error = exc.format_message()
    elif isinstance(exc, KfinstallError):
        error = exc.message
    else:  # Ctrl-C before kfinstall's own handlers (click.Abort, KeyboardInterrupt)
        error = "interrupted"
    return {
        **(report.as_dict() if hasattr(report, "as_dict") else {}),
        "result": failure_result(exit_code),
        "error": error,
        "exitCode": exit_code,
        "problems": [p.as_dict() for p in exc.problems] if isinstance(exc, InvalidConfig) else [],
    }


def json_requested(session: dict[str, Any], exc: BaseException, argv: Sequence[str]) -> bool:
    """Whether the failed command was run with --output json.

    The option's callback records it (session[OUTPUT]); a usage error found while click splits the
    words (an unknown option) comes before any callback, so then the words themselves are read, for
    a command that has the option."""
    if OUTPUT in session:
        return bool(session[OUTPUT] == "json")
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is None or not any(param.name == "output" for param in ctx.command.params):
        return False
    words = list(argv[: argv.index("--")] if "--" in argv else argv)
    return any(
        word in ("-ojson", "--output=json") or (word in ("-o", "--output") and words[i + 1 : i + 2] == ["json"])
        for i, word in enumerate(words)
    )


def print_problems(problems: list[Problem] | tuple[Problem, ...]) -> None:
    """One line per problem on stderr; warnings in yellow, errors in red."""
    for problem in problems:
        style = "red" if problem.severity == "error" else "yellow"
        stderr.print(problem.render(), style=style, markup=False, highlight=False)


def verbosity() -> int:
    """The group's -v count (installer/cli/__init__.py): Ansible's verbosity and kfinstall's log level."""
    root = click.get_current_context().find_root()
    return int((root.obj or {}).get("verbose", 0))


def confirm_on_terminal(question: str) -> bool:
    """Ask on a terminal; off a terminal (CI, pipes) the answer is no, so --yes is required: the
    question (what would change) and that remedy are printed, else the refusal names no cause."""
    if not sys.stdin.isatty():
        stderr.print(question, markup=False, highlight=False)
        stderr.print("Not on a terminal, so nothing was asked and the answer is no: re-run with --yes to proceed.",
                     markup=False, highlight=False)
        return False
    return click.confirm(question, default=False)
