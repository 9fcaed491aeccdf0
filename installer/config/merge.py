"""Merging of layered settings and parsing of `--set key=value` overrides."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

_TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec")
_INT = re.compile(r"^-?\d+$")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: mappings merge key by key, lists and scalars in `override` replace `base`."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def parse_set_value(text: str) -> Any:
    """true/false/null, integers, and JSON lists or maps; anything else stays a string.

    Deliberately not YAML: YAML turns `1.10` into the float 1.1 and `no` into False, which is how
    channel 1.10 silently becomes 1.1.
    """
    lowered = text.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"null", "~"}:
        return None
    if _INT.match(text):
        return int(text)
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def split_set(expr: str) -> tuple[str, Any]:
    """`spec.gpu.enabled=false` -> ("spec.gpu.enabled", False); paths may omit the `spec.` prefix."""
    if "=" not in expr:
        raise ValueError("expected key=value")
    key, _, value = expr.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ValueError("the key is empty or has an empty segment")
    if key.split(".")[0] not in _TOP_LEVEL:
        key = f"spec.{key}"
    return key, parse_set_value(value.strip())


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value
