"""Versions live only in installer/releases/: no version literal anywhere else in code.

A version literal is a dotted number of three parts (1.34.2, v4.13.0), or a quoted two-part one
("1.34", 'v2.1'), inside a string. IPv4 addresses and CIDRs are not versions.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCANNED = ["installer", "stacks", "playbooks", "charts"]
EXCLUDED = {REPO / "installer" / "releases"}
SUFFIXES = {".py", ".yml", ".yaml", ".j2", ".toml", ".cfg", ".json"}

THREE_PART = re.compile(r"(?<![\w.])v?\d+\.\d+\.\d+(?![\w.]*\.\d)(?![\d])")
QUOTED_TWO_PART = re.compile(r"""["']v?\d+\.\d+["']""")
IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")
# kfinstall's own version and release names are not component versions.
KFINSTALL_OWN = re.compile(r"(__version__ = \"[^\"]+\"|kfinstall v?\d+\.\d+\.\d+)")
ALLOWED = ("kfinstall.io/v1alpha1",)


def _candidates() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in (REPO / top).rglob("*"):
            if path.suffix in SUFFIXES and path.is_file() and not any(ex in path.parents for ex in EXCLUDED):
                files.append(path)
    return files


def _offending(line: str) -> list[str]:
    scrubbed = KFINSTALL_OWN.sub("", IPV4.sub("", line))
    for allowed in ALLOWED:
        scrubbed = scrubbed.replace(allowed, "")
    return THREE_PART.findall(scrubbed) + QUOTED_TWO_PART.findall(scrubbed)


def test_no_version_literals_outside_releases() -> None:
    found = []
    for path in _candidates():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            for hit in _offending(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {hit}")
    assert not found, "version literals outside installer/releases:\n" + "\n".join(found)


def test_the_scanner_catches_versions() -> None:
    assert _offending('image = "tensorflow/serving:2.20.0"') == ["2.20.0"]
    assert _offending('chart_version = "v4.13.0"') == ["v4.13.0"]
    assert _offending('minor = "1.34"') == ['"1.34"']
    assert _offending('cidr = "10.244.0.0/16"') == []
    assert _offending('__version__ = "0.1.0"') == []
    assert _offending('"spec.x": ("kfinstall 0.1.0", None, "why")') == []
