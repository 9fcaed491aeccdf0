"""`kfinstall backup` and `kfinstall restore`: what kfinstall owns (Pulumi state, config), checksummed."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import click

from installer.cli.common import (
    confirm_on_terminal,
    emit_json,
    inventory_option,
    output_option,
    profile_option,
    state_dir_option,
    stderr,
    stdout,
    verbosity,
)
from installer.config.load import load
from installer.errors import PreflightError
from installer.interrupt import interrupt_sets
from installer.lock import run_lock
from installer.runs import RunRecord
from installer.upgrade.backup import (
    BackupResult,
    ansible_cluster_backup,
    backup_signing_key,
    checked_host_keys,
    hub_db_backup,
    hub_db_skip_reason,
    take_backup,
)
from installer.upgrade.facts import kubectl_runner
from installer.upgrade.manifest import site_signing_key
from installer.upgrade.restore import check_backup
from installer.upgrade.restore import restore as restore_backup


@click.command()
@inventory_option
@profile_option
@state_dir_option
@click.option(
    "--cluster",
    "with_cluster",
    is_flag=True,
    help="Also back up the etcd snapshot, PKI and kubeadm config (Ansible) and the JupyterHub database (kubectl).",
)
@output_option
def backup(inventory: Path, profile: str | None, state_dir: Path | None, with_cluster: bool, output: str) -> None:
    """Back up the Pulumi state and the site's configuration into STATE/runs/<id>/backup.

    Every file is listed in manifest.json with its sha256; secrets.yml is never copied. With
    --cluster the etcd snapshot, PKI, kubeadm config and JupyterHub database are added, and the
    command fails (exit 3 or 4) when the cluster cannot be reached.
    """
    cfg = load(inventory, (), need_secrets=False, state_dir=state_dir, profile=profile)
    backup_signing_key(cfg)  # no secrets.yml, no signed backup: refused before the run record is written
    stop = threading.Event()  # SIGINT/TERM/HUP: Ansible is stopped and waited for before the lock goes
    with run_lock(cfg.state_dir, "backup"), interrupt_sets(stop):
        record = RunRecord.start(cfg, "backup")
        cluster = hub = None
        skip = hub_db_skip_reason(cfg) if with_cluster else None
        if with_cluster:
            # Checked when the playbook starts; the report (keys pinned on first contact) stays in this record.
            keys = functools.partial(checked_host_keys, cfg, record, stderr)
            cluster = ansible_cluster_backup(cfg, record.path / "ansible", stop.is_set, host_keys=keys,
                                             verbosity=verbosity())
            hub = None if skip else hub_db_backup(kubectl_runner(cfg))
        result = take_backup(
            cfg, record.path / "backup", cluster_backup=cluster, hub_backup=hub, hub_skipped=skip or "not requested"
        )
        record.write_json("summary.json", {"action": "backup", **result.as_dict()})
    _show(result, output)


def _show(result: BackupResult, output: str) -> None:
    if output == "json":
        emit_json(result.as_dict())
        return
    stdout.print(f"backup: {result.folder}", markup=False)
    for entry in result.files:
        stdout.print(f"  {entry['path']}  {entry['size']} bytes  sha256 {entry['sha256'][:16]}", markup=False)
    for name, reason in result.skipped.items():
        stdout.print(f"  skipped {name}: {reason}", markup=False)


@click.command()
@click.argument("backup_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@inventory_option
@state_dir_option
@click.option("--yes", is_flag=True, help="Do not ask before replacing files (required when not on a terminal).")
@output_option
def restore(backup_dir: Path, inventory: Path, state_dir: Path | None, yes: bool, output: str) -> None:
    """Restore the Pulumi state and the config files from BACKUP_DIR after verifying it.

    The manifest must carry a valid signature made with this site's secrets.yml, and every file its
    listed checksum; links, unlisted entries and paths leaving the site or the state dir are refused
    (exit 3, naming the entry; exit 2 for a damaged manifest). Nothing changes unless every check
    passes. The files it replaces are moved aside (NAME.before-restore-<time>), never deleted.
    secrets.yml is never in a backup: put it back yourself first. etcd, PKI and the JupyterHub
    database are restored by hand.
    """
    checked = check_backup(backup_dir, inventory, site_signing_key(inventory), state_dir)
    question = (
        f"Replace the config in {checked.site} and the Pulumi state in {checked.state_dir} "
        f"(cluster {checked.manifest.cluster}) from {checked.folder}?"
    )
    if not yes and not confirm_on_terminal(question):
        raise PreflightError("not confirmed; nothing was restored (pass --yes when not on a terminal)")
    with run_lock(checked.state_dir, "restore"):
        result = restore_backup(checked)
    if output == "json":
        emit_json(result)
        return
    for path in result["restored"]:
        stdout.print(f"restored {path}", markup=False)
    for path in result["movedAside"]:
        stdout.print(f"kept the previous one as {path}", markup=False)
