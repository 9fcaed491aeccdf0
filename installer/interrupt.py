"""Ctrl-C, SIGTERM or SIGHUP during a run: set a flag that ansible-runner polls, instead of dying.

Dying at once would leave the child ansible-playbook running as an orphan (it has its own session)
and release the lock, so a second run could start beside it. Instead the flag is set, the child's
process tree is stopped from ansible-runner's cancel callback and waited for (`stop_descendants`),
the run record is written, and the CLI exits 128 + the signal number, the shell's convention:
130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. The lock is released only after that. A re-run
converges (or an upgrade resumes).

Every other child started under the flag honours it too: short tools (the host-key check's ssh,
kubectl, the upgrade's render) through `run_child`, killed with their process group at a stop;
the Pulumi CLI, which cancels cleanly on its own, through `forward_stops_as_sigint`, waited for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from installer.errors import Interrupted, KfinstallError, PhaseFailed

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PROC = Path("/proc")


def exit_code_for(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number."""
    return 128 + signum


@contextmanager
def interrupt_sets(flag: threading.Event) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP set `flag`; an error raised inside after one of them exits 128 + the
    first signal (a cancelled step may fail in its own words, e.g. a cancelled backup playbook)."""
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        flag.set()

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    _ACTIVE.append((flag, received))
    try:
        yield
    except KfinstallError as exc:
        if received:
            exc.exit_code = exit_code_for(received[0])
        raise
    finally:
        _ACTIVE.remove((flag, received))
        for signum, before in previous.items():
            signal.signal(signum, before)


# The stop flag of the run in progress. Signal handlers are one per process, so the flag they set is
# too: a child started anywhere below `interrupt_sets` (the host-key check's ssh, kubectl, a render,
# the Pulumi CLI) honours it without every caller passing it down.
_ACTIVE: list[tuple[threading.Event, list[int]]] = []


def stop_requested() -> bool:
    """True once SIGINT, SIGTERM or SIGHUP arrived during the run in progress."""
    return any(flag.is_set() for flag, _ in _ACTIVE)


def stops_received() -> list[int]:
    """The stop signals the run in progress received, in order (a second one may mean "now")."""
    return [signum for _, received in _ACTIVE for signum in received]


CHILD_POLL_S = 0.1  # how often a child's wait looks at the stop flag


def pause(seconds: float) -> None:
    """time.sleep between polls of a slow thing (a demo job); a stop signal ends it with Interrupted."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if stop_requested():
            raise Interrupted("stopped while waiting")
        time.sleep(min(left, CHILD_POLL_S))
    if stop_requested():
        raise Interrupted("stopped while waiting")


def run_child(
    argv: list[str],
    *,
    timeout: float,
    input: str | None = None,  # subprocess.run's own name
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """subprocess.run(argv, capture_output=True, text=True) for a child started under the lock.

    The child gets a session of its own (a terminal's Ctrl-C reaches kfinstall only, which decides),
    and its wait looks at the stop flag every CHILD_POLL_S: on a stop, or at `timeout`, its whole
    process group is killed and waited for before this returns, so the lock is never released while
    it runs. Raises Interrupted on a stop, subprocess.TimeoutExpired at the timeout.
    """
    deadline = time.monotonic() + timeout
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    ) as child:
        pending = input
        while True:
            try:
                out, err = child.communicate(pending, timeout=CHILD_POLL_S)
            except subprocess.TimeoutExpired:
                pending = None  # sent with the first call; a retry must not send it again
                if stop_requested():
                    _end_group(child)
                    raise Interrupted(f"stopped while {Path(argv[0]).name} ran; it was stopped too") from None
                if time.monotonic() > deadline:
                    _end_group(child)
                    raise subprocess.TimeoutExpired(argv, timeout) from None
            else:
                return subprocess.CompletedProcess(argv, child.returncode, out, err)


def children_named(name: str) -> list[int]:
    """This process's living children whose command name (/proc/PID/comm) is `name`."""
    me = os.getpid()
    found = []
    for pid, (ppid, _, state) in _processes().items():
        if ppid == me and state != "Z":
            with suppress(OSError):
                if (PROC / str(pid) / "comm").read_text(encoding="utf-8", errors="replace").strip() == name:
                    found.append(pid)
    return found


FORWARD_GRACE_S = 1.0  # time for a child that got the stop itself to say it is cancelling


