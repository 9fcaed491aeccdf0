"""kfinstall's own log: Python logging under the "kfinstall" logger, to stderr and into each run record.

`-v/-vv/-vvv` (the group option) set how much reaches stderr: warnings only by default, then what
kfinstall does (phases, playbooks, skipped steps) and Ansible's own output lines, then details.
The same count reaches Ansible (ansible-runner's verbosity). During a run, every message is scrubbed
of the run's secrets (RunRecord.clean_text) before any handler writes it, and the run record's
`kfinstall.log` (0600) keeps the run's messages whatever the verbosity on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from installer.runs import RunRecord

LOG = logging.getLogger("kfinstall")
RECORD_LOG = "kfinstall.log"  # in STATE/runs/<id>/
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def stderr_level(verbosity: int) -> int:
    """-v shows what kfinstall does and Ansible's output; -vv and more add the details."""
    return logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG


class _StderrHandler(logging.StreamHandler):
    """Writes to the sys.stderr of the moment (click's test runner and pytest replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(verbosity: int) -> None:
    """Once per process, from the CLI group: kfinstall's messages to stderr at the asked level."""
    for handler in [h for h in LOG.handlers if isinstance(h, _StderrHandler)]:
        LOG.removeHandler(handler)
    handler = _StderrHandler()
    handler.setLevel(stderr_level(verbosity))
    handler.setFormatter(logging.Formatter("kfinstall: %(levelname)s: %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.DEBUG)
    LOG.propagate = False  # not through the root logger: libraries' settings do not print it twice


class _Redacting(logging.Filter):
    """Formats the message once and scrubs the run's secrets from it (args included)."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__()
        self.record = record

    def filter(self, entry: logging.LogRecord) -> bool:
        entry.msg, entry.args = self.record.clean_text(entry.getMessage()), None
        return True


@contextmanager
def run_log(record: RunRecord, verbosity: int) -> Iterator[None]:
    """During a run: the run record's kfinstall.log, and secrets scrubbed on every handler."""
    path = record.path / RECORD_LOG
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600))
    to_record = logging.FileHandler(path, encoding="utf-8")
    to_record.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    to_record.setFormatter(logging.Formatter(FORMAT))
    LOG.addHandler(to_record)
    if LOG.level == logging.NOTSET or LOG.level > logging.DEBUG:
        LOG.setLevel(logging.DEBUG)
    redacting = _Redacting(record)
    handlers = list(LOG.handlers)
    for handler in handlers:
        handler.addFilter(redacting)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(redacting)
        LOG.removeHandler(to_record)
        to_record.close()
