"""The kfinstall command: a click group whose verbs are registered in one explicit list below."""

from __future__ import annotations

import importlib
import sys
from typing import Any, NoReturn

import click

from installer import __version__
from installer.cli.common import (
    JSON_PRINTED,
    add_vault_password_option,
    add_verbose_option,
    emit_json,
    failure_document,
    json_requested,
    print_problems,
    stderr,
    vault_password_option,
)
from installer.config.problems import InvalidConfig
from installer.errors import KfinstallError
from installer.log import setup_logging

# The table of contents: every verb, in the order `kfinstall --help` shows them, and where it is
# defined ("module:attribute"). A verb's module is imported only when that verb runs (or --help or
# completion lists it): `kfinstall plan` does not pay for importing upgrade, backup, lab and the rest.
COMMANDS: dict[str, str] = {
    "init": "installer.cli.init:init",
    "inventory": "installer.cli.inventory:inventory",
    "plan": "installer.cli.plan:plan",
    "up": "installer.cli.up:up",
    "render": "installer.cli.render:render",
    "verify": "installer.cli.verify:verify",
    "status": "installer.cli.status:status",
    "upgrade": "installer.cli.upgrade:upgrade",
    "backup": "installer.cli.backup:backup",
    "restore": "installer.cli.backup:restore",
    "down": "installer.cli.down:down",
    "node": "installer.cli.node:node",
    "reset": "installer.cli.reset:reset",
    "secrets": "installer.cli.secrets:secrets",
    "lab": "installer.cli.lab:lab",
    "channels": "installer.cli.channels:channels",
    "profile": "installer.cli.profile:profile",
}


class LazyGroup(click.Group):
    """A group whose verbs are imported on first use (click's documented LazyGroup pattern:
    list_commands and get_command), listed in the COMMANDS order, not alphabetically."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy_commands, *(name for name in self.commands if name not in self.lazy_commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.add_command(self._import(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def _import(self, cmd_name: str) -> click.Command:
        module_name, _, attribute = self.lazy_commands[cmd_name].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):  # a wrong table entry is kfinstall's bug, not the user's
            raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
        add_vault_password_option(command)
        add_verbose_option(command)
        return command


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, prog_name="kfinstall")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More on stderr: -v what kfinstall does and Ansible's output, -vv details; Ansible runs with as many -v.",
)
@vault_password_option
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Turn an Ansible inventory plus one kfinstall.yaml into a GPU machine-learning platform.

    Ansible prepares the hosts (driver, containerd, NFS, GlusterFS, kubeadm); Pulumi deploys the
    services (storage classes, GPU plugin, JupyterHub, training-operator, TF Serving, monitoring).
    Exit codes: 0 ok, 2 bad input, 3 preflight refused, 4 a phase failed, 130/143/129 stopped by
    SIGINT/SIGTERM/SIGHUP (128 + the signal).
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    setup_logging(verbose)



def main() -> None:
    """Entry point: run the group and map kfinstall's errors to exit codes.

    Messages go to stderr; a command run with --output json also prints a JSON document on stdout
    when it fails (common.failure_document), unless it printed its own.
    """
    session: dict[str, Any] = {}  # the commands' shared ctx.obj: the output asked for, JSON printed
    try:
        cli.main(standalone_mode=False, obj=session)
    except InvalidConfig as exc:
        print_problems(exc.problems)
        stderr.print(f"{len(exc.problems)} problem(s); nothing was changed.", markup=False)
        _exit(session, exc, exc.exit_code)
    except KfinstallError as exc:
        stderr.print(f"error: {exc.message}", markup=False)
        _exit(session, exc, exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        stderr.print("interrupted", markup=False)
        _exit(session, exc, 130)
    except click.ClickException as exc:
        exc.show()
        _exit(session, exc, 2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def _exit(session: dict[str, Any], exc: BaseException, exit_code: int) -> NoReturn:
    if not session.get(JSON_PRINTED) and json_requested(session, exc, sys.argv[1:]):
        emit_json(failure_document(exc, exit_code))
    sys.exit(exit_code)
