"""Backups before every hop, and the restore of what kfinstall itself owns (Pulumi state and config).

A backup is a folder with a manifest.json listing every file with its sha256 and size:
    resolved-config   config/kfinstall.yaml, config/<inventory file>, config/group_vars/ and host_vars/,
                      config/config.resolved.json (redacted)
    pulumi-stack      pulumi/backend.tar.gz (the whole file backend under STATE/pulumi) and
                      pulumi/<stack>.json (the stack's checkpoint, what `pulumi stack export` reads)
    etcd-snapshot     cluster/etcd-snapshot.db          } playbooks/backup.yml on the first
    pki-kubeadm-config cluster/pki.tar.gz, kubeadm-config.yaml } control-plane host (role etcd_backup)
    jupyterhub-db     cluster/jupyterhub.sqlite         kubectl cp from the hub pod
The manifest is signed with an HMAC keyed from the site's secrets.yml (installer.upgrade.manifest).
secrets.yml is never copied (run records stay free of secrets): keep it safe yourself; restore needs
the same file to check the signature and to decrypt the Pulumi state. installer.upgrade.restore
checks everything before it changes anything, then moves the current files aside (never deletes them).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from installer import __version__, catalogue
from installer.config.load import SECRETS_FILE
from installer.config.resolved import ClusterConfig
from installer.errors import ConfigError, PhaseFailed, PreflightError
from installer.runs import RunRecord
from installer.upgrade.manifest import FORMAT, MANIFEST, sign, signing_key

LOCAL_ITEMS = ("resolved-config", "pulumi-stack")
CLUSTER_ITEMS = ("etcd-snapshot", "pki-kubeadm-config", "jupyterhub-db")
# The files a cluster backup adds under cluster/ (playbooks/roles/etcd_backup and hub_db_backup).
CLUSTER_FILES = ("etcd-snapshot.db", "pki.tar.gz", "kubeadm-config.yaml", "jupyterhub.sqlite")
ARCHIVE = "pulumi/backend.tar.gz"
HUB_DB_PATH = "/srv/jupyterhub/jupyterhub.sqlite"
HUB_NAMESPACE = catalogue.JUPYTERHUB.name
BACKUP_PLAYBOOK = "backup.yml"
# Inventory folders of a site that belong to its configuration (Ansible reads them beside hosts.yml).
SITE_FOLDERS = ("group_vars", "host_vars")
# Runs a playbook that fetches etcd, PKI and kubeadm config into the folder it is given.
ClusterBackup = Callable[[Path], None]
HubBackup = Callable[[Path], None]


@dataclass
class BackupResult:
    folder: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "files": self.files, "skipped": self.skipped}


def hop_backup_folder(run_dir: Path, index: int, kind: str) -> Path:
    """Where the backup before hop `index` goes in a run's record folder: the run writes it there
    (installer.upgrade.run.backup_before) and the dry run shows it (installer.upgrade.dryrun)."""
    return run_dir / "backup" / f"hop-{index:02d}-{kind}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def backup_config(cfg: ClusterConfig, folder: Path) -> None:
    """The site's own files (not secrets.yml) and the resolved configuration, redacted."""
    _copy(cfg.site / "kfinstall.yaml", folder / "config" / "kfinstall.yaml")
    inventory = cfg.inventory.path
    if inventory is not None and inventory.is_file():
        _copy(inventory, folder / "config" / inventory.name)
    for extra in SITE_FOLDERS:
        for path in sorted((cfg.site / extra).rglob("*")) if (cfg.site / extra).is_dir() else []:
            if path.is_file():
                _copy(path, folder / "config" / path.relative_to(cfg.site))
    (folder / "config" / "config.resolved.json").write_text(json.dumps(cfg.redacted(), indent=2), encoding="utf-8")


def pulumi_backend(state_dir: Path) -> Path:
    return state_dir / "pulumi"


def backup_pulumi(state_dir: Path, stack: str, folder: Path) -> str | None:
    """Archive the file backend; returns why it was skipped, or None."""
    backend = pulumi_backend(state_dir)
    if not backend.is_dir() or not any(backend.iterdir()):
        return f"no Pulumi state under {backend} yet (the platform phase has not run)"
    target = folder / "pulumi"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / ARCHIVE, "w:gz") as archive:
        archive.add(backend, arcname="pulumi")
    for checkpoint in backend.glob(f".pulumi/stacks/**/{stack}.json"):
        _copy(checkpoint, target / f"{stack}.json")
    return None


def write_manifest(folder: Path, meta: dict[str, Any], skipped: dict[str, str], key: bytes) -> BackupResult:
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        files.append({"path": str(path.relative_to(folder)), "sha256": sha256(path), "size": path.stat().st_size})
    manifest = {
        "format": FORMAT,
        **meta,
        "createdAt": time.strftime("%FT%TZ", time.gmtime()),
        "kfinstall": __version__,
        "files": files,
        "skipped": skipped,
    }
    (folder / MANIFEST).write_text(json.dumps(sign(manifest, key), indent=2), encoding="utf-8")
    return BackupResult(folder=folder, files=files, skipped=skipped)


