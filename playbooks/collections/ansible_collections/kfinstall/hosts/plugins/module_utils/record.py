# Copyright: kfinstall authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kfinstall's record of what it wrote on a host, as both of its modules read, check and save it.

kfinstall.hosts.files adds to the record; kfinstall.hosts.reset_files undoes what it lists. One bounded
reader and one trust check for both, so the writer never builds on a record the reset would refuse.
Each module says in its own words what a refusal means for its run (nothing written, nothing removed).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile

RECORD_VERSION = 1
ORIGINALS = "originals"  # beside the record: what a file held before kfinstall first replaced it
MAX_RECORD_BYTES = 16 * 1024 * 1024  # a real record is a few KiB; a bigger one is not kfinstall's


class RecordError(Exception):
    """The record cannot be used; the message names the record and why."""


def location_problem(path: str) -> str | None:
    """Why the record, its folder or originals/ at `path` cannot be trusted (None when it is missing or fine):
    a link, not a regular file or folder (a FIFO would block the read for ever), not root's when running as
    root, or writable by group or others. Whoever can write it could make reset delete or overwrite any file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        return "is not a regular file or folder"
    if os.geteuid() == 0 and info.st_uid != 0:
        return f"is owned by uid {info.st_uid}, not root"
    if info.st_mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def read_record(path: str) -> dict | None:
    """The record at `path`, None when there is none; RecordError when it is too big, unreadable or not a
    record of files (read at most MAX_RECORD_BYTES + 1 bytes, never the whole of a huge file)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(f"kfinstall's record {path} cannot be read ({exc})") from exc
    if len(text) > MAX_RECORD_BYTES:
        raise RecordError(f"kfinstall's record {path} is over {MAX_RECORD_BYTES // 2**20} MiB, so it is not one "
                          "kfinstall wrote")
    try:
        record = json.loads(text.decode("utf-8"))
    except ValueError as exc:
        raise RecordError(f"kfinstall's record {path} cannot be read ({exc})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict) or not isinstance(record.get("dirs"), dict):
        raise RecordError(f"kfinstall's record {path} is not a record of files")
    return record


def save_record(path: str, record: dict) -> None:
    """Replace the record atomically, mode 0600, in a folder of mode 0700 made when missing."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=".record.", dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    os.chmod(staged, 0o600)
    os.replace(staged, path)
