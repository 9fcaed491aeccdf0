"""The kfinstall command: a click group whose verbs are registered in one explicit list below."""

from __future__ import annotations

import sys

import click

from installer import __version__
from installer.cli import channels, down, init, inventory, plan, profile, status, up, upgrade
from installer.cli.common import stderr
from installer.config.problems import InvalidConfig
from installer.errors import KfinstallError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="kfinstall")
@click.option("-v", "--verbose", count=True, help="More detail (repeat for Ansible's -vv).")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Turn an Ansible inventory plus one kfinstall.yaml into a GPU machine-learning platform.

    Ansible prepares the hosts (driver, containerd, NFS, GlusterFS, kubeadm); Pulumi deploys the
    services (storage classes, GPU plugin, JupyterHub, training-operator, TF Serving, monitoring).
    Exit codes: 0 ok, 2 bad input, 3 preflight refused, 4 a phase failed, 130 interrupted.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


# The table of contents: every verb, in the order `kfinstall --help` shows them.
COMMANDS: list[click.Command] = [
    init.init,
    inventory.inventory,
    plan.plan,
    up.up,
    status.status,
    upgrade.upgrade,
    down.down,
    channels.channels,
    profile.profile,
]


def _optional_commands() -> list[click.Command]:
    """Verbs whose modules other parts of the tree provide (lab hosts, render, verify)."""
    found = []
    for module_name, attr in (("lab", "lab"), ("render", "render"), ("verify", "verify")):
        try:
            module = __import__(f"installer.cli.{module_name}", fromlist=[attr])
        except ModuleNotFoundError as exc:
            if exc.name != f"installer.cli.{module_name}":
                raise
            continue
        found.append(getattr(module, attr))
    return found


for _command in COMMANDS + _optional_commands():
    cli.add_command(_command)


def main() -> None:
    """Entry point: run the group and map kfinstall's errors to exit codes."""
    try:
        cli.main(standalone_mode=False)
    except InvalidConfig as exc:
        from installer.cli.common import print_problems

        print_problems(exc.problems)
        stderr.print(f"{len(exc.problems)} problem(s); nothing was changed.", markup=False)
        sys.exit(exc.exit_code)
    except KfinstallError as exc:
        stderr.print(f"error: {exc.message}", markup=False)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        stderr.print("interrupted", markup=False)
        sys.exit(130)
    except KeyboardInterrupt:
        stderr.print("interrupted", markup=False)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
