"""The last applied record: what `up` applied, so that `plan` can diff against it (STATE/applied.json).

Two parts, each written only after its phase succeeded, so a failed run never pretends:
  hosts     the resolved settings, versions and the hosts of every role, after the host phase;
  platform  the settings, versions, the platform's input fingerprint and every rendered object and
            Helm release (installer.render under Pulumi's mock engine), after the platform phase.

Secrets never enter the record: a secret value is kept as `<secret:H>`, H an HMAC-SHA256 of the value
under a random key in STATE/applied.key (0600). A keyed hash, not a plain one, because a plain hash
of a short operator password (LDAP bind, Grafana admin) can be guessed offline by anyone who sees
the record (a copied state dir, a bug report); without the key a hash tells nothing. It still shows
that a secret changed, which is all `plan` says about it. Files are 0600 and written atomically;
only this module writes them (installer.state and installer.runs own the rest of the state dir).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from installer.config.inventory import ROLE_GROUPS
from installer.config.resolved import ClusterConfig
from installer.config.secrets import KNOWN_KEYS
from installer.errors import ConfigError
from installer.owned import write_file_atomically

APPLIED_FILE = "applied.json"
KEY_FILE = "applied.key"
RENDER_CACHE_FILE = "plan-render.json"  # plan's last platform evaluation, by input fingerprint
FORMAT = 1
PARTS = ("hosts", "platform")
# installer modules whose code shapes the rendered platform besides stacks/ (their bytes enter the fingerprint).
PROGRAM_MODULES = ("catalogue.py", "render.py", "serving.py", "versions.py", "adapters/kube.py")
# A record holds a few thousand objects at most (~2 MB); the bound keeps a damaged file cheap.
MAX_RECORD_BYTES = 64 << 20
# Nesting bound of a record read back: plan's diff walks values recursively, and a forged file nested
# ~1,000 deep would hit Python's recursion limit there. kfinstall writes depth ~20 (configs stop at 64).
MAX_RECORD_DEPTH = 200
SECRET_MARK = re.compile(r"<secret:[0-9a-f]{32}>|<secret:unknown>")
UNKNOWN_SECRET = "<secret:unknown>"  # noqa: S105 - a placeholder: the site has no secrets.yml
VOLUME_CLASSES_OUTPUT = "volume_classes"  # stacks.storage.VOLUME_CLASSES_OUTPUT (tests hold them together)


# ---- writing ---------------------------------------------------------------------------------


def record_apply(cfg: ClusterConfig, phases: Iterable[str] = PARTS, *, run_id: str | None = None,
                 limit: Collection[str] = ()) -> Path:
    """Record the parts of `cfg` that the named phases applied ("hosts", "platform"); keep the others.

    Called by `up` after each phase that succeeded. Returns the record's path. With `limit` (`up --limit`)
    only those hosts' roles are recorded anew; the other hosts, and the settings and versions they were
    last given, stay as recorded, so `plan` still shows what a full run would change on them.
    """
    wanted = list(phases)
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown record part(s) {unknown}; expected some of {PARTS}")
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    record = read_applied(cfg.state_dir) or {}
    if record.get("cluster") != cfg.name:
        record = {}
    hasher = SecretHasher(_key(cfg.state_dir, create=True))
    record.update({"format": FORMAT, "cluster": cfg.name})
    for part in wanted:
        header = {"recordedAt": time.strftime("%FT%TZ", time.gmtime()), "runId": run_id,
                  "settings": settings_of(cfg, hasher), "versions": versions_of(cfg)}
        if part == "hosts" and limit and record.get("hosts"):
            record["hosts"] = {**record["hosts"], "runId": run_id,
                               "roles": _limited_roles(record["hosts"].get("roles") or {}, cfg, set(limit))}
        elif part == "hosts":
            record["hosts"] = {**header, "roles": roles_of(cfg)}
        else:
            previous = (record.get("platform") or {}).get("outputs")
            outputs = installed_outputs(cfg, previous)
            record["platform"] = {**header, "fingerprint": platform_fingerprint(cfg, hasher, outputs),
                                  "outputs": outputs, "objects": rendered_objects(cfg, hasher, outputs)}
    path = cfg.state_dir / APPLIED_FILE
    write_file_atomically(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode("utf-8"), 0o600)
    return path


def _key(state_dir: Path, *, create: bool) -> bytes | None:
    """The HMAC key; created (0600, from the first byte) on the first record. None when absent."""
    path = state_dir / KEY_FILE
    if not os.path.lexists(path):
        if not create:
            return None
        write_file_atomically(path, secrets.token_hex(32).encode("ascii") + b"\n", 0o600)
    data = _read_bounded(path, 1024).strip()
    if len(data) != 64:
        raise ConfigError(f"{path}: not a key kfinstall wrote. Fix: move it aside (`mv {path} {path}.broken`); "
                          "the next `kfinstall up` writes a new key and record")
    return data


class SecretHasher:
    """`<secret:H>` for a secret value: equal values give equal marks, and the mark reveals nothing."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key

    def mark(self, value: str) -> str:
        if self._key is None:
            return UNKNOWN_SECRET
        digest = hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
        return f"<secret:{digest}>"


