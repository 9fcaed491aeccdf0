"""`kfinstall restore`: put back what kfinstall owns, from a backup it can authenticate.

A backup folder is hostile input until proven otherwise. Nothing is written before all of this
holds (exit 2 for a manifest of the wrong shape, exit 3 naming the entry for everything else):
  * manifest.json has the expected keys and types, and its HMAC verifies with this site's
    secrets.yml (installer.upgrade.manifest says how the key is derived and why);
  * the cluster it names is a DNS label, so the default state dir SITE/.kfinstall/<cluster> is a
    folder of the site (an explicit --state-dir is the operator's choice);
  * every listed path is a clean relative path naming a file kfinstall puts in a backup (never
    secrets.yml), and nothing but the site's config files and the Pulumi archive is restored;
  * the backup folder holds exactly the listed files and their folders: no link, device or unlisted
    entry, and every file has its listed size and sha256;
  * the Pulumi archive holds only regular files and folders under pulumi/: no link, device, absolute
    or `..` name, at most MAX_ARCHIVE_MEMBERS members and MAX_ARCHIVE_BYTES bytes;
  * no folder on the way to a restored file in the site folder is a link (writes never leave it).
Then everything is staged: each config file as a temporary file beside its target, the archive
unpacked into STATE/.restore-<stamp>/; each copy is hashed from the bytes actually written, so a
backup changed after the check is still caught, and a failure removes only what staging created.
Last, renames swap the staged files in; the files they replace are moved aside
(NAME.before-restore-<stamp>), never deleted, and a failed rename undoes the ones done.
Modes never come from the backup: a restored file keeps the mode of the file it replaces and a new
one is 0600 (group_vars may hold passwords); the unpacked Pulumi state is 0600, folders 0700.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import stat
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer.config.addresses import is_dns_label
from installer.config.inventory import INVENTORY_FILES
from installer.config.load import CLUSTER_FILE, SECRETS_FILE
from installer.errors import PhaseFailed, PreflightError
from installer.paths import default_state_dir
from installer.state import fsync_folder
from installer.upgrade.backup import ARCHIVE, CLUSTER_FILES, SITE_FOLDERS
from installer.upgrade.manifest import MANIFEST, MAX_PROBLEMS_SHOWN, FileEntry, Manifest, check_signature, read_manifest

# Bounds on what a backup may make restore read or write (far above real backups: a config file
# is a few KB, the Pulumi file backend of a cluster a few MB plus its history).
MAX_CONFIG_FILE_BYTES = 16 << 20
MAX_ARCHIVE_MEMBERS = 200_000
MAX_ARCHIVE_BYTES = 4 << 30
MAX_BACKUP_ENTRIES = 100_000
# metadata.name's rule (installer.config.model): a DNS label cannot hold '/' or '..'.
_CHUNK = 1 << 20
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NOT_RESTORED = {
    "cluster": "etcd, PKI and the JupyterHub database are restored by hand "
    "(etcdutl snapshot restore, kubectl cp); see docs"
}


@dataclass(frozen=True)
class CheckedBackup:
    """A backup that passed every check, and where its files go."""

    folder: Path
    manifest: Manifest
    site: Path
    state_dir: Path
    config: dict[str, FileEntry]  # path relative to the site folder -> the entry of config/<path>
    archive: FileEntry | None


def check_backup(folder: Path, site: Path, key: bytes, state_dir: Path | None = None) -> CheckedBackup:
    """Every check, reading only: InvalidConfig (2) for a manifest's shape, PreflightError (3) otherwise."""
    folder, site = folder.resolve(), site.resolve()
    manifest, document = read_manifest(folder)
    check_signature(folder, manifest, document, key)
    if not is_dns_label(manifest.cluster):
        raise _refusal(folder, [f"cluster {_shown(manifest.cluster)}: not a DNS label, so not a cluster name"])
    problems: list[str] = []
    config, archive = _classify(manifest, problems)
    problems += _tree_problems(folder, [e for e in manifest.files if _name_problem(e.path) is None])
    if archive is not None and not problems:
        problems += _archive_problems(folder / ARCHIVE)
    if problems:
        raise _refusal(folder, problems)
    problems = _site_problems(site, config)
    if problems:
        raise PreflightError(f"refusing to restore {folder} (nothing was changed):\n  - " + "\n  - ".join(problems))
    state = (state_dir or default_state_dir(site, manifest.cluster)).resolve()
    return CheckedBackup(folder, manifest, site, state, config, archive)


