"""Ctrl-C during a run: set a flag that ansible-runner polls, instead of killing the process.

The child ansible-playbook is then stopped by ansible-runner's cancel callback, the run record
is written, and the CLI exits 130; a re-run converges (or an upgrade resumes).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def interrupt_sets(flag: threading.Event) -> Iterator[None]:
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: flag.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