def secret_values(cfg: ClusterConfig) -> dict[str, str]:
    """Secret key -> value: secrets.yml and the operator's TLS key (None entries dropped)."""
    values = {key: value.get_secret_value() for key, value in (cfg.secrets.__dict__ if cfg.secrets else {}).items()}
    if cfg.tls_material is not None:
        values["tlsKey"] = cfg.tls_material.key_pem.get_secret_value()
    return values


def settings_of(cfg: ClusterConfig, hasher: SecretHasher) -> dict[str, Any]:
    """The resolved configuration as dotted key -> value; secrets as their marks, never values."""
    flat: dict[str, Any] = {}
    _flatten("", cfg.cluster.model_dump(by_alias=True, mode="json"), flat)
    flat["kubernetesVersion"] = cfg.kubernetes_version
    for key, value in sorted(secret_values(cfg).items()):
        flat[f"secrets.{key}"] = hasher.mark(value) if value else ""
    return _masked(flat, _mark_table(cfg, hasher))


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Mappings become dotted keys; lists stay whole values (a list in kfinstall.yaml replaces, never merges)."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


def versions_of(cfg: ClusterConfig) -> dict[str, Any]:
    release = cfg.release
    return {"channel": release.channel, "kubernetes": cfg.kubernetes_version,
            "charts": {name: pin.version for name, pin in sorted(release.charts.items())},
            "images": {name: pin.ref for name, pin in sorted(release.images.items())}}


def forget_host_part(cfg: ClusterConfig) -> None:
    """After `kfinstall reset` of every host: the hosts part goes (nothing of what it records is left), so
    `plan` and `up --limit` see a site whose hosts were never converged."""
    record = read_applied(cfg.state_dir)
    if not record or "hosts" not in record or record.get("cluster") != cfg.name:
        return
    del record["hosts"]
    path = cfg.state_dir / APPLIED_FILE
    write_file_atomically(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode("utf-8"), 0o600)


def roles_of(cfg: ClusterConfig) -> dict[str, list[str]]:
    return {role: list(cfg.inventory.names(role)) for role in ROLE_GROUPS}


def _limited_roles(recorded: Mapping[str, Any], cfg: ClusterConfig, limit: set[str]) -> dict[str, list[str]]:
    """The recorded hosts per role, with the limited hosts' roles as they are now."""
    current = roles_of(cfg)
    return {role: [h for h in recorded.get(role) or [] if h not in limit]
            + [h for h in current[role] if h in limit] for role in ROLE_GROUPS}


