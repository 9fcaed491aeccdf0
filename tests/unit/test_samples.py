"""The sample inventories: each validates and plans, each is what the generator writes, and
together they mention every field of the model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from installer.config.load import load
from installer.config.model import ClusterFile
from installer.config.pydantic_errors import _model_in
from installer.config.sample import render_sample, sample_sites
from installer.plan import build_plan
from installer.profiles import profile_names

INVENTORIES = Path(__file__).resolve().parents[2] / "inventories"


def test_there_is_a_sample_per_profile() -> None:
    assert sorted(p.name for p in INVENTORIES.iterdir() if p.is_dir()) == sorted(profile_names())


@pytest.mark.parametrize("profile", profile_names())
def test_sample_validates_and_plans(profile: str) -> None:
    cfg = load(INVENTORIES / profile, need_secrets=False)
    assert cfg.spec.profile == profile
    # The only acceptable warning on a sample is the absent secrets file (samples never ship secrets).
    assert [w.file for w in cfg.warnings] == ["secrets.yml"]
    plan = build_plan(cfg).as_dict()
    assert plan["profile"] == profile and plan["components"]


@pytest.mark.parametrize("profile", profile_names())
def test_sample_matches_the_generator(profile: str) -> None:
    site = sample_sites()[profile]
    expected = render_sample(profile, site["channel"], site["name"], site.get("values", {}))
    assert (INVENTORIES / profile / "kfinstall.yaml").read_text() == expected, (
        "sample is stale: run `python -m installer.config.sample --write`")


@pytest.mark.parametrize("profile", profile_names())
def test_sample_has_group_vars(profile: str) -> None:
    assert (INVENTORIES / profile / "group_vars" / "all.yml").is_file()


def _field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}.{key}" if prefix else key
        paths.append(path)
        sub = _model_in(info.annotation)
        if sub is not None and isinstance(info.annotation, type):
            paths += _field_paths(sub, path)
    return paths


def _keys_in_sample(text: str) -> set[str]:
    """Dotted key paths present in a sample, commented or not (indentation gives nesting)."""
    found, stack = set(), []
    for line in text.splitlines():
        match = re.match(r"^(\s*)#?([A-Za-z][A-Za-z0-9]*):", line)
        if not match or line.lstrip().startswith("# "):
            continue
        depth = len(match.group(1)) // 2
        stack = [*stack[:depth], match.group(2)]
        found.add(".".join(stack))
    return found


def test_every_model_field_appears_in_the_samples() -> None:
    keys: set[str] = set()
    for profile in profile_names():
        keys |= _keys_in_sample((INVENTORIES / profile / "kfinstall.yaml").read_text())
    missing = [path for path in _field_paths(ClusterFile) if path not in keys]
    assert not missing, f"fields missing from every sample: {missing}"


def test_every_sample_field_is_documented() -> None:
    text = (INVENTORIES / "private-gpu" / "kfinstall.yaml").read_text().splitlines()
    for index, line in enumerate(text):
        stripped = line.strip()
        if re.match(r"^#?[a-zA-Z]+:\s*\S", stripped) and stripped.split(":")[0].lstrip("#") not in {"apiVersion", "kind"}:
            assert text[index - 1].strip().startswith("# "), f"undocumented: {line!r}"