def restore(checked: CheckedBackup) -> dict[str, Any]:
    """Stage every file (a failure leaves the site as it was), then swap them in with renames."""
    staging = _Staging(checked, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3))
    try:
        staging.stage()
    except OSError as exc:  # disk full, permissions: what staging wrote is removed, nothing else changed
        staging.discard()
        raise PhaseFailed(
            f"restore could not stage the backup's files ({exc.strerror or exc.__class__.__name__}: "
            f"{exc.filename}); the staged copies were removed and nothing was changed"
        ) from None
    except BaseException:
        staging.discard()
        raise
    restored, moved = staging.swap()
    return {
        "backup": str(checked.folder),
        "cluster": checked.manifest.cluster,
        "stateDir": str(checked.state_dir),
        "restored": restored,
        "movedAside": moved,
        "notRestored": _NOT_RESTORED,
    }


# Checks -----------------------------------------------------------------------------------------


def _refusal(folder: Path, problems: list[str]) -> PreflightError:
    unique = list(dict.fromkeys(problems))
    shown = unique[:MAX_PROBLEMS_SHOWN]
    if len(unique) > MAX_PROBLEMS_SHOWN:
        shown.append(f"... and {len(unique) - MAX_PROBLEMS_SHOWN} more")
    return PreflightError(
        f"refusing to restore {folder}: the backup was tampered with or is incomplete (nothing was changed):\n  - "
        + "\n  - ".join(shown)
    )


def _shown(text: str) -> str:
    """A name as the operator can read it: quoted when it holds odd characters, cut when long."""
    short = text if len(text) <= 120 else text[:120] + "..."
    return short if short.isprintable() and short.strip() == short else repr(short)


def _name_problem(path: str) -> str | None:
    if "\\" in path or not path.isprintable():
        return "a control character or backslash in the name"
    if path.startswith("/"):
        return "an absolute path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "a '..', '.' or empty part in the path (it would leave its folder)"
    return None


def _classify(manifest: Manifest, problems: list[str]) -> tuple[dict[str, FileEntry], FileEntry | None]:
    """Where each listed file goes: the site (config), the state dir (archive), or nowhere (only checked)."""
    config: dict[str, FileEntry] = {}
    archive = None
    seen: set[str] = set()
    checked_only = {"config/config.resolved.json", f"pulumi/{manifest.cluster}.json"}
    checked_only |= {f"cluster/{name}" for name in CLUSTER_FILES}
    for entry in manifest.files:
        name = entry.path
        reason = _name_problem(name)
        if reason is None and name in seen:
            reason = "listed twice in manifest.json"
        seen.add(name)
        parts = name.split("/")
        if reason is not None:
            pass
        elif name == f"config/{SECRETS_FILE}":
            reason = "secrets.yml is never part of a kfinstall backup, and restore never writes it"
        elif name == ARCHIVE:
            archive = entry
        elif name in checked_only:
            pass
        elif parts[0] == "config" and _is_site_config(parts[1:]):
            if entry.size > MAX_CONFIG_FILE_BYTES:
                reason = f"{entry.size} bytes, more than a config file can be ({MAX_CONFIG_FILE_BYTES})"
            config["/".join(parts[1:])] = entry
        else:
            reason = "not a file kfinstall puts in a backup"
        if reason is not None:
            problems.append(f"{_shown(name)}: {reason}")
    return config, archive


def _is_site_config(parts: list[str]) -> bool:
    """kfinstall.yaml, the inventory file, and files under group_vars/ or host_vars/."""
    if len(parts) == 1:
        return parts[0] in (CLUSTER_FILE, *INVENTORY_FILES)
    return parts[0] in SITE_FOLDERS


