"""kfinstall's base Helm values per chart (charts/<chart>/values.yaml) and how layers merge.

Merge rule, the same as kfinstall.yaml's: mappings merge key by key; lists and scalars replace.
Pulumi Outputs (secrets) are leaves and are never copied, so their secret flag survives.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_REPO_CHARTS = Path(__file__).resolve().parent.parent / "charts"
# An installed wheel carries the folder as installer/_data/charts (pyproject force-include).
_PACKAGED_CHARTS = Path(__file__).resolve().parent.parent / "installer" / "_data" / "charts"


def charts_dir() -> Path:
    for candidate in (_REPO_CHARTS, _PACKAGED_CHARTS):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"kfinstall chart values not found in {_REPO_CHARTS} or {_PACKAGED_CHARTS}")


@cache
def _base_text(chart: str) -> str:
    path = charts_dir() / chart / "values.yaml"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def base_values(chart: str) -> dict[str, Any]:
    """A fresh copy of kfinstall's base values for `chart` (empty when it ships none)."""
    data = yaml.safe_load(_base_text(chart)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"charts/{chart}/values.yaml must hold a mapping")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: `override` merged onto `base` (maps merge, everything else replaces)."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def chart_values(chart: str, computed: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Base file, then model-computed values, then the user's overrides from kfinstall.yaml."""
    return merge(merge(base_values(chart), computed), overrides)
