"""Subprocess helpers: argv lists only (never a shell), failures turned into kfinstall errors."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from installer.errors import PhaseFailed

# How much of a failing command's stderr goes into the error message: enough to see the cause.
_STDERR_TAIL_CHARS = 2000


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    input_text: str | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout: float | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output; raise PhaseFailed when `check` and it fails.

    With `log`, stdout and stderr are appended to that file instead of being kept in memory,
    for long, chatty steps (debootstrap, apt) whose output only matters when they fail.
    """
    args = [str(a) for a in argv]
    if log is None:
        proc = subprocess.run(
            args, input=input_text, capture_output=True, text=True, env=env, timeout=timeout,
            cwd=cwd, check=False,
        )
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as sink:
            sink.write(f"$ {' '.join(args)}\n")
            sink.flush()
            proc = subprocess.run(
                args, input=input_text, stdout=sink, stderr=subprocess.STDOUT, text=True,
                env=env, timeout=timeout, cwd=cwd, check=False,
            )
    if check and proc.returncode != 0:
        raise PhaseFailed(_failure_message(args, proc, log))
    return proc


def succeeds(argv: Sequence[str | Path], timeout: float | None = None) -> bool:
    """True when the command exits 0 (its output is discarded)."""
    try:
        return run(argv, check=False, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def output(argv: Sequence[str | Path]) -> str:
    """The stdout of a command that must succeed, stripped."""
    return run(argv).stdout.strip()


def _failure_message(args: list[str], proc: subprocess.CompletedProcess[str], log: Path | None) -> str:
    head = f"command failed (exit {proc.returncode}): {' '.join(args)}"
    if log is not None:
        tail = log.read_text(errors="replace")[-_STDERR_TAIL_CHARS:]
        return f"{head}\n{tail.rstrip()}\n(full log: {log})"
    detail = (proc.stderr or proc.stdout or "").strip()[-_STDERR_TAIL_CHARS:]
    return f"{head}\n{detail}" if detail else head