def installed_outputs(cfg: ClusterConfig, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stack outputs the program reads back on the next run (stacks.program's `installed`):
    the volume classes, kept from the previous record as Pulumi keeps them in the stack."""
    from stacks.base import ComponentArgs
    from stacks.storage import volume_classes

    return {VOLUME_CLASSES_OUTPUT: volume_classes(ComponentArgs(cfg=cfg), previous or None)}


def rendered_objects(cfg: ClusterConfig, hasher: SecretHasher,
                     installed: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Every Kubernetes object, Helm release and cloud resource the platform program declares, by id,
    as `render` shows them but with every secret (Secret data included) replaced by its mark."""
    from installer import render

    table = _mark_table(cfg, hasher, () if cfg.secrets is not None else [f"<{key}>" for key in KNOWN_KEYS])
    objects: dict[str, dict[str, Any]] = {}
    for rec in render.evaluate(cfg, dict(installed) if installed else None):
        if rec.is_kubernetes_object:
            body = render.plain(rec.inputs)
            if body.get("kind") == "Secret":  # without secrets.yml its data are placeholders: unknown
                body = _marked_secret_object(body, hasher if cfg.secrets is not None else SecretHasher(None))
            meta = body.get("metadata") or {}
            ident = f"{body.get('kind')}/{meta.get('namespace') or '-'}/{meta.get('name') or rec.name}"
        elif rec.typ == render.HELM_RELEASE:
            body = render.helm_document(rec, [])
            ident = f"HelmRelease/{body.get('namespace') or '-'}/{body['release']}"
        elif rec.is_cloud:
            body = {"type": rec.typ, "name": rec.name, "inputs": render.plain(rec.inputs)}
            ident = f"{rec.typ}/-/{rec.name}"
        else:
            continue
        objects[ident] = {"component": rec.component, "body": _masked(body, table)}
    return objects


def _marked_secret_object(body: dict[str, Any], hasher: SecretHasher) -> dict[str, Any]:
    """A Secret's data and stringData values, each as a whole, become marks (data is base64 of anything)."""
    out = dict(body)
    for field in ("data", "stringData"):
        if isinstance(out.get(field), dict):
            out[field] = {key: hasher.mark(str(value)) for key, value in out[field].items()}
    return out


def _mark_table(cfg: ClusterConfig, hasher: SecretHasher, placeholders: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(form, mark) for every form a secret can take in text (installer.runs.secret_forms), longest first.

    `placeholders`: what the program carries instead of secrets when the site has no secrets.yml.
    """
    from installer.runs import secret_forms

    table = {form: hasher.mark(value) for value in secret_values(cfg).values() if value
             for form in secret_forms(value)}
    table.update({form: UNKNOWN_SECRET for value in placeholders for form in secret_forms(value)})
    return sorted(table.items(), key=lambda item: len(item[0]), reverse=True)


def _masked(value: Any, table: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for form, mark in table:
            if form in value:
                value = value.replace(form, mark)
        return value
    if isinstance(value, dict):
        return {key: _masked(item, table) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, table) for item in value]
    return value


# ---- the platform's inputs -------------------------------------------------------------------


def platform_fingerprint(cfg: ClusterConfig, hasher: SecretHasher, installed: Mapping[str, Any] | None) -> str:
    """A digest of everything stacks.program(cfg, installed) reads: equal fingerprints, equal render.

    The inventory enters only through what the stacks read of it (tests/unit/test_applied.py holds
    this list against stacks/): the control-plane addresses (JupyterHub's API egress) and the NFS
    server address (the NFS StorageClass). The stacks' and chart values' source files enter as bytes,
    so a new kfinstall version is never mistaken for the recorded one.
    """
    inputs = {
        "format": FORMAT,
        "cluster": cfg.cluster.model_dump(by_alias=True, mode="json"),
        "profile": cfg.profile.model_dump(by_alias=True, mode="json"),
        "release": cfg.release.model_dump(by_alias=True, mode="json"),
        "kubernetesVersion": cfg.kubernetes_version,
        "stateDir": str(cfg.state_dir),
        "secrets": {key: hasher.mark(value) for key, value in sorted(secret_values(cfg).items())}
        if cfg.secrets is not None else None,
        "tlsCertificate": cfg.tls_material.certificate_pem if cfg.tls_material else None,
        "controlPlanes": [[h.name, h.address] for h in cfg.inventory.in_role("kube_control_plane")],
        "nfsServer": cfg.nfs_server_address(),
        "installed": dict(installed) if installed else None,
        "code": code_digest(),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def code_digest() -> str:
    """sha256 over the files of stacks/, the chart values and the installer modules the program reads
    besides the model (the catalogue, the mock render), without importing stacks (Pulumi's SDK)."""
    spec = importlib.util.find_spec("stacks")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the stacks package is not installed with kfinstall")
    stacks_dir = Path(next(iter(spec.submodule_search_locations)))
    digest = hashlib.sha256()
    for folder in (stacks_dir, charts_dir(stacks_dir)):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(folder)).encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    for module in PROGRAM_MODULES:
        digest.update(module.encode("utf-8") + b"\0" + (Path(__file__).parent / module).read_bytes() + b"\0")
    return digest.hexdigest()


def charts_dir(stacks_dir: Path) -> Path:
    """stacks.values.charts_dir() found from the stacks folder (a test holds the two together)."""
    for candidate in (stacks_dir.parent / "charts", stacks_dir.parent / "installer" / "_data" / "charts"):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"kfinstall chart values not found beside {stacks_dir}")


# ---- plan's render cache ---------------------------------------------------------------------


def cached_render(state_dir: Path, fingerprint: str) -> dict[str, dict[str, Any]] | None:
    """The objects an earlier `plan` evaluated for exactly these platform inputs, or None.

    Any doubt (absent, damaged, other inputs) is a miss: the cache only ever saves time.
    """
    path = state_dir / RENDER_CACHE_FILE
    try:
        data = json.loads(_read_bounded(path, MAX_RECORD_BYTES).decode("utf-8"))
    except (ConfigError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("fingerprint") != fingerprint:
        return None
    objects = data.get("objects")
    if _objects_problem(objects) or _too_deep(objects, MAX_RECORD_DEPTH):
        return None
    return objects


def save_render(state_dir: Path, fingerprint: str, objects: Mapping[str, Any]) -> None:
    """Keep plan's evaluation for the next plan of the same inputs (masked like the record, 0600).

    Only beside an existing record (plan never creates the state dir), and best effort: a state
    dir this user cannot write costs the next plan the evaluation again, nothing else.
    """
    if not (state_dir / APPLIED_FILE).is_file():
        return
    data = {"format": FORMAT, "fingerprint": fingerprint, "objects": objects}
    try:
        write_file_atomically(state_dir / RENDER_CACHE_FILE, json.dumps(data, sort_keys=True).encode("utf-8"), 0o600)
    except (OSError, ConfigError):
        return


# ---- reading ---------------------------------------------------------------------------------


def read_applied(state_dir: Path) -> dict[str, Any] | None:
    """The record, or None when nothing was recorded; ConfigError (exit 2) when it is unusable."""
    path = state_dir / APPLIED_FILE
    if not os.path.lexists(path):
        return None
    data = _read_bounded(path, MAX_RECORD_BYTES)
    try:
        record = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _damaged(path, "is not valid JSON") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise _damaged(path, f"is not a kfinstall apply record (format {FORMAT})")
    problem = _record_problem(record)
    if problem:
        raise _damaged(path, problem)
    return record


def _record_problem(record: dict[str, Any]) -> str | None:
    """What makes `record` unlike one record_apply writes (the shapes plan's diff relies on), or None.

    The record is operator-reachable data (a copied or edited state dir): a wrong shape or a deep
    nesting must be exit 2 naming the file, never a traceback inside the diff.
    """
    if _too_deep(record, MAX_RECORD_DEPTH):
        return f"is nested more than {MAX_RECORD_DEPTH} levels deep"
    for part in PARTS:
        body = record.get(part, {})
        if not isinstance(body, dict):
            return f"its `{part}` part is not a mapping"
        wrong = [key for key in ("settings", "versions") if not isinstance(body.get(key, {}), dict)]
        if wrong:
            return f"`{part}.{wrong[0]}` is not a mapping"
    return _hosts_problem(record.get("hosts") or {}) or _platform_problem(record.get("platform") or {})


def _hosts_problem(hosts: dict[str, Any]) -> str | None:
    roles = hosts.get("roles", {})
    if not isinstance(roles, dict) or not all(
            isinstance(names, list) and all(isinstance(name, str) for name in names) for names in roles.values()):
        return "`hosts.roles` is not a mapping of role -> list of host names"
    return None


def _platform_problem(platform: dict[str, Any]) -> str | None:
    if not isinstance(platform.get("fingerprint", ""), str):
        return "`platform.fingerprint` is not a string"
    if not isinstance(platform.get("outputs") or {}, dict):
        return "`platform.outputs` is not a mapping"
    problem = _objects_problem(platform.get("objects", {}))
    return f"`platform.objects` {problem}" if problem else None


def _objects_problem(objects: Any) -> str | None:
    """Rendered objects must be id -> {component: name or null, body}; what is wrong, or None."""
    if not isinstance(objects, dict):
        return "is not a mapping"
    for ident, entry in objects.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("component"), str | None):
            return f"entry {ident[:80]!r} is not {{component, body}}"
    return None


def _too_deep(value: Any, limit: int) -> bool:
    """True when `value` nests lists/mappings deeper than `limit` (iterative: no recursion to exhaust)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def hasher_for(state_dir: Path) -> SecretHasher:
    """The record's hasher for reading (never creates the key: plan writes nothing)."""
    return SecretHasher(_key(state_dir, create=False))


def _read_bounded(path: Path, limit: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _damaged(path, f"cannot be read ({exc.strerror or type(exc).__name__}; a link is refused)") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _damaged(path, "is not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _damaged(path, f"is larger than {limit} bytes")
    return data


def _damaged(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"{path}: {why}; plan cannot tell what was applied. Fix: move it aside "
        f"(`mv {path} {path}.broken`); the next `kfinstall up` records the apply again"
    )
