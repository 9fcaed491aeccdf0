"""Ctrl-C, SIGTERM or SIGHUP during a run: set a flag that ansible-runner polls, instead of dying.

Dying at once would leave the child ansible-playbook running as an orphan (it has its own session)
and release the lock, so a second run could start beside it. Instead the flag is set, the child's
process group is stopped by ansible-runner's cancel callback and waited for (`wait_for_groups`),
the run record is written, and the CLI exits 128 + the signal number, the shell's convention:
130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. The lock is released only after that. A re-run
converges (or an upgrade resumes).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from installer.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PROC = Path("/proc")


def exit_code_for(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + signum


@contextmanager
def interrupt_sets(flag: threading.Event) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP set `flag`; an Interrupted raised inside exits 128 + the first signal."""
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        flag.set()

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    except Interrupted as exc:
        if received:
            exc.exit_code = exit_code_for(received[0])
        raise
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


# The child's process group ---------------------------------------------------------------------
# ansible-runner starts ansible-playbook in a session of its own (pexpect: the child's pid is its
# process group) and on cancel sends SIGKILL to that group, then reaps the child alone. Its workers
# and ssh processes are in the same group; the run is over for this process only when none of them
# is alive. Read from /proc (Linux, the only controller kfinstall supports).


def _stat(pid_dir: Path) -> tuple[int, int, str] | None:
    """(parent pid, process group, state) of one /proc entry; None when it vanished or is unreadable."""
    try:
        text = (pid_dir / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses; split after the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[2]), fields[0]
    except (IndexError, ValueError):
        return None


def _processes() -> Iterator[tuple[int, int, int, str]]:
    """(pid, parent pid, process group, state) of every process this one can see."""
    try:
        entries = list(PROC.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.isdigit():
            found = _stat(entry)
            if found is not None:
                yield (int(entry.name), *found)


def child_groups() -> set[int]:
    """Process groups led by this process's children (ansible-runner's ansible-playbook is one)."""
    me = os.getpid()
    return {pgrp for pid, ppid, pgrp, _ in _processes() if ppid == me and pgrp == pid}


def live_members(groups: Iterable[int]) -> set[int]:
    """Pids still running (zombies are dead) in any of `groups`."""
    wanted = set(groups)
    return {pid for pid, _, pgrp, state in _processes() if pgrp in wanted and state != "Z"}


def wait_for_groups(groups: Iterable[int], timeout_s: float = 30.0) -> set[int]:
    """Kill and wait until no process of `groups` runs; returns what still ran after `timeout_s`."""
    groups = set(groups)
    deadline = time.monotonic() + timeout_s
    while live := live_members(groups):
        if time.monotonic() > deadline:
            return live
        for group in groups:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        time.sleep(0.05)
    return set()
