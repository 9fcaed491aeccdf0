"""A record of the files kfinstall wrote into a folder, so it replaces and removes only those.

Every command that writes into a folder the operator names (render's --out, lab's --out) keeps a
record there, `.kfinstall-files.json`: each file it wrote with the sha256 of what it wrote, and each
folder it created. A later run replaces or removes a recorded file only while its content still
matches the record; a file the operator edited, and any file kfinstall did not write, is refused
(exit 2, nothing changed) rather than overwritten. Folders are removed only when kfinstall created
them and they are empty.

Writes never leave the folder: every path is opened one component at a time relative to the
folder with O_NOFOLLOW, so a symbolic link planted inside it (`helm -> /etc`) is refused instead of
followed, and each file is written to a temporary name, fsynced and renamed over the old one.

The record is checked before use (relative paths without `..`, hex digests), because the folder,
and so the record, is the operator's: a damaged record refuses the run instead of steering it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from installer.errors import ConfigError

RECORD_NAME = ".kfinstall-files.json"
RECORD_VERSION = 1
MAX_RECORD_BYTES = 4 * 1024 * 1024
_TMP_MARK = ".kfinstall-tmp-"
_EMPTY_FIX = "give {command} a new or empty folder; kfinstall never writes among files it did not write"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class NewFile:
    """Content kfinstall wants at a path relative to the folder, with the mode a new file gets."""

    data: bytes
    mode: int = 0o644


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_outside(folder: Path, option: str, protected: Mapping[str, Path]) -> None:
    """Refuse `folder` when it is, contains or is inside one of the `protected` folders (by name).

    Paths are resolved first, so a symbolic link to the site folder is caught like the folder itself.
    """
    target = folder.resolve()
    for name, path in protected.items():
        other = path.resolve()
        if target == other:
            relation = "is"
        elif target in other.parents:
            relation = "contains"
        elif other in target.parents:
            relation = "is inside"
        else:
            continue
        raise ConfigError(
            f"{option} {folder} {relation} the {name} {other}; kfinstall never writes its output there. "
            f"Fix: choose a folder outside {other}"
        )


def _clean_relative(rel: str, record: Path) -> str:
    """A recorded path must stay inside the folder: relative, no `..`, `.` or empty parts."""
    if not isinstance(rel, str) or "\0" in rel or "\\" in rel or not rel:
        raise _damaged(record, "an entry is not a relative path")
    parts = PurePosixPath(rel).parts
    if rel.startswith("/") or any(part in ("..", ".", "") for part in parts) or "/".join(parts) != rel:
        raise _damaged(record, f"entry {rel[:80]!r} is not a plain relative path inside the folder")
    if parts[0] == RECORD_NAME or any(len(part.encode()) > 255 for part in parts):
        raise _damaged(record, f"entry {rel[:80]!r} is not a file kfinstall writes")
    return rel


def _damaged(record: Path, what: str) -> ConfigError:
    return ConfigError(
        f"{record}: the record of files kfinstall wrote is damaged ({what}). "
        f"Fix: move what you want to keep out of {record.parent}, then delete the folder or choose a new one"
    )


@dataclass
class Record:
    """What kfinstall wrote into one folder: files with their sha256, folders it created."""

    files: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    # Files being written by a run that did not finish: either content counts as kfinstall's.
    pending: dict[str, str] = field(default_factory=dict)

    def owns(self, rel: str, found: str) -> bool:
        """True when the sha256 `found` is what kfinstall last wrote (or was writing) at `rel`."""
        return self.files.get(rel) == found or self.pending.get(rel) == found

    def to_json(self) -> bytes:
        body = {"kfinstall": RECORD_VERSION, "files": dict(sorted(self.files.items())), "dirs": sorted(self.dirs)}
        if self.pending:
            body["pending"] = dict(sorted(self.pending.items()))
        return (json.dumps(body, indent=1) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, path: Path) -> Record:
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deeply
            raise _damaged(path, "not JSON") from None
        if not isinstance(body, dict) or body.get("kfinstall") != RECORD_VERSION:
            raise _damaged(path, f"expected a mapping with kfinstall: {RECORD_VERSION}")
        files, dirs, pending = body.get("files", {}), body.get("dirs", []), body.get("pending", {})
        if not isinstance(files, dict) or not isinstance(pending, dict) or not isinstance(dirs, list):
            raise _damaged(path, "files and pending must be mappings, dirs a list")
        for table in (files, pending):
            for rel, sha in table.items():
                _clean_relative(rel, path)
                if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
                    raise _damaged(path, f"entry {rel[:80]!r} has no sha256")
        return cls(dict(files), {_clean_relative(d, path) for d in dirs}, dict(pending))


class Folder:
    """An open folder: every path below it resolved one component at a time, links refused."""

    def __init__(self, root: Path, fd: int) -> None:
        self.root = root
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)

    def _refuse_link(self, rel: str) -> ConfigError:
        return ConfigError(
            f"{self.root / rel} is a symbolic link, or not the folder or regular file kfinstall expects there; "
            f"kfinstall does not write through links or over what it did not write. Fix: move it away, or choose "
            f"another folder"
        )

    @contextlib.contextmanager
    def directory(self, parts: tuple[str, ...], create: list[str] | None = None) -> Iterator[int | None]:
        """An fd of the folder at `parts` (None when missing and `create` is None); links refused.

        With `create`, missing folders are made and their relative paths appended to it.
        """
        fds: list[int] = []
        current = self.fd
        try:
            for index, part in enumerate(parts):
                rel = "/".join(parts[: index + 1])
                try:
                    current = os.open(part, _DIR_FLAGS, dir_fd=current)
                except FileNotFoundError:
                    if create is None:
                        yield None
                        return
                    os.mkdir(part, 0o755, dir_fd=current)
                    create.append(rel)
                    current = os.open(part, _DIR_FLAGS, dir_fd=current)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise self._refuse_link(rel) from None
                    raise
                fds.append(current)
            yield current
        finally:
            for fd in reversed(fds):
                os.close(fd)

    @contextlib.contextmanager
    def _open_regular(self, rel: str) -> Iterator[BinaryIO | None]:
        """The regular file at `rel` open for reading, None when absent; a link or special file is refused."""
        parts = PurePosixPath(rel).parts
        with self.directory(parts[:-1]) as parent:
            if parent is None:
                yield None
                return
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
            except FileNotFoundError:
                yield None
                return
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR):
                    raise self._refuse_link(rel) from None
                raise
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise self._refuse_link(rel)
                yield handle

    def read(self, rel: str, limit: int | None = None) -> bytes | None:
        """Content of the regular file at `rel`, None when absent; a link or special file is refused.

        With `limit`, a larger file raises _TooLarge before a byte is read (the size is the file's, not the
        name's: fstat of the open file).
        """
        with self._open_regular(rel) as handle:
            if handle is None:
                return None
            if limit is not None:
                size = os.fstat(handle.fileno()).st_size
                if size > limit:
                    raise _TooLarge(size)
                return handle.read(limit + 1)
            return handle.read()

    def sha256(self, rel: str) -> str | None:
        """sha256 of the regular file at `rel`, read in chunks (an operator's 10 GB file costs no memory)."""
        with self._open_regular(rel) as handle:
            if handle is None:
                return None
            found = hashlib.sha256()
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                found.update(chunk)
            return found.hexdigest()

    def exists(self, rel: str) -> bool:
        parts = PurePosixPath(rel).parts
        with self.directory(parts[:-1]) as parent:
            if parent is None:
                return False
            try:
                os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return False
            return True

    def write(self, rel: str, new: NewFile, created: list[str]) -> None:
        """Atomically put `new` at `rel`: temporary file, fsync, rename, fsync of the folder."""
        parts = PurePosixPath(rel).parts
        with _writable(self.root / rel), self.directory(parts[:-1], create=created) as parent:
            assert parent is not None
            write_atomically(parent, parts[-1], new.data, new.mode)

    def create(self, rel: str, new: NewFile, created: list[str]) -> bool:
        """Write `rel` only if nothing is there (no replace); False when something already is."""
        parts = PurePosixPath(rel).parts
        with _writable(self.root / rel), self.directory(parts[:-1], create=created) as parent:
            assert parent is not None
            try:
                os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
                return False
            except FileNotFoundError:
                pass
            tmp = _write_temporary(parent, parts[-1], new.data, new.mode)
            try:
                # link() refuses an existing target: a file appearing meanwhile is not replaced.
                os.link(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp, dir_fd=parent)
            os.fsync(parent)
            return True

    def remove(self, rel: str) -> None:
        parts = PurePosixPath(rel).parts
        with self.directory(parts[:-1]) as parent:
            if parent is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(parts[-1], dir_fd=parent)

    def remove_empty_dir(self, rel: str) -> bool:
        parts = PurePosixPath(rel).parts
        with self.directory(parts[:-1]) as parent:
            if parent is None:
                return True
            try:
                os.rmdir(parts[-1], dir_fd=parent)
            except FileNotFoundError:
                return True
            except OSError:
                return False  # not empty (the operator's files) or a link: left alone
            return True

    def is_empty(self) -> bool:
        return not os.listdir(self.fd)


def _write_temporary(dir_fd: int, name: str, data: bytes, mode: int) -> str:
    tmp = f".{name[:200]}{_TMP_MARK}{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return tmp


def write_atomically(dir_fd: int, name: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `name` in the folder `dir_fd` with `data`: readers see the old or the new file, never half.

    The file is created with `mode` from its first byte (0600 secrets are never readable by others)
    and a link at `name` is replaced, not followed.
    """
    tmp = _write_temporary(dir_fd, name, data, mode)
    try:
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def write_file_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """`write_atomically` for a path whose folder exists (the folder itself may be reached by a link)."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with _writable(path):
            write_atomically(fd, path.name, data, mode)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _writable(path: Path) -> Iterator[None]:
    """A folder this user may not write (permissions, read-only mount, immutable) is exit 2, not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise ConfigError(f"cannot write {path} ({exc.strerror}); nothing more was written. Fix: let this user "
                          f"write there (folder permissions, read-only mount, chattr +i), or choose another folder"
                          ) from None


@contextlib.contextmanager
def open_folder(root: Path, *, create: bool) -> Iterator[Folder]:
    """The folder at `root` (made when `create` and missing); `root` itself may be a link the operator chose."""
    try:
        if create:
            root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except NotADirectoryError:
        raise ConfigError(f"{root} or a folder above it is not a folder. Fix: choose another folder") from None
    except OSError as exc:
        raise ConfigError(f"cannot use the folder {root} ({exc.strerror}). Fix: choose a folder this user can "
                          "create and write") from None
    folder = Folder(root, fd)
    try:
        yield folder
    finally:
        folder.close()


class _TooLarge(Exception):
    """A file larger than the caller's limit (its size in bytes)."""


def _load_record(folder: Folder) -> Record | None:
    path = folder.root / RECORD_NAME
    try:
        data = folder.read(RECORD_NAME, limit=MAX_RECORD_BYTES)
    except _TooLarge as size:
        raise _damaged(path, f"{size} bytes, larger than {MAX_RECORD_BYTES}") from None
    if data is None:
        return None
    record = Record.parse(data, path)
    _adopt_interrupted(folder, record)
    return record


def _adopt_interrupted(folder: Folder, record: Record) -> None:
    """A run stopped half-way (kill -9, power cut) left `pending`: the files it wrote are kfinstall's.

    Each pending file that holds what that run was writing joins `files`, so a later run that no longer
    produces it removes it, and one that produces it again may replace it; without this the file would
    stay behind as "not written by kfinstall". A pending file holding anything else is left as it is.
    """
    for rel, sha in record.pending.items():
        if record.files.get(rel) != sha:
            with contextlib.suppress(ConfigError):
                if folder.sha256(rel) == sha:
                    record.files[rel] = sha


def _save_record(folder: Folder, record: Record) -> None:
    # 0600: the record holds the sha256 of every file, the 0600 Secret objects included, and a digest of a
    # known YAML around a weak operator-chosen password is enough to test guesses offline.
    with _writable(folder.root / RECORD_NAME):
        write_atomically(folder.fd, RECORD_NAME, record.to_json(), 0o600)


@dataclass
class Changes:
    """What a run did to a folder, by relative path."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _refusal(root: Path, problems: list[str], fix: str) -> ConfigError:
    shown = "\n".join(f"  - {p}" for p in problems[:20])
    more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
    return ConfigError(f"refusing to write into {root}; nothing was changed:\n{shown}{more}\nFix: {fix}")


def _conflicts(folder: Folder, record: Record, paths: list[str]) -> list[str]:
    """Paths that hold something kfinstall did not write, or that the operator changed since."""
    found = []
    for rel in paths:
        try:
            current = folder.sha256(rel)
        except ConfigError:
            found.append(f"{rel}: a symbolic link or special file, or below one")
            continue
        if current is None or record.owns(rel, current):
            continue
        found.append(f"{rel}: " + ("changed since kfinstall wrote it" if rel in record.files
                                   else "not written by kfinstall"))
    return found


def replace_folder(root: Path, files: Mapping[str, NewFile], *, command: str) -> Changes:
    """Make kfinstall's part of `root` exactly `files`: write them, remove recorded files no longer wanted.

    Refuses (ConfigError, exit 2, before any change) a folder that holds anything while it has no
    record, and any wanted or stale path whose content kfinstall did not write. Files and folders
    not in the record are never touched.
    """
    wanted = {_clean_relative(rel, root / RECORD_NAME): new for rel, new in files.items()}
    with open_folder(root, create=True) as folder:
        record = _load_record(folder)
        if record is None:
            if not folder.is_empty():
                raise _refusal(root, [f"{root} is not empty and has no {RECORD_NAME} (kfinstall did not make it)"],
                               _EMPTY_FIX.format(command=command))
            record = Record()
        stale = sorted(set(record.files) - set(wanted))
        problems = _conflicts(folder, record, sorted(wanted) + stale)
        if problems:
            raise _refusal(root, problems, "move those files out of the folder (or put kfinstall's content back), "
                                           "or choose a new folder")
        return _apply(folder, record, wanted, stale)


def replace_files(root: Path, files: Mapping[str, NewFile], *, command: str) -> Changes:
    """Write `files` into `root` (a folder with the operator's files too), replacing only kfinstall's own.

    A path that exists without a record entry, or that changed since kfinstall wrote it, is refused.
    """
    wanted = {_clean_relative(rel, root / RECORD_NAME): new for rel, new in files.items()}
    with open_folder(root, create=True) as folder:
        record = _load_record(folder) or Record()
        problems = _conflicts(folder, record, sorted(wanted))
        if problems:
            raise _refusal(root, problems, f"move those files away (kfinstall's {command} writes them), "
                                           "or choose another folder")
        return _apply(folder, record, wanted, [])


def check_files(root: Path, paths: list[str], *, command: str) -> None:
    """Refuse now (exit 2) what `replace_files(root, paths...)` would refuse later; writes nothing."""
    if not root.exists():
        return
    with open_folder(root, create=False) as folder:
        record = _load_record(folder) or Record()
        problems = _conflicts(folder, record, [_clean_relative(p, root / RECORD_NAME) for p in paths])
        if problems:
            raise _refusal(root, problems, f"move those files away (kfinstall's {command} writes them), "
                                           "or choose another folder")


def check_folder(root: Path, *, command: str) -> None:
    """Refuse now (exit 2) a folder `replace_folder` would refuse for holding what kfinstall did not write.

    Lets a command refuse before its slow part; `replace_folder` checks again before writing.
    """
    if not root.exists():
        return
    with open_folder(root, create=False) as folder:
        if _load_record(folder) is None and not folder.is_empty():
            raise _refusal(root, [f"{root} is not empty and has no {RECORD_NAME} (kfinstall did not make it)"],
                           _EMPTY_FIX.format(command=command))


def remove_files(root: Path, paths: list[str]) -> list[str]:
    """Remove `paths` where they still hold what kfinstall wrote; returns those left alone (changed or foreign)."""
    if not root.is_dir():
        return []
    kept = []
    with open_folder(root, create=False) as folder:
        record = _load_record(folder)
        if record is None:
            return [p for p in paths if folder.exists(p)]
        for rel in paths:
            try:
                current = folder.sha256(rel)
            except ConfigError:
                kept.append(rel)
                continue
            if current is None:
                record.files.pop(rel, None)
            elif record.owns(rel, current):
                folder.remove(rel)
                record.files.pop(rel, None)
            else:
                kept.append(rel)
        _save_record(folder, record)
    return kept


def _apply(folder: Folder, record: Record, wanted: Mapping[str, NewFile], stale: list[str]) -> Changes:
    changes = Changes()
    # First the intent, so a run stopped half-way leaves files the next run still recognises.
    record.pending = {rel: digest(new.data) for rel, new in wanted.items()}
    _save_record(folder, record)
    created: list[str] = []
    try:
        for rel, new in sorted(wanted.items()):
            if folder.sha256(rel) == record.pending[rel]:
                changes.unchanged.append(rel)
            else:
                folder.write(rel, new, created)
                changes.written.append(rel)
                if not record.dirs.issuperset(created):
                    # Folders it made are recorded as soon as they exist: after a kill -9 they are still kfinstall's.
                    record.dirs.update(created)
                    _save_record(folder, record)
            record.files[rel] = digest(new.data)
        for rel in stale:
            folder.remove(rel)
            record.files.pop(rel, None)
            changes.removed.append(rel)
    finally:
        record.dirs.update(created)
        record.pending = {}
        _save_record(folder, record)
    _remove_unused_dirs(folder, record)
    return changes


def _remove_unused_dirs(folder: Folder, record: Record) -> None:
    """Folders kfinstall created and no longer writes into go, deepest first, only when empty."""
    used = {str(PurePosixPath(rel).parent) for rel in record.files}
    used = {p for rel in used for p in [rel, *[str(a) for a in PurePosixPath(rel).parents]]}
    gone = False
    for rel in sorted(record.dirs - used, key=lambda r: -len(PurePosixPath(r).parts)):
        if folder.remove_empty_dir(rel):
            record.dirs.discard(rel)
            gone = True
    if gone:
        _save_record(folder, record)
