"""SSH to lab machines with the lab key: readiness checks and the few commands VMs need after boot."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from installer.errors import PhaseFailed

SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3")
# Only `lab up` itself, on machines it has just made on its own bridge, before it has read their new
# keys (a re-created host has new keys); everyone else checks against the site's known_hosts.
_UNPINNED = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")


def ssh_argv(key: Path, address: str, command: str, known_hosts: Path | None = None) -> list[str]:
    """ssh as root with the lab key; with `known_hosts`, the host's key must be the one pinned there."""
    checking = _UNPINNED if known_hosts is None else (
        "-o", "StrictHostKeyChecking=yes", "-o", f'UserKnownHostsFile="{known_hosts}"'
    )
    return ["ssh", "-i", str(key), *checking, *SSH_OPTIONS, f"root@{address}", command]


def ssh_run(key: Path, address: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ssh_argv(key, address, command), capture_output=True, text=True, timeout=timeout, check=False
    )


def port_open(address: str, port: int = 22, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def login_works(key: Path, address: str) -> bool:
    try:
        return ssh_run(key, address, "true", timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def wait_for_ssh(key: Path, machines: dict[str, str], limit: float, poll: float = 0.2) -> None:
    """Wait until root can log in to every machine (name -> address); PhaseFailed names the laggards."""
    deadline = time.monotonic() + limit
    waiting = dict(machines)
    while waiting:
        for name, address in list(waiting.items()):
            if port_open(address) and login_works(key, address):
                del waiting[name]
        if not waiting:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{n} ({a})" for n, a in waiting.items())
            raise PhaseFailed(f"no SSH login after {limit:.0f} s on: {names}")
        time.sleep(poll)
