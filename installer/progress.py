"""Live progress of an Ansible run: per host the current task, ok/changed/failed counts, elapsed.

On a terminal it is a rich Live table; otherwise (CI logs, pipes) one line per task start and
one per failure, so logs stay readable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table


@dataclass
class _HostLine:
    task: str = ""
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    started: float = field(default_factory=time.monotonic)


class HostProgress:
    """An event sink for installer.adapters.ansible; use as a context manager around the run."""

    def __init__(self, console: Console, title: str) -> None:
        self.console, self.title = console, title
        self.hosts: dict[str, _HostLine] = {}
        self.live: Live | None = None
        self._last_task = ""

    def __enter__(self) -> HostProgress:
        if self.console.is_terminal:
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.__exit__(None, None, None)

    def __call__(self, event: dict[str, Any]) -> None:
        kind, host, task = event["event"], event.get("host"), event.get("task") or ""
        if kind == "playbook_on_task_start" and not self.live and task != self._last_task:
            self._last_task = task
            self.console.print(f"[{self.title}] {task}", markup=False, highlight=False)
        if host:
            self._update(self.hosts.setdefault(host, _HostLine()), kind, task, event)
        if self.live is not None:
            self.live.update(self._table())

    def _update(self, line: _HostLine, kind: str, task: str, event: dict[str, Any]) -> None:
        line.task = task or line.task
        if kind == "runner_on_ok":
            line.ok += 1
            line.changed += int(event.get("changed", False))
        elif kind == "runner_on_failed":
            line.failed += 1
            if not self.live:
                self.console.print(f"[{self.title}] FAILED on {event.get('host')}: {task}", markup=False)
        elif kind == "runner_on_unreachable":
            line.unreachable += 1

    def _table(self) -> Table:
        table = Table(title=self.title)
        for column in ("host", "task", "ok", "changed", "failed", "unreachable", "elapsed"):
            table.add_column(column)
        for name, line in sorted(self.hosts.items()):
            table.add_row(
                name,
                line.task[:60],
                str(line.ok),
                str(line.changed),
                str(line.failed),
                str(line.unreachable),
                f"{time.monotonic() - line.started:.0f}s",
            )
        return table