@contextmanager
def forward_stops_as_sigint(name: str, cancelling: Callable[[], bool]) -> Iterator[None]:
    """While inside, a SIGTERM or SIGHUP the run receives reaches the child `name` once, as SIGINT: for
    a child started in this process's group that cancels cleanly on its own (the Pulumi CLI finishes
    the operations in flight, saves its state and exits on its first SIGINT; a second one makes it stop
    at once, leaving pending operations), so it is never killed halfway and the caller still waits
    for it to exit.

    Never a second signal: when the stop reached the whole group (a terminal's Ctrl-C, `timeout`,
    systemd stopping a unit), the child got it too, and ours would be its "stop at once". So SIGINT is
    not forwarded at all, and a TERM or HUP only after FORWARD_GRACE_S, unless `cancelling()` says the
    child already announced a cancel of its own (newer Pulumi CLIs cancel on SIGTERM too)."""
    done = threading.Event()

    def forward() -> None:
        while not done.wait(CHILD_POLL_S):
            if any(s != signal.SIGINT for s in stops_received()):
                if not done.wait(FORWARD_GRACE_S) and not cancelling():
                    _signal_all(children_named(name), signal.SIGINT)
                return

    watcher = threading.Thread(target=forward, name=f"forward-stops-to-{name}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _end_group(child: subprocess.Popen[str]) -> None:
    """Kill the child's process group (it leads its own session) and wait until none of it runs."""
    Stopped(pids={child.pid}, groups={child.pid}).kill()
    child.wait()
    # Reaped now: from here on only the group counts (its living members keep its id from reuse).
    left = Stopped(groups={child.pid}).wait()
    if left:
        raise PhaseFailed(f"processes {sorted(left)} of {child.args!r} did not stop; stop them before a re-run")


# Stopping the child's whole process tree ------------------------------------------------------
# ansible-runner starts ansible-playbook in a session of its own and, on cancel, SIGKILLs that
# process group and reaps ansible-playbook alone. That is not the whole run: Ansible's workers
# each call setsid(), so they and their ssh children are in groups of their own, survive the kill
# and run on as orphans. So, before ansible-runner's kill, every process below this one is frozen
# (SIGSTOP: no new fork escapes the list), listed and killed, and the run is over for this process
# only when none of them is alive. Read from /proc (Linux, the only controller kfinstall supports).


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


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process this one can see."""
    try:
        entries = list(PROC.iterdir())
    except OSError:
        return {}
    found = {}
    for entry in entries:
        if entry.name.isdigit() and (stat := _stat(entry)) is not None:
            found[int(entry.name)] = stat
    return found


def descendants(root: int) -> set[int]:
    """Every living process below `root` (children, their children, ...)."""
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if pid not in found and table[pid][2] != "Z":
            found.add(pid)
            stack += children.get(pid, [])
    return found


def _signal_all(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


@dataclass
class Stopped:
    """The processes stopped below this one, and their process groups (this process's own left out)."""

    pids: set[int] = field(default_factory=set)
    groups: set[int] = field(default_factory=set)

    def alive(self) -> set[int]:
        """Those still running (a zombie is dead), a member of their groups included."""
        return {
            pid
            for pid, (_, group, state) in _processes().items()
            if state != "Z" and (pid in self.pids or group in self.groups)
        }

    def kill(self) -> None:
        _signal_all(self.pids, signal.SIGKILL)
        for group in self.groups:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    def wait(self, timeout_s: float = 30.0) -> set[int]:
        """Kill again until none runs; returns what still ran after `timeout_s` (normally nothing)."""
        deadline = time.monotonic() + timeout_s
        while live := self.alive():
            if time.monotonic() > deadline:
                return live
            self.kill()
            time.sleep(0.05)
        return set()


def stop_descendants(passes: int = 5) -> Stopped:
    """Freeze every process below this one (re-listing until no new one appears), then kill them all."""
    me, stopped = os.getpid(), Stopped()
    for _ in range(passes):
        new = descendants(me) - stopped.pids
        if not new:
            break
        _signal_all(new, signal.SIGSTOP)
        stopped.pids |= new
    own_group = os.getpgid(0)
    for pid in stopped.pids:
        with suppress(ProcessLookupError, PermissionError):
            stopped.groups.add(os.getpgid(pid))
    stopped.groups.discard(own_group)
    stopped.kill()
    return stopped
