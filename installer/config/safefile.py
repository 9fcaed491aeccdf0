"""The one way kfinstall reads a file an operator gave it: bounded, regular files only, strict UTF-8.

Operator files (kfinstall.yaml, hosts.yml, group_vars/ and host_vars/, secrets.yml) are hostile input.
A FIFO or a device named kfinstall.yaml must not block or stream forever, a file of tens of MB must
be refused before it is parsed, and a file in another encoding must say so instead of failing deep in
a parser. Every refusal is a problem naming the file, with a fix; file content is never echoed.

Checks, in order: the path exists; it is not under /proc, /sys or /dev (kernel files look regular but
hold process data or never end); `stat` says it is a regular file (checked before opening, so a FIFO is
never opened); its size is within the caller's cap; the opened descriptor is still a regular file
(O_NONBLOCK, so a FIFO swapped in after the stat does not block either); at most cap + 1 bytes are read.
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path

from installer.config.problems import Problems

KERNEL_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))
KIB = 1024
MIB = 1024 * KIB

# Byte-order marks of encodings an editor may save in; YAML tools here read UTF-8 only.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def kernel_filesystem(path: Path) -> Path | None:
    """/proc, /sys or /dev when `path` (symlinks resolved) lies in one of them, else None."""
    resolved = Path(os.path.realpath(path))  # realpath: a symlink loop is not an exception here
    return next((root for root in KERNEL_FILESYSTEMS if resolved == root or root in resolved.parents), None)


def _kind(mode: int) -> str:
    kinds = {stat.S_ISREG: "a regular file", stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO (named pipe)",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def size_text(size: int) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{size / KIB:.0f} KiB" if size >= KIB else f"{size} bytes"


def read_bytes(path: Path, display: str, problems: Problems, max_bytes: int) -> bytes | None:
    """The content of `path`, or None with a problem recorded. FileNotFoundError is left to the caller
    (whether a missing file is an error depends on the file)."""
    info = os.stat(path)  # raises FileNotFoundError for the caller
    root = kernel_filesystem(path)
    if root is not None:
        problems.error(display, "", f"{path} is under {root}, which holds kernel and process data, not operator files",
                       f"point at a regular file of yours, not at {root}")
        return None
    if not stat.S_ISREG(info.st_mode):
        problems.error(display, "", f"{path} is {_kind(info.st_mode)}, not a regular file",
                       "replace it with a regular file (kfinstall does not read pipes, devices or folders)")
        return None
    if info.st_size > max_bytes:
        _too_big(path, display, problems, f"is {size_text(info.st_size)}", max_bytes)
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # swapped after the stat above
            problems.error(display, "", f"{path} is {_kind(mode)}, not a regular file",
                           "replace it with a regular file")
            return None
        data = _read_at_most(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew after the stat
        _too_big(path, display, problems, f"has grown past {size_text(max_bytes)}", max_bytes)
        return None
    return data


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks, total = [], 0
    while total < limit:
        chunk = os.read(fd, min(limit - total, 256 * KIB))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _too_big(path: Path, display: str, problems: Problems, size: str, max_bytes: int) -> None:
    problems.error(display, "", f"{path} {size}; kfinstall reads at most {size_text(max_bytes)}",
                   "check that this is the right file (it is far larger than any real site needs)")


def decode_text(data: bytes, display: str, problems: Problems) -> str | None:
    """Strict UTF-8 (a UTF-8 byte-order mark is dropped); other encodings are refused with the fix.
    Not for secrets.yml, which installer.config.secrets reads itself (this names the offending byte)."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            problems.error(display, "", f"the file is saved as {name}; kfinstall reads UTF-8 only",
                           f"save it as UTF-8, e.g. iconv -f {name} -t UTF-8 FILE > FILE.new && mv FILE.new FILE")
            return None
    if b"\x00" in data:
        line, column = _position(data, data.index(b"\x00"))
        problems.error(display, "", "the file holds NUL bytes (UTF-16 without a byte-order mark, or not text)",
                       "save it as UTF-8 text", line=line, column=column)
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        problems.error(display, "", f"the file is not UTF-8 (byte 0x{data[exc.start]:02x})",
                       "save it as UTF-8, e.g. iconv -f LATIN1 -t UTF-8 FILE > FILE.new && mv FILE.new FILE",
                       line=line, column=column)
        return None


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in bytes) of `offset`."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def read_text(path: Path, display: str, problems: Problems, max_bytes: int) -> str | None:
    """read_bytes then decode_text; PermissionError and other OS errors become problems too."""
    try:
        data = read_bytes(path, display, problems, max_bytes)
    except FileNotFoundError:
        raise
    except OSError as exc:
        problems.error(display, "", f"cannot read {path} ({exc.strerror or exc.__class__.__name__})",
                       f"check that {path} is a file readable by this user")
        return None
    return None if data is None else decode_text(data, display, problems)


def read_text_or_report(path: Path, display: str, problems: Problems, max_bytes: int,
                        missing_fix: str | None) -> str | None:
    """read_text, with a missing file a problem too ("file not found", fixed by `missing_fix`); with
    `missing_fix` None the file is optional and its absence is no problem. None when there is no text."""
    try:
        return read_text(path, display, problems, max_bytes)
    except FileNotFoundError:
        if missing_fix is not None:
            problems.error(display, "", "file not found", missing_fix)
        return None


def state_dir_problem(path: Path) -> str | None:
    """Why `path` cannot be a state dir (None when it can): kfinstall creates folders and writes state,
    locks and secrets-encrypted Pulumi state there, so it must be an ordinary folder or not exist yet."""
    root = kernel_filesystem(path)
    if root is not None:
        return f"{path} is under {root}, which holds kernel and process data; choose a folder of yours"
    probe = path
    while True:
        try:
            mode = os.stat(probe).st_mode
        except (FileNotFoundError, NotADirectoryError):  # look at the nearest existing parent
            if probe.parent == probe:
                return None
            probe = probe.parent
            continue
        except OSError as exc:
            return f"cannot inspect {probe} ({exc.strerror or exc.__class__.__name__})"
        if stat.S_ISDIR(mode):
            return None
        what = "it" if probe == path else f"its parent {probe}"
        return f"{path}: {what} is {_kind(mode)}, not a folder"
