"""Run records under <state>/runs/<id>/: the resolved config (secrets redacted), events, summary.

A record is created before anything changes and kept whatever happens, so a failed or interrupted
run can be read afterwards (and attached to a support request).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installer.config.resolved import REDACTED, ClusterConfig


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def redact(text: str, secret_values: list[str]) -> str:
    """Replace every secret value in `text`; the longest first so prefixes cannot leak parts."""
    for value in sorted(secret_values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


@dataclass
class RunRecord:
    """One run's folder. Everything written through it is redacted."""

    path: Path
    run_id: str
    secret_values: list[str]

    @classmethod
    def start(cls, cfg: ClusterConfig, action: str) -> RunRecord:
        run_id = new_run_id()
        path = cfg.state_dir / "runs" / run_id
        path.mkdir(parents=True, mode=0o700)
        record = cls(path=path, run_id=run_id, secret_values=cfg.secrets.values() if cfg.secrets else [])
        record.write_json("config.resolved.json", {"action": action, **cfg.redacted()})
        return record

    def write_json(self, name: str, data: Any) -> Path:
        target = self.path / name
        target.write_text(redact(json.dumps(data, indent=2, default=str), self.secret_values), encoding="utf-8")
        return target

    def append_event(self, data: dict[str, Any]) -> None:
        with (self.path / "events.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(redact(json.dumps(data, default=str), self.secret_values) + "\n")
