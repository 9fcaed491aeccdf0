"""Parsing of version strings (major.minor, v-prefixed, with a package suffix) for comparisons only."""

from __future__ import annotations

import re

_NUMERIC = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a version; a missing patch counts as 0. ValueError when unparsable."""
    match = _NUMERIC.match(version.strip())
    if not match:
        raise ValueError(f"not a version: {version!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def has_patch(version: str) -> bool:
    """True when the version names a patch (X.Y.Z, vX.Y.Z), not only a minor (X.Y)."""
    match = _NUMERIC.match(version.strip())
    return bool(match and match.group(3) is not None)


def minor_tuple(version: str) -> tuple[int, int]:
    major, minor, _ = parse(version)
    return major, minor


def minor_of(version: str) -> str:
    major, minor = minor_tuple(version)
    return f"{major}.{minor}"


def is_version(text: str) -> bool:
    return bool(_NUMERIC.match(text.strip()))
