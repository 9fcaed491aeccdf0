"""One run at a time per cluster: an flock on <state>/lock, released when the process ends.

flock (not a PID file) so a crashed or killed run never leaves a stale lock behind. The lock file is
opened without following a link and must be a regular file: the holder's line is written into it, and
a `lock` planted as a link (to /etc/passwd, say) would have that file truncated; a FIFO would block.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from installer.errors import ConfigError, PreflightError


@contextmanager
def run_lock(state_dir: Path, action: str) -> Iterator[None]:
    path = state_dir / "lock"
    handle = _open_lock(state_dir, path)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown holder"
            raise PreflightError(
                f"another kfinstall run holds {path} ({holder}); wait for it to finish or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps({"pid": os.getpid(), "action": action, "since": time.strftime("%FT%TZ", time.gmtime())})
        )
        handle.flush()
        yield
    finally:
        handle.close()


def _open_lock(state_dir: Path, path: Path) -> TextIO:
    """The lock file for reading and writing: created 0644 if missing, never through a link (exit 2)."""
    fix = f"Fix: make {state_dir} a folder this user can write, or pass --state-dir"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path} is a symbolic link; kfinstall writes its lock file itself and never "
                              f"through a link. Fix: remove the link (`rm {path}`)") from None
        raise ConfigError(f"cannot write the lock file {path} ({exc.strerror}). {fix}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"{path} is not a regular file (a FIFO, device or socket). Fix: remove it (`rm {path}`)")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "r+", encoding="utf-8")