def _tree_problems(folder: Path, entries: list[FileEntry]) -> list[str]:
    """The folder holds exactly the listed files and the folders leading to them, each as listed."""
    listed = {entry.path: entry for entry in entries}
    parents = {"/".join(name.split("/")[:i]) for name in listed for i in range(1, name.count("/") + 1)}
    problems: list[str] = []
    found: set[str] = set()
    pending = [("", folder)]
    count = 0
    while pending:
        relative, path = pending.pop()
        try:
            with os.scandir(path) as items:
                children = sorted(items, key=lambda item: item.name)
        except OSError as exc:
            problems.append(f"{_shown(relative or '.')}: cannot be read ({exc.strerror})")
            continue
        for item in children:
            count += 1
            if count > MAX_BACKUP_ENTRIES:
                return [*problems, f"more than {MAX_BACKUP_ENTRIES} entries: not a kfinstall backup"]
            name = f"{relative}/{item.name}" if relative else item.name
            if item.is_symlink():
                problems.append(f"{_shown(name)}: a symbolic link (a backup holds only regular files and folders)")
            elif item.is_dir(follow_symlinks=False):
                if name in parents:
                    pending.append((name, Path(item.path)))
                else:
                    problems.append(f"{_shown(name)}/: not listed in manifest.json")
            elif name != MANIFEST:
                found.add(name)
                problems += _file_problem(item, name, listed.get(name))
    problems += [f"{_shown(name)}: missing" for name in sorted(set(listed) - found)]
    return problems


def _file_problem(item: os.DirEntry[str], name: str, entry: FileEntry | None) -> list[str]:
    if not item.is_file(follow_symlinks=False):
        return [f"{_shown(name)}: not a regular file (a device, FIFO or socket)"]
    if entry is None:
        return [f"{_shown(name)}: not listed in manifest.json"]
    if not _matches(Path(item.path), entry):
        return [f"{_shown(name)}: checksum mismatch (the file changed after the backup)"]
    return []


def _matches(path: Path, entry: FileEntry) -> bool:
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size != entry.size:
            return False
        digest = hashlib.sha256()
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest() == entry.sha256


