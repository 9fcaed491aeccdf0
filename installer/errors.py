"""The exception hierarchy every layer raises; only the CLI turns these into exit codes.

Exit codes: 0 ok, 2 bad input, 3 preflight refused, 4 a phase failed, 128 + the signal when stopped
(130 Ctrl-C, 143 SIGTERM, 129 SIGHUP: installer.interrupt).
"""

from __future__ import annotations

from typing import Any


class KfinstallError(Exception):
    """Base class: a message for the operator and the exit code the CLI returns."""

    exit_code = 1
    # The run's report so far, set by `run_up` on the way out: `up --output json` prints it on failure too.
    report: Any = None
    # The failed phase's own result (per-host counts, failures), for errors that have one (PhaseFailed).
    phase: Any = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(KfinstallError):
    """The inventory, kfinstall.yaml, secrets.yml or a --set value is wrong (nothing was touched)."""

    exit_code = 2


class PreflightError(KfinstallError):
    """A check before any change refused to go on (missing tool, unreachable host, refused route)."""

    exit_code = 3


class PhaseFailed(KfinstallError):
    """A phase started changing things and failed; the run record says where.

    `phase` is the failed phase's result (per-host counts, failures) when the phase has one, so the
    run's summary reports them like a successful phase's.
    """

    exit_code = 4

    def __init__(self, message: str, phase: Any = None) -> None:
        super().__init__(message)
        self.phase = phase  # see KfinstallError.phase


class Interrupted(KfinstallError):
    """The run was stopped (Ctrl-C, SIGTERM, SIGHUP); the run record is kept and a re-run converges.

    130 by default; installer.interrupt sets 128 + the signal that stopped the run (143, 129).
    """

    exit_code = 130

