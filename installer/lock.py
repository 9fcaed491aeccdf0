"""One run at a time per cluster: an flock on <state>/lock, released when the process ends.

flock (not a PID file) so a crashed or killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from installer.errors import PreflightError


@contextmanager
def run_lock(state_dir: Path, action: str) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "lock"
    handle = path.open("a+", encoding="utf-8")
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
