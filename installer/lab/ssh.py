"""SSH to lab machines with the lab key: readiness checks and the few commands VMs need after boot."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from installer.errors import PhaseFailed

SSH_OPTIONS = (
    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3",
)


def ssh_argv(key: Path, address: str, command: str) -> list[str]:
    return ["ssh", "-i", str(key), *SSH_OPTIONS, f"root@{address}", command]


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
