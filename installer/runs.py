"""Run records under <state>/runs/<id>/: the resolved config (secrets redacted), events, summary.

A record is created before anything changes and kept whatever happens, so a failed or interrupted
run can be read afterwards (and attached to a support request).

Redaction happens before serialising: every string in the data is scrubbed of every secret, then
the clean data is written. Scrubbing the JSON text afterwards (as before) missed secrets JSON
escapes: one holding `"`, `\\`, a newline or a non-ASCII character is written escaped, not as
itself. Text from tools (Ansible's stdout, Pulumi's lines) may carry a secret in an encoded form,
so each secret is also scrubbed as JSON-escaped (ASCII and UTF-8, once and twice), Python repr,
YAML-quoted, whitespace-stripped and base64. Secrets of any length are scrubbed: a record never holds one,
and a very short secret makes records hard to read, which says the secret is weak.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from installer.config.resolved import REDACTED, ClusterConfig

FACTS_DIR = "facts"  # Ansible's per-run fact cache in the record (installer.phases.base.FACTS_CACHE)


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def secret_forms(value: str) -> set[str]:
    """The ways `value` can appear in text kfinstall keeps: as itself and as tools encode it."""
    escaped_ascii = json.dumps(value)[1:-1]
    escaped_utf8 = json.dumps(value, ensure_ascii=False)[1:-1]
    forms = {
        value,
        value.strip(),
        escaped_ascii,
        escaped_utf8,
        json.dumps(escaped_ascii)[1:-1],  # JSON inside JSON: an event's stdout field holding a result
        json.dumps(escaped_utf8, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        _yaml_double_quoted(value),
        value.replace("'", "''"),  # YAML single-quoted
        base64.b64encode(value.encode("utf-8")).decode("ascii"),
    }
    return {form for form in forms if form}


def _yaml_double_quoted(value: str) -> str:
    """How PyYAML writes `value` when it must escape it (non-ASCII as \\xE9 or \\u5BC6, newlines as \\n)."""
    text = yaml.safe_dump(value, default_style='"', width=1 << 30)
    return text[: text.rindex('"')][1:]


def redaction_table(secret_values: Iterable[str]) -> list[str]:
    """Every form of every secret, longest first so a prefix never leaves the rest of a longer one."""
    forms: set[str] = set()
    for value in secret_values:
        if value:
            forms |= secret_forms(value)
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secret_values: Iterable[str]) -> str:
    """Replace every secret value, in each of its encoded forms, in `text`."""
    return _scrub(text, redaction_table(secret_values))


def _scrub(text: str, table: list[str]) -> str:
    for form in table:
        text = text.replace(form, REDACTED)
    return text


def redact_data(data: Any, secret_values: Iterable[str]) -> Any:
    """A copy of `data` with every string value scrubbed (mapping keys are kfinstall's names: kept)."""
    return _walk(data, redaction_table(secret_values))


def _walk(data: Any, table: list[str]) -> Any:
    if isinstance(data, str):
        return _scrub(data, table)
    if isinstance(data, dict):
        return {key: _walk(value, table) for key, value in data.items()}
    if isinstance(data, (list, tuple, set, frozenset)):
        return [_walk(value, table) for value in data]
    return data


@dataclass
class RunRecord:
    """One run's folder. Everything written through it is redacted."""

    path: Path
    run_id: str
    secret_values: list[str]
    _table: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._table = redaction_table(self.secret_values)

    @classmethod
    def start(cls, cfg: ClusterConfig, action: str) -> RunRecord:
        run_id = new_run_id()
        path = cfg.state_dir / "runs" / run_id
        path.mkdir(parents=True, mode=0o700)
        # secrets.yml's values and the operator's TLS key (spec.networking.tls.keyFile), which Pulumi carries too
        from installer.applied import secret_values

        # cfg.secrets.values() adds what no key names: a rotation's pending and replaced values.
        held = [*secret_values(cfg).values(), *(cfg.secrets.values() if cfg.secrets is not None else [])]
        record = cls(path=path, run_id=run_id, secret_values=list(dict.fromkeys(v for v in held if v)))
        record.write_json("config.resolved.json", {"action": action, **cfg.redacted()})
        return record

    def clean(self, data: Any) -> Any:
        """`data` with every secret scrubbed, ready to serialise."""
        return _walk(data, self._table)

    def clean_text(self, text: str) -> str:
        return _scrub(text, self._table)

    def _dumps(self, data: Any, **options: Any) -> str:
        # Objects JSON cannot hold are written as their str(), scrubbed like any other string.
        return json.dumps(self.clean(data), default=lambda o: self.clean_text(str(o)), **options)

    def write_json(self, name: str, data: Any) -> Path:
        target = self.path / name
        target.write_text(self._dumps(data, indent=2), encoding="utf-8")
        return target

    def seal(self) -> None:
        """At the end of a run: cached host facts keep no environment and no secret.

        Ansible's fact cache (the record's facts/, one JSON file per host, shared by the run's
        playbooks) holds `ansible_env`: a host's whole environment, for a host reached with
        ansible_connection=local the environment kfinstall gave Ansible. It is dropped once no
        playbook of the run needs it, and every other value is scrubbed like the rest of the record.
        """
        for path in sorted((self.path / FACTS_DIR).rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                facts = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(facts, dict):
                facts.pop("ansible_env", None)
                path.write_text(self._dumps(facts), encoding="utf-8")

    def append_event(self, data: dict[str, Any]) -> None:
        with (self.path / "events.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(self._dumps(data) + "\n")
