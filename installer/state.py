"""state.json under the state dir: installed channel, phases done, last run, upgrade history.

Only this module and the run record write under the state dir. Writes are atomic (temp file +
rename) so an interrupted run never leaves a half-written state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

STATE_FILE = "state.json"


class HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: str
    action: str
    from_channel: str | None = None
    to_channel: str | None = None
    run_id: str | None = None
    result: str
    # Upgrade hops (installer.upgrade.run): which hop, and Kubernetes before and after it.
    hop: str | None = None
    kubernetes_from: str | None = None
    kubernetes_to: str | None = None


class UpgradeProgress(BaseModel):
    """An upgrade that started and has not finished: a re-run plans from the installed versions
    (updated after every completed hop) and so resumes with the hops still missing."""

    model_config = ConfigDict(extra="forbid")
    target_channel: str
    target_kubernetes: str | None = None
    run_id: str
    started_at: str
    hops_done: list[str] = Field(default_factory=list)


class State(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cluster: str
    installed_channel: str | None = None
    kubernetes_version: str | None = None
    phases_done: list[str] = Field(default_factory=list)
    last_run_id: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    upgrade: UpgradeProgress | None = None


def read_state(state_dir: Path) -> State | None:
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    return State.model_validate(json.loads(path.read_text(encoding="utf-8")))


def write_state(state_dir: Path, state: State) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = state.model_dump(mode="json")
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".state-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, state_dir / STATE_FILE)
