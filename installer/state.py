"""state.json under the state dir: installed channel, phases done, last run, upgrade history.

Only this module and the run record write under the state dir. Writes are atomic and durable
(temp file, fsync, rename, fsync of the folder), so an interrupted run or a power cut never leaves a
half-written state; every write first keeps the current good copy as state.json.prev. A state file
that cannot be read stops kfinstall with exit 2 naming the file and the fix: it never guesses what
is installed (an empty guess would re-install, an old one could plan a wrong upgrade).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from installer.config.pydantic_errors import key_path
from installer.errors import ConfigError
from installer.owned import write_file_atomically

STATE_FILE = "state.json"
PREVIOUS_SUFFIX = ".prev"
# Far above any real state (a history entry is ~200 bytes); bounds what a damaged file can cost.
MAX_STATE_BYTES = 16 << 20


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str
    action: str
    from_channel: str | None = None
    to_channel: str | None = None
    run_id: str | None = None
    result: str
    # Upgrade hops (installer.upgrade.executor): which hop, and Kubernetes before and after it.
    hop: str | None = None
    kubernetes_from: str | None = None
    kubernetes_to: str | None = None


class UpgradeProgress(BaseModel):
    """An upgrade that started and has not finished: a re-run plans from the installed versions
    (updated after every completed hop) and so resumes with the hops still missing."""

    model_config = ConfigDict(extra="forbid")
    target_channel: str
    target_kubernetes: str | None = None
    run_id: str
    started_at: str
    hops_done: list[str] = Field(default_factory=list)


class State(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cluster: str
    installed_channel: str | None = None
    kubernetes_version: str | None = None
    phases_done: list[str] = Field(default_factory=list)
    last_run_id: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    upgrade: UpgradeProgress | None = None
    # Hosts per role group that the host phase last ran to its end on (ok, or incomplete with steps skipped on
    # purpose, as on lab hosts without Kubernetes packages): what `up --limit` takes as already converged.
    host_roles: dict[str, list[str]] = Field(default_factory=dict)
    # Hosts a `kfinstall reset` finished on (ok or incomplete). One of them not in host_roles (no `up` converged it
    # since) has nothing of kfinstall's left: a later reset leaves it out instead of refusing it as never converged.
    reset_hosts: list[str] = Field(default_factory=list)


def read_state(state_dir: Path) -> State | None:
    """The state, or None when nothing was installed yet; ConfigError (exit 2) when it is unreadable."""
    path = state_dir / STATE_FILE
    if not os.path.lexists(path):  # a dangling link is refused below, not taken for "never installed"
        return None
    try:
        return _parse(_read_bounded(path))
    except _Unreadable as exc:
        raise ConfigError(f"{path}: {exc}; kfinstall stops rather than guess what is installed. {_fix(path)}") from None


def write_state(state_dir: Path, state: State) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / STATE_FILE
    _keep_previous(path)
    data: dict[str, Any] = state.model_dump(mode="json")
    write_file_atomically(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), 0o600)


def previous_copy(path: Path) -> Path:
    return path.with_name(path.name + PREVIOUS_SUFFIX)


def fsync_folder(folder: Path) -> None:
    """Make the renames in `folder` durable (a rename lives in the folder, not in the file)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Unreadable(Exception):
    """Why a state file cannot be used (message for the operator, never the file's content)."""


def _read_bounded(path: Path) -> bytes:
    """The file's bytes; a link is refused like a FIFO or a folder (writes replace a link, so reading
    through one would show a state kfinstall never wrote and then silently stop updating it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Unreadable("is a symbolic link, and kfinstall keeps its state in a file of the state dir") from None
        raise _Unreadable(f"cannot be read ({exc.strerror or exc.__class__.__name__})") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _Unreadable("not a regular file")
            if info.st_size > MAX_STATE_BYTES:
                raise _Unreadable(f"{info.st_size} bytes, more than a state file can be ({MAX_STATE_BYTES})")
            return handle.read(MAX_STATE_BYTES + 1)
    except OSError as exc:
        raise _Unreadable(f"cannot be read ({exc.strerror or exc.__class__.__name__})") from None


def _parse(content: bytes) -> State:
    try:
        data = json.loads(content.decode("utf-8"))
    except UnicodeDecodeError:
        raise _Unreadable("is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        if not content.strip():
            raise _Unreadable("is empty") from None
        raise _Unreadable(f"is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise _Unreadable("is not valid JSON (nested too deeply)") from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise _Unreadable("is not valid JSON (a number too long to read)") from None
    try:
        return State.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        shown = "; ".join(f"{key_path(tuple(e['loc'])) or '(top level)'}: {e['msg']}" for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise _Unreadable(f"is not a kfinstall state ({shown}{more})") from None


def _fix(path: Path) -> str:
    previous = previous_copy(path)
    if _is_good(previous):
        return (
            f"Fix: {previous} is the copy kept before the last write; check it and put it back with "
            f"`cp -p {previous} {path}` (it misses at most the last run, which a re-run of `kfinstall up` converges)"
        )
    why = f"the previous copy ({previous}) is damaged too" if os.path.lexists(previous) else (
        f"no previous copy ({previous}) exists")
    return (
        f"Fix: {why}; restore state.json from a backup, or move it aside "
        f"(`mv {path} {path}.broken`) so kfinstall treats the cluster as never installed and `up` runs every phase"
    )


def _is_good(path: Path) -> bool:
    """True when `path` exists and holds a state kfinstall can read (so the fix may point at it)."""
    try:
        _parse(_read_bounded(path))
    except _Unreadable:
        return False
    return True


def _keep_previous(path: Path) -> None:
    """Copy the current state to state.json.prev, only when it is a good one: a damaged file must
    never replace the last good copy."""
    try:
        current = _read_bounded(path)
        _parse(current)
    except _Unreadable:
        return  # absent or damaged: keep whatever .prev holds
    write_file_atomically(previous_copy(path), current, 0o600)
