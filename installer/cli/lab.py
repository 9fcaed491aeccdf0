"""`kfinstall lab up|down|status`: local rehearsal hosts (podman + systemd + sshd, optional qemu VMs)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
from rich.console import Console
from rich.table import Table

from installer.errors import KfinstallError
from installer.lab import DEFAULT_WORK_DIR, LabStatus, lab_down, lab_status, lab_up

T = TypeVar("T")

WORK_DIR_HELP = f"Where the lab keeps its image cache, apt repo, SSH key and run records [default: {DEFAULT_WORK_DIR}]."


def _console() -> Console:
    # rich drops colour and live effects by itself when stderr is not a terminal.
    return Console(stderr=True, highlight=False)


def _reporter(console: Console) -> Callable[[str], None]:
    def report(message: str) -> None:
        console.print(message, markup=False)

    return report


def _exit_on_error(action: Callable[[], T]) -> T:
    """Run a lab action; a kfinstall error becomes its message on stderr and its exit code."""
    try:
        return action()
    except KfinstallError as exc:
        _console().print(f"[bold red]error:[/] {exc.message}")
        sys.exit(exc.exit_code)


@click.group(name="lab")
def lab() -> None:
    """Local rehearsal hosts for kfinstall's playbooks (needs root).

    Rootful podman containers running systemd and sshd on an internal bridge (10.89.7.0/24) with no
    route off it, apt packages from a local repository, and optional qemu VMs for kernel-level roles.
    """


@lab.command()
@click.option("--hosts", "hosts", type=click.IntRange(1, 89), default=3, show_default=True,
              help="Number of podman hosts h1..hN.")
@click.option("--vms", "vms", type=click.IntRange(0, 50), default=0, show_default=True,
              help="Number of qemu TCG VMs vm1..vmM (slow; for in-kernel NFS and modprobe).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for hosts.yml, kfinstall.yaml and secrets.yml.")
@click.option("--work-dir", "work_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=WORK_DIR_HELP)
def up(hosts: int, vms: int, out: Path, work_dir: Path | None) -> None:
    """Start the lab (idempotent) and write OUT/hosts.yml and OUT/kfinstall.yaml.

    The first run installs podman and friends, builds a Debian image with debootstrap and an apt
    repository (about a minute); later runs only start what is missing.
    """
    console = _console()
    status = _exit_on_error(lambda: lab_up(hosts, vms, out=out, work_dir=work_dir, report=_reporter(console)))
    _print_status(console, status)


@lab.command()
@click.option("--work-dir", "work_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=WORK_DIR_HELP)
@click.option("--purge", is_flag=True, default=False,
              help="Also delete the images, rootfs, apt repo, VM disk and SSH key (download caches are kept).")
def down(work_dir: Path | None, purge: bool) -> None:
    """Remove every lab machine, the network and repo server, and undo the lab's changes to this machine."""
    console = _console()
    _exit_on_error(lambda: lab_down(work_dir, purge=purge, report=_reporter(console)))


@lab.command()
@click.option("--work-dir", "work_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=WORK_DIR_HELP)
@click.option("--output", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Human-readable table or one JSON document on stdout.")
def status(work_dir: Path | None, output: str) -> None:
    """Show the lab's machines, network and apt repository (exit 0 whether or not the lab is up)."""
    current = _exit_on_error(lambda: lab_status(work_dir))
    if output == "json":
        click.echo(json.dumps(current.to_dict(), indent=2))
    else:
        _print_status(Console(highlight=False), current)


def _print_status(console: Console, status: LabStatus) -> None:
    table = Table(title=f"kfinstall lab ({'up' if status.up else 'not up'})", title_justify="left")
    for column in ("machine", "kind", "address", "state", "ssh"):
        table.add_column(column)
    for machine in status.machines:
        table.add_row(machine.name, machine.kind, machine.address, machine.state,
                      "open" if machine.ssh_open else "-")
    console.print(table)
    console.print(f"network {status.network} {status.subnet}: {'present' if status.network_exists else 'absent'}")
    console.print(f"apt repo {status.repo_url}: {'serving' if status.repo_serving else 'not serving'}")
    if status.inventory:
        console.print(f"inventory {status.inventory}")