def take_backup(
    cfg: ClusterConfig,
    folder: Path,
    *,
    cluster_backup: ClusterBackup | None = None,
    hub_backup: HubBackup | None = None,
    hub_skipped: str = "not requested",
    label: str = "manual",
) -> BackupResult:
    """Write one backup into `folder`. Cluster parts run when their callables are given; their
    failures propagate (an upgrade never continues without its backup)."""
    key = backup_signing_key(cfg)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    skipped: dict[str, str] = {}
    backup_config(cfg, folder)
    reason = backup_pulumi(cfg.state_dir, cfg.name, folder)
    if reason:
        skipped["pulumi-stack"] = reason
    if cluster_backup is not None:
        cluster_backup(folder / "cluster")
    else:
        skipped.update({"etcd-snapshot": "not requested", "pki-kubeadm-config": "not requested"})
    if hub_backup is not None:
        hub_backup(folder / "cluster")
    else:
        skipped["jupyterhub-db"] = hub_skipped
    meta = {"cluster": cfg.name, "channel": cfg.release.channel, "label": label}
    return write_manifest(folder, meta, skipped, key)


def backup_signing_key(cfg: ClusterConfig) -> bytes:
    """The manifest's HMAC key; ConfigError (exit 2) before anything is written when secrets.yml is absent."""
    if cfg.secrets is None:
        raise ConfigError(
            f"{cfg.site / SECRETS_FILE}: file not found; a backup is signed with a key derived from its "
            f"pulumi_passphrase. Fix: run `kfinstall init --profile {cfg.spec.profile} {cfg.site}` "
            "(it keeps your files)"
        )
    return signing_key(cfg.secrets)


def checked_host_keys(cfg: ClusterConfig, record: RunRecord | None = None, console: Console | None = None) -> Any:
    """The site's SSH host-key policy, checked before a playbook touches a host; with a record, the report
    (which keys this check pinned) goes to its host-keys.json and is shown on `console` as `up` shows it."""
    from installer.adapters.ssh import HostKeyPolicy, check_host_keys
    from installer.phases.preflight import show_host_keys

    policy = HostKeyPolicy.of(cfg)
    report = check_host_keys(policy)
    if record is not None:
        show_host_keys(record, console or Console(stderr=True), report)
    return policy


def ansible_cluster_backup(
    cfg: ClusterConfig,
    work_dir: Path,
    cancel: Callable[[], bool],
    host_keys: Callable[[], Any] | None = None,
    verbosity: int = 0,
) -> ClusterBackup:
    """etcd snapshot, PKI and kubeadm config fetched by playbooks/backup.yml from the first control plane.

    `host_keys` gives the checked host-key policy when the caller's run already checks it (an upgrade:
    once per run); without it the backup checks the keys itself before its playbook."""
    checked_policy = host_keys or (lambda: checked_host_keys(cfg))

    def backup(folder: Path) -> None:
        from installer.adapters.ansible import run_playbook

        inventory = cfg.inventory.path
        if inventory is None or not cfg.profile.host_phase:
            raise PreflightError(f"profile {cfg.spec.profile} has no hosts to back up etcd and PKI from")
        folder.mkdir(parents=True, exist_ok=True)
        extra = {**cfg.ansible_vars(), "kf_backup_dest": str(folder)}
        result = run_playbook(BACKUP_PLAYBOOK, cfg.inventory, extra, work_dir, cancel=cancel,
                              host_keys=checked_policy(), verbosity=verbosity)
        if not result.ok:
            lines = [f"  {f.host}: task '{f.task}': {f.message}" for f in result.failures]
            raise PhaseFailed("\n".join([f"cluster backup failed ({result.status}, rc {result.rc})", *lines]))

    return backup


def hub_db_skip_reason(cfg: ClusterConfig) -> str | None:
    """Why the hub database is not copied (None: it is): JupyterHub off, or an external database."""
    jupyterhub = cfg.spec.components.jupyterhub
    if not jupyterhub.enabled:
        return "JupyterHub is not enabled"
    db_type = ((jupyterhub.values.get("hub") or {}).get("db") or {}).get("type")
    if db_type in ("mysql", "postgres", "other"):
        return f"hub.db.type is {db_type}: an external database is backed up with its own tools (pg_dump, mysqldump)"
    return None


def hub_db_backup(run: Callable[[list[str]], str]) -> HubBackup:
    """kubectl cp of the hub's sqlite database (`run` is installer.upgrade.facts.kubectl_runner)."""

    def backup(folder: Path) -> None:
        pods = run(["get", "pods", "-n", HUB_NAMESPACE, "-l", catalogue.HUB_POD_SELECTOR, "-o", "name"]).split()
        if not pods:
            raise PhaseFailed(f"JupyterHub backup: no hub pod in namespace {HUB_NAMESPACE}; nothing to copy")
        folder.mkdir(parents=True, exist_ok=True)
        pod = pods[0].removeprefix("pod/")
        run(["cp", f"{HUB_NAMESPACE}/{pod}:{HUB_DB_PATH}", str(folder / "jupyterhub.sqlite")])

    return backup
