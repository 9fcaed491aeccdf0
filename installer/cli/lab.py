"""`kfinstall lab up|down|status`: local rehearsal hosts (podman + systemd + sshd, optional qemu VMs).

Errors are raised as KfinstallError subclasses (PreflightError when not root or the machine cannot
host the lab, ConfigError for bad counts, PhaseFailed when a step fails); installer.cli.main turns
them into exit codes.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from installer.cli.common import emit_json, output_option, stderr, stdout
from installer.lab import DEFAULT_WORK_DIR, LabStatus, lab_down, lab_status, lab_up
from installer.lab.settings import MAX_HOSTS, MAX_VMS

WORK_DIR_HELP = f"Where the lab keeps its image cache, apt repo, SSH key and run records [default: {DEFAULT_WORK_DIR}]."


def _progress(message: str) -> None:
    # Progress goes to stderr so `--output json` style consumers of stdout stay clean.
    stderr.print(message, markup=False)


def work_dir_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--work-dir",
        "work_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=WORK_DIR_HELP,
    )(func)


@click.group(name="lab")
def lab() -> None:
    """Local rehearsal hosts for kfinstall's playbooks (needs root).

    Rootful podman containers running systemd and sshd on an internal bridge (10.89.7.0/24) with no
    route off it, apt packages from a local repository served on the bridge, and optional qemu TCG
    VMs for kernel-level roles (in-kernel NFS, modprobe).
    """


@lab.command()
@click.option(
    "--hosts",
    "hosts",
    type=click.IntRange(1, MAX_HOSTS),
    default=3,
    show_default=True,
    help="Number of podman hosts h1..hN (10.89.7.11 and up).",
)
@click.option(
    "--vms",
    "vms",
    type=click.IntRange(0, MAX_VMS),
    default=0,
    show_default=True,
    help="Number of qemu TCG VMs vm1..vmM (10.89.7.101 and up; slow, for in-kernel NFS and modprobe).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for hosts.yml, kfinstall.yaml and secrets.yml (created if missing).",
)
@work_dir_option
def up(hosts: int, vms: int, out: Path, work_dir: Path | None) -> None:
    """Start the lab (idempotent) and write OUT/hosts.yml and OUT/kfinstall.yaml.

    The first run installs podman and friends, builds a Debian image with debootstrap and an apt
    repository (about two minutes); later runs only start what is missing (about 1-3 s).
    """
    status = lab_up(hosts, vms, out=out, work_dir=work_dir, report=_progress)
    _print_status(status)


@lab.command()
@work_dir_option
@click.option(
    "--purge",
    is_flag=True,
    default=False,
    help="Also delete the images, rootfs, apt repo, VM disk and SSH key (download caches are kept).",
)
def down(work_dir: Path | None, purge: bool) -> None:
    """Remove every lab machine, the network and repo server, and undo the lab's changes to this machine.

    Restores ip_forward and the sysctls recorded before the first `lab up`, removes the firewall
    guard, the podman drop-in and the cgroup binding it added, and OUT/hosts.yml. Safe to run twice.
    """
    lab_down(work_dir, purge=purge, report=_progress)


@lab.command()
@work_dir_option
@output_option
def status(work_dir: Path | None, output: str) -> None:
    """Show the lab's machines, network and apt repository (exit 0 whether or not the lab is up)."""
    current = lab_status(work_dir)
    if output == "json":
        emit_json(current.to_dict())
    else:
        _print_status(current)


def _print_status(current: LabStatus) -> None:
    table = Table(title=f"kfinstall lab: {'up' if current.up else 'not up'}", title_justify="left")
    for column in ("machine", "kind", "address", "state", "ssh"):
        table.add_column(column)
    for machine in current.machines:
        table.add_row(machine.name, machine.kind, machine.address, machine.state, "open" if machine.ssh_open else "-")
    stdout.print(table)
    network = "present" if current.network_exists else "absent"
    stdout.print(
        f"network {current.network} {current.subnet} ({current.bridge or 'no bridge'}): {network}", markup=False
    )
    stdout.print(f"apt repo {current.repo_url}: {'serving' if current.repo_serving else 'not serving'}", markup=False)
    if current.inventory:
        stdout.print(f"inventory {current.inventory}", markup=False)
