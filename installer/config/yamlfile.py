"""Reading YAML with positions: syntax errors as file:line:column, key paths mapped back to lines.

ruamel.yaml's round-trip loader keeps each key's line and column, so a problem found later by the
model can still point at the exact line the operator must edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from installer.config.problems import Problems


@dataclass
class LoadedYaml:
    """A parsed document plus the round-trip tree used to find positions."""

    path: Path
    data: Any
    tree: Any

    def position(self, keys: tuple[str | int, ...]) -> tuple[int | None, int | None]:
        """1-based (line, column) of the deepest existing key on `keys`, or (None, None)."""
        node, found = self.tree, (None, None)
        for key in keys:
            if isinstance(node, CommentedMap) and key in node:
                line, col = node.lc.key(key)
                found, node = (line + 1, col + 1), node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line, col = node.lc.item(key)
                found, node = (line + 1, col + 1), node[key]
            else:
                break
        return found


_SCALARS: dict[str, type] = {
    "ScalarFloat": float,
    "ScalarBoolean": bool,
    "ScalarInt": int,
    "HexInt": int,
    "OctalInt": int,
    "BinaryInt": int,
}


def _plain(node: Any) -> Any:
    """Round-trip nodes to plain dicts/lists/scalars, so pydantic sees ordinary Python values."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    convert = _SCALARS.get(type(node).__name__)
    if convert is not None:
        return convert(node)
    return str(node) if isinstance(node, str) else node


def load_yaml(path: Path, display: str, problems: Problems, required: bool = True) -> LoadedYaml | None:
    """Parse `path`; on any failure record a problem (named `display`) and return None."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            problems.error(display, "", "file not found", f"create {path} (kfinstall init --profile P DIR makes one)")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(
            display,
            "",
            f"cannot read the file ({exc.__class__.__name__}: {exc})",
            f"check the permissions and encoding of {path} (UTF-8, readable by this user)",
        )
        return None
    return parse_yaml_text(text, path, display, problems)


def parse_yaml_text(text: str, path: Path, display: str, problems: Problems) -> LoadedYaml | None:
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        what = (exc.problem or exc.context or "invalid YAML").strip()
        problems.error(
            display,
            "",
            f"YAML syntax error: {what}",
            "fix the YAML at that line (check indentation, quotes and colons)",
            line=line,
            column=column,
        )
        return None
    except Exception as exc:  # ruamel raises a few unmarked errors (duplicate keys, bad tags)
        problems.error(
            display, "", f"YAML error: {exc}".splitlines()[0], "fix the YAML (duplicate keys are not allowed)"
        )
        return None
    return LoadedYaml(path=path, data=_plain(tree), tree=tree)
