"""A backup's manifest.json: its shape, and the HMAC that ties it to the site's secrets.yml.

The manifest lists every file of a backup with its size and sha256, and is signed with
HMAC-SHA256 over its canonical JSON (keys sorted, no spaces, ASCII; every key but `signature`).

The signing key is derived, never stored: HMAC-SHA256(pulumi_passphrase, SIGNING_LABEL). Why that
secret: a backup's Pulumi state is encrypted with pulumi_passphrase and is usable only with it, so a
backup is already bound to it; the label keeps the derived key apart from every other use of the
passphrase, and the key id (an HMAC of a second label) tells "edited" from "signed by another
secrets.yml" without revealing anything about the key. Consequences, by design:
  * rotating another secret (Grafana, JupyterHub) changes nothing for backups;
  * changing pulumi_passphrase makes older backups unverifiable, as their Pulumi state is then
    undecryptable anyway: restore them with the secrets.yml of their time put back first;
  * secrets.yml is never part of a backup and restore never writes it: it is the root of trust, and a
    backup cannot bring the key that authenticates it. Keep it yourself (it is the one file to save).
A backup is trusted for exactly this: its files are those kfinstall wrote when someone holding this
site's secrets.yml took it. Anyone who can read secrets.yml can forge one, and can do more anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from installer.config.load import SECRETS_FILE
from installer.config.problems import InvalidConfig, Problem, Problems
from installer.config.pydantic_errors import key_path
from installer.config.secrets import Secrets, load_secrets
from installer.errors import ConfigError, PreflightError

MANIFEST = "manifest.json"
FORMAT = 2
ALGORITHM = "HMAC-SHA256"
SIGNING_LABEL = b"kfinstall backup manifest signing key v1"
KEY_ID_LABEL = b"kfinstall backup manifest key id v1"
# A manifest lists a few dozen files (a few KB); this bounds what a hostile one can cost.
MAX_MANIFEST_BYTES = 4 << 20
MAX_PROBLEMS_SHOWN = 20
_HEX64 = r"^[0-9a-f]{64}$"
_FIX = "take a new backup with `kfinstall backup`, or restore another one; kfinstall never repairs a manifest"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


class FileEntry(_Strict):
    path: str = Field(min_length=1, max_length=4096)
    sha256: str = Field(pattern=_HEX64)
    size: int = Field(ge=0)


class Signature(_Strict):
    alg: Literal["HMAC-SHA256"]
    key_id: str = Field(alias="keyId", pattern=r"^[0-9a-f]{16}$")
    value: str = Field(pattern=_HEX64)


class Manifest(_Strict):
    format: Literal[2]
    cluster: str = Field(min_length=1, max_length=253)
    channel: str
    label: str
    created_at: str = Field(alias="createdAt")
    kfinstall: str
    files: list[FileEntry]
    skipped: dict[str, str]
    signature: Signature


def signing_key(secrets: Secrets) -> bytes:
    return hmac.new(secrets.pulumi_passphrase.get_secret_value().encode("utf-8"), SIGNING_LABEL, "sha256").digest()


def key_id(key: bytes) -> str:
    return hmac.new(key, KEY_ID_LABEL, "sha256").hexdigest()[:16]


def site_signing_key(site: Path) -> bytes:
    """The key from the site's secrets.yml (read through installer.config.secrets, vault included)."""
    path = site / SECRETS_FILE
    if not path.exists():
        raise ConfigError(
            f"{path}: file not found; restore checks a backup's signature with the secrets.yml it was taken "
            "with, and a backup never holds it. Fix: put that secrets.yml back first (not a new one from "
            "`kfinstall init`: its new pulumi_passphrase would not match)"
        )
    problems = Problems()
    secrets = load_secrets(path, SECRETS_FILE, problems)
    problems.raise_if_errors()
    if secrets is None:  # load_secrets reports why; this guards a None without an error
        raise ConfigError(f"{path}: cannot read the secrets. Fix: check the file with `kfinstall inventory validate`")
    return signing_key(secrets)


def canonical(document: dict[str, Any]) -> bytes:
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def sign(document: dict[str, Any], key: bytes) -> dict[str, Any]:
    value = hmac.new(key, canonical(document), hashlib.sha256).hexdigest()
    return {**document, "signature": {"alg": ALGORITHM, "keyId": key_id(key), "value": value}}


def read_manifest(folder: Path) -> tuple[Manifest, dict[str, Any]]:
    """The manifest and its raw document: exit 3 when absent or a link, exit 2 naming the key when
    its shape is wrong. Its signature is checked separately (`check_signature`)."""
    path = folder / MANIFEST
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise PreflightError(f"{folder} is not a kfinstall backup: {MANIFEST} is missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise PreflightError(f"refusing to restore {folder}: {MANIFEST} is not a regular file (a link or a device)")
    if info.st_size > MAX_MANIFEST_BYTES:
        _shape_error(path, "", f"{info.st_size} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES})")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        content = handle.read(MAX_MANIFEST_BYTES + 1)
    try:
        document = json.loads(content.decode("utf-8"))
    # ValueError beyond JSONDecodeError: an integer longer than Python converts (sys.get_int_max_str_digits).
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno} column {exc.colno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) else ""
        _shape_error(path, "", f"not valid JSON{where}")
    if not isinstance(document, dict):
        _shape_error(path, "", f"expected a JSON object, got {type(document).__name__}")
    if "signature" not in document and "format" not in document:
        _shape_error(
            path,
            "signature",
            "missing: the backup was taken before kfinstall signed its backups, so nothing proves who wrote it",
            "take a new backup with `kfinstall backup`; to use this one, check its files yourself and copy them "
            "by hand",
        )
    try:
        return Manifest.model_validate(document), document
    except ValidationError as exc:
        errors = exc.errors()
        problems = [_problem(path, dict(error)) for error in errors[:MAX_PROBLEMS_SHOWN]]
        if len(errors) > MAX_PROBLEMS_SHOWN:  # a hostile manifest's 80,000 errors would be 17 MB of output
            problems.append(Problem(str(path), "", f"and {len(errors) - MAX_PROBLEMS_SHOWN} more problems", _FIX))
        raise InvalidConfig(problems) from None


def check_signature(folder: Path, manifest: Manifest, document: dict[str, Any], key: bytes) -> None:
    """PreflightError (exit 3) unless the manifest was signed with `key` and not changed since."""
    expected = hmac.new(key, canonical(document), hashlib.sha256).hexdigest()
    if hmac.compare_digest(expected, manifest.signature.value):
        return
    if manifest.signature.key_id != key_id(key):
        why = (
            "it was signed with another secrets.yml (another site's, or this site's before its "
            "pulumi_passphrase changed). Fix: put back the secrets.yml the backup was taken with"
        )
    else:
        why = f"its content was changed after the backup was taken. Fix: {_FIX}"
    raise PreflightError(f"refusing to restore {folder}: {MANIFEST}: signature does not match; {why}")


def _shape_error(path: Path, key: str, message: str, fix: str = _FIX) -> NoReturn:
    raise InvalidConfig([Problem(str(path), key, message, fix)])


def _problem(path: Path, error: dict[str, Any]) -> Problem:
    loc = tuple(error["loc"])
    if error["type"] == "missing":
        message = "required key is missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown key"
    else:
        value = error.get("input")
        shown = type(value).__name__ if isinstance(value, dict | list) else repr(value)
        # At most a short prefix of a hostile value reaches the terminal.
        message = f"{error['msg']} (got {shown[:40]}{'...' if len(shown) > 40 else ''})"
    return Problem(str(path), key_path(loc), message, _FIX)