def _archive_problems(path: Path) -> list[str]:
    """Read-only listing of the Pulumi archive: only regular files and folders under pulumi/, bounded."""
    problems: list[str] = []
    members = total = 0
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                members += 1
                total += member.size
                if members > MAX_ARCHIVE_MEMBERS or total > MAX_ARCHIVE_BYTES:
                    return [f"{ARCHIVE}: more than {MAX_ARCHIVE_MEMBERS} members or {MAX_ARCHIVE_BYTES} bytes"]
                reason = _member_problem(member)
                if reason is not None:
                    problems.append(f"{ARCHIVE}: member {_shown(member.name)}: {reason}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        return [f"{ARCHIVE}: not a readable gzip tar archive ({exc.__class__.__name__})"]
    if members == 0:
        problems.append(f"{ARCHIVE}: empty (a Pulumi backend archive holds the folder pulumi/)")
    return problems


def _member_problem(member: tarfile.TarInfo) -> str | None:
    if member.issym() or member.islnk():
        return "a link (the Pulumi backend holds only regular files and folders)"
    if not (member.isreg() or member.isdir()):
        return "a device, FIFO or other special file"
    reason = _name_problem(member.name)
    if reason is not None:
        return reason
    if member.name != "pulumi" and not member.name.startswith("pulumi/"):
        return "outside pulumi/ (the archive holds the state dir's pulumi folder only)"
    return None


def _site_problems(site: Path, config: dict[str, FileEntry]) -> list[str]:
    """Folders on the way to each restored file must be real folders inside the site, not links."""
    problems = []
    for target in sorted(config):
        current = site
        for part in target.split("/")[:-1]:
            current = current / part
            try:
                mode = current.lstat().st_mode
            except FileNotFoundError:
                break  # created by the restore
            if stat.S_ISLNK(mode):
                problems.append(
                    f"{current}: a symbolic link in the site folder, and restore writes only inside it "
                    f"(config/{target}); replace the link by a folder, or restore that file by hand"
                )
                break
            if not stat.S_ISDIR(mode):
                problems.append(f"{current}: not a folder, and config/{target} goes inside it")
                break
        else:
            if (site / target).is_dir() and not (site / target).is_symlink():
                problems.append(f"{site / target}: a folder where the backup has the file config/{target}")
    return problems


# Staging and swap -------------------------------------------------------------------------------


def _private(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's 'data' filter (refuses links out, absolute names, devices), then private modes."""
    checked = tarfile.data_filter(member, dest)
    return checked.replace(mode=0o700 if checked.isdir() else 0o600, deep=False)


@dataclass
class _Staging:
    checked: CheckedBackup
    stamp: str
    temporary: list[tuple[Path, Path]] = field(default_factory=list)  # (staged file, its target)
    written: list[Path] = field(default_factory=list)  # every file staging created
    created: list[Path] = field(default_factory=list)  # folders staging made, in creation order
    state_root: Path | None = None

    def stage(self) -> None:
        checked = self.checked
        for target, entry in sorted(checked.config.items()):
            destination = checked.site / target
            self._make_folders(destination.parent)
            staged = destination.with_name(f".{destination.name}.restore-{self.stamp}.tmp")
            self._copy(checked.folder / entry.path, staged, entry, _mode_of(destination))
            self.temporary.append((staged, destination))
        if checked.archive is not None:
            self._make_folders(checked.state_dir)
            self.state_root = checked.state_dir / f".restore-{self.stamp}"
            self.state_root.mkdir(mode=0o700)
            copy = self.state_root / "backend.tar.gz"
            self._copy(checked.folder / ARCHIVE, copy, checked.archive, 0o600)
            problems = _archive_problems(copy)
            if problems:
                raise _refusal(checked.folder, problems)
            try:
                with tarfile.open(copy, "r:gz") as archive:
                    # Every member was checked above (_archive_problems), and _private applies the 'data' filter.
                    archive.extractall(self.state_root, filter=_private)  # noqa: S202
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise _refusal(checked.folder, [f"{ARCHIVE}: cannot be unpacked ({exc.__class__.__name__})"]) from None
            copy.unlink()

    def _make_folders(self, folder: Path) -> None:
        missing = []
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir(mode=0o700)
            self.created.append(path)

    def _copy(self, source: Path, destination: Path, entry: FileEntry, mode: int) -> None:
        """Copy while hashing: what lands is exactly what the manifest lists, or nothing is restored."""
        digest, size = hashlib.sha256(), 0
        with os.fdopen(os.open(source, _READ_FLAGS), "rb") as reader:
            if not stat.S_ISREG(os.fstat(reader.fileno()).st_mode):
                raise _refusal(self.checked.folder, [f"{entry.path}: not a regular file"])
            fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self.written.append(destination)  # O_EXCL: it is ours, so discard() may remove it
            with os.fdopen(fd, "wb") as writer:
                os.fchmod(writer.fileno(), mode)
                for chunk in iter(lambda: reader.read(_CHUNK), b""):
                    size += len(chunk)
                    if size > entry.size:
                        break
                    digest.update(chunk)
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
        if size != entry.size or digest.hexdigest() != entry.sha256:
            changed = f"{entry.path}: checksum mismatch (the file changed during the restore)"
            raise _refusal(self.checked.folder, [changed])

    def discard(self) -> None:
        """Remove what staging made (temporary files, the staging folder, folders it created), nothing else."""
        for path in self.written:
            with contextlib.suppress(OSError):
                path.unlink()
        if self.state_root is not None:
            shutil.rmtree(self.state_root, ignore_errors=True)
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()

    def swap(self) -> tuple[list[str], list[str]]:
        done: list[tuple[Path, Path]] = []  # renames made (from, to), undone in reverse on failure
        moves = [(staged, target) for staged, target in self.temporary]
        if self.state_root is not None:
            moves.append((self.state_root / "pulumi", self.checked.state_dir / "pulumi"))
        restored, moved = [], []
        try:
            for staged, target in moves:
                if os.path.lexists(target):
                    aside = _aside(target, self.stamp)
                    os.rename(target, aside)
                    done.append((target, aside))
                    moved.append(str(aside))
                os.rename(staged, target)
                done.append((staged, target))
                restored.append(str(target))
            if self.state_root is not None:
                self.state_root.rmdir()
            for folder in dict.fromkeys(target.parent for _, target in moves):
                fsync_folder(folder)
        except OSError as exc:
            for origin, now in reversed(done):
                with contextlib.suppress(OSError):
                    os.rename(now, origin)
            self.discard()
            raise PhaseFailed(
                f"restore stopped while putting files in place ({exc.strerror or exc}); the renames made were "
                "undone and the staged copies removed: the site and the state dir are as before"
            ) from None
        return restored, moved


def _mode_of(path: Path) -> int:
    """The mode of the file being replaced (the operator chose it), else 0600; never the backup's."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return 0o600
    return stat.S_IMODE(info.st_mode) & 0o777 if stat.S_ISREG(info.st_mode) else 0o600


def _aside(path: Path, stamp: str) -> Path:
    aside = path.with_name(f"{path.name}.before-restore-{stamp}")
    counter = 1
    while os.path.lexists(aside):  # never rename over anything, the operator's files included
        aside = path.with_name(f"{path.name}.before-restore-{stamp}-{counter}")
        counter += 1
    return aside
