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


class SetError(ValueError):
    """A --set expression kfinstall refuses; `key` is its key as given (maybe long: preview it)."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


# Bounds on one --set: a real key is a handful of segments (chart values a few more), a real value a
# JSON map of chart values. The value bounds are kfinstall.yaml's (installer/config/yamlfile.py).
MAX_KEY_LENGTH = 256
MAX_KEY_SEGMENTS = 32
MAX_VALUE_BYTES = 1024 * 1024
MAX_VALUE_NODES = 50_000
MAX_DEPTH = 64  # key segments plus the JSON value's nesting


def parse_set_value(text: str) -> Any:
    """true/false/null, integers, and JSON lists or maps; anything else stays a string.

    Deliberately not YAML: YAML turns `1.10` into the float 1.1 and `no` into False, which is how
    channel 1.10 silently becomes 1.1. Raises SetError for numbers or JSON beyond Python's or
    kfinstall's bounds (5,000-digit integers, JSON nested thousands deep).
    """
    lowered = text.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"null", "~"}:
        return None
    if _INT.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise SetError(f"the number has {len(text.lstrip('-'))} digits") from None
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
        except (RecursionError, ValueError):  # nesting deeper than the decoder's stack, huge numbers
            raise SetError("the JSON value is nested too deeply or holds a number too long to read") from None
    return text


def split_set(expr: str) -> tuple[str, Any]:
    """`spec.gpu.enabled=false` -> ("spec.gpu.enabled", False); paths may omit the `spec.` prefix.
    Raises SetError (a ValueError) naming the key, never quoting the value."""
    if "=" not in expr:
        raise SetError("expected key=value", expr)
    key, _, value = expr.partition("=")
    key = key.strip()
    _check_key(key)
    if key.split(".")[0] not in _TOP_LEVEL:
        key = f"spec.{key}"
    if len(value) > MAX_VALUE_BYTES:
        raise SetError(f"the value is longer than {MAX_VALUE_BYTES} characters", key)
    try:
        parsed = parse_set_value(value.strip())
    except SetError as exc:
        raise SetError(str(exc), key) from None
    depth, nodes = _shape(parsed)
    if nodes > MAX_VALUE_NODES:
        raise SetError(f"the value holds more than {MAX_VALUE_NODES} values", key)
    if depth + key.count(".") + 1 > MAX_DEPTH:
        raise SetError(f"key and value together nest more than {MAX_DEPTH} levels", key)
    return key, parsed


def _check_key(key: str) -> None:
    if not key or any(not part for part in key.split(".")):
        raise SetError("the key is empty or has an empty segment", key)
    if len(key) > MAX_KEY_LENGTH:
        raise SetError(f"the key is longer than {MAX_KEY_LENGTH} characters", key)
    if key.count(".") + 1 > MAX_KEY_SEGMENTS:
        raise SetError(f"the key has more than {MAX_KEY_SEGMENTS} segments", key)
    if not key.isprintable():
        raise SetError("the key holds a control character", key)


def _shape(value: Any) -> tuple[int, int]:
    """(nesting depth, number of values) of a parsed JSON value, without recursion."""
    depth, nodes, pending = 0, 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        nodes += 1
        if isinstance(item, dict | list):
            depth = max(depth, level + 1)
            children = list(item.values()) if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
            nodes += len(item) if isinstance(item, dict) else 0  # keys count too
    return depth, nodes


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value
