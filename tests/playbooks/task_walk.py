"""Walking Ansible task files in tests (no tests here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def walk_tasks(node: Any) -> Iterator[dict[str, Any]]:
    """Every task (and handler) of a parsed task file, those inside blocks included."""
    for task in node if isinstance(node, list) else []:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from walk_tasks(task.get(key))
