"""Reading YAML with positions: syntax errors as file:line:column, key paths mapped back to lines.

ruamel.yaml's round-trip loader keeps each key's line and column, so a problem found later by the
model can still point at the exact line the operator must edit.

Every file is read through installer.config.safefile (regular files only, a size cap, strict UTF-8)
and composed under limits checked while the node graph is built, before any Python object exists:
a YAML alias stands for a whole copy of its anchor, so 700 bytes of nested aliases ("billion laughs")
expand to billions of nodes in any consumer that walks the data. The composer counts nodes as they
would be after alias expansion and the nesting depth they reach, and stops at the first one over the
limit, naming the key where it happened. An alias to a node that contains it (a cycle) is refused too.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from installer.config.problems import Problems, one_line
from installer.config.safefile import MIB, read_text_or_report


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on one file. Nodes are counted after alias expansion (keys, values and list items each
    count one), so the node bound is also the bound on aliases; depth counts mappings and lists."""

    max_bytes: int
    max_nodes: int
    max_depth: int
    budget: str = ""  # when max_nodes is what is left of a budget shared by several files: whose

    def nodes_refusal(self) -> tuple[str, str]:
        """(message, fix) for a file over max_nodes: both YAML scanners refuse it in the same words."""
        return (f"more than {self.max_nodes} values once aliases are expanded{self.budget}",
                "write the values out or use fewer aliases (YAML alias bombs are refused); "
                "a real file stays far below this")

    def depth_refusal(self) -> tuple[str, str]:
        """(message, fix) for a file nested deeper than max_depth."""
        return (f"nested more than {self.max_depth} levels deep",
                "flatten the structure (a real file nests a few levels)")


# kfinstall.yaml and group_vars/host_vars files: the samples hold ~150 nodes and 6 levels; a pasted
# chart values file (spec.components.*.values) a few thousand nodes. ruamel composes ~25,000 nodes a
# second, so 50,000 nodes bound the parse of a hostile file to a few seconds.
CONFIG_LIMITS = YamlLimits(max_bytes=1 * MIB, max_nodes=50_000, max_depth=64)
# hosts.yml: about six nodes a host with two host variables, so ~15,000 hosts fit.
INVENTORY_LIMITS = YamlLimits(max_bytes=4 * MIB, max_nodes=100_000, max_depth=64)


class YamlLimitError(MarkedYAMLError):
    """A limit was crossed while composing; `key` is the path of the node where it happened."""

    def __init__(self, message: str, fix: str, key: str, mark: Any) -> None:
        super().__init__(problem=message, problem_mark=mark)
        self.message, self.fix, self.key = message, fix, key

    def record(self, display: str, problems: Problems) -> None:
        """The problem both YAML readers report: the key, the limit and its fix, where the node starts."""
        mark = self.problem_mark
        problems.error(display, preview_key(self.key), self.message, self.fix,
                       line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None)


def _dotted(path: list[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _BoundedComposer(Composer):
    """ruamel's composer, counting expanded nodes and depth as it goes (limits set by _bounded_yaml)."""

    limits: YamlLimits = CONFIG_LIMITS

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # the warning would print the anchored lines to stderr
        self._nodes = 0
        self._size: dict[int, int] = {}  # id(node) -> its node count after alias expansion
        self._height: dict[int, int] = {}  # id(node) -> levels of mappings/lists below it, itself included
        self._path: list[str | int] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        label = index.value if isinstance(index, ScalarNode) else index if isinstance(index, int) else None
        if label is not None:
            self._path.append(str(label) if not isinstance(label, int) else label)
        try:
            return self._compose_bounded(parent, index)
        finally:
            if label is not None:
                self._path.pop()

    def _compose_bounded(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._size:
                raise self._error("an alias refers to a node that contains it (a cycle)",
                                  "remove the alias or point it at a node defined before this one", event)
            self._count(self._size[id(node)], event)
            self._check_depth(self.depth + self._height[id(node)], event)
            return node
        self._count(1, event)
        self._check_depth(self.depth + 1, event)
        node = super().compose_node(parent, index)
        children = _children(node)
        self._size[id(node)] = 1 + sum(self._size[id(c)] for c in children)
        heights = [self._height[id(c)] for c in children]
        self._height[id(node)] = (1 + max(heights, default=0)) if not isinstance(node, ScalarNode) else 0
        return node

    def _count(self, nodes: int, event: Any) -> None:
        self._nodes += nodes
        if self._nodes > self.limits.max_nodes:
            raise self._error(*self.limits.nodes_refusal(), event)

    def _check_depth(self, depth: int, event: Any) -> None:
        if depth > self.limits.max_depth:
            raise self._error(*self.limits.depth_refusal(), event)

    def _error(self, message: str, fix: str, event: Any) -> YamlLimitError:
        return YamlLimitError(message, fix, _dotted(self._path), event.start_mark)


def _children(node: Any) -> list[Any]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _bounded_yaml(limits: YamlLimits) -> YAML:
    yaml = YAML(typ="rt")

    class Composer(_BoundedComposer):  # ruamel instantiates the class itself: limits ride on it
        pass

    Composer.limits = limits
    yaml.Composer = Composer
    return yaml


@dataclass
class LoadedYaml:
    """A parsed document plus the round-trip tree used to find positions."""

    path: Path
    data: Any
    tree: Any
    nodes: int = 0  # after alias expansion

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

    def written(self, keys: tuple[str | int, ...]) -> str | None:
        """A number at `keys` as the file spells it (`1.10`, which YAML reads as 1.1), else None."""
        node: Any = self.tree
        for key in keys:
            if not ((isinstance(node, CommentedMap) and key in node)
                    or (isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node))):
                return None
            node = node[key]
        if type(node).__name__ != "ScalarFloat" or getattr(node, "_exp", None) or getattr(node, "_underscore", None):
            return None
        # ruamel keeps the written width and where the point was (`_prec`): the rest are decimals.
        width, point = int(node._width), int(node._prec)
        decimals = width - point - 1
        if decimals < 0:
            return None
        text = f"{float(node):.{decimals}f}" + ("." if decimals == 0 else "")
        return text.replace("0.", ".", 1) if point == 0 and text.startswith("0.") else text


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


def load_yaml(
    path: Path,
    display: str,
    problems: Problems,
    required: bool = True,
    *,
    limits: YamlLimits = CONFIG_LIMITS,
) -> LoadedYaml | None:
    """Parse `path` within `limits`; on any failure record a problem (named `display`) and return None.
    Not for secrets.yml (installer.config.secrets reads it): messages may quote the file's content."""
    missing_fix = f"create {path} (kfinstall init --profile P DIR makes one)" if required else None
    text = read_text_or_report(path, display, problems, limits.max_bytes, missing_fix)
    if text is None:
        return None
    return parse_yaml_text(text, path, display, problems, limits=limits)


def parse_yaml_text(
    text: str,
    path: Path,
    display: str,
    problems: Problems,
    *,
    limits: YamlLimits = CONFIG_LIMITS,
) -> LoadedYaml | None:
    yaml = _bounded_yaml(limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ruamel warns with excerpts of the file on stderr
            tree = yaml.load(text)
        nodes = yaml.composer._nodes if text.strip() else 0
    except YamlLimitError as exc:
        exc.record(display, problems)
        return None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problems.error(
            display,
            "",
            _syntax_message(exc),
            "keep one of the two keys" if isinstance(exc, DuplicateKeyError)
            else "fix the YAML at that line (check indentation, quotes and colons)",
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
        return None
    except Exception as exc:  # ruamel raises a few unmarked errors (bad tags, integers of 5,000 digits)
        what = f": {preview_text(str(exc).splitlines()[0] if str(exc).strip() else '')}"
        problems.error(display, "", f"YAML error ({exc.__class__.__name__}){what}", "fix the YAML")
        return None
    return LoadedYaml(path=path, data=_plain(tree), tree=tree, nodes=nodes)


# Where Ansible looks for variables beside an inventory (its host_group_vars plugin): files with no
# extension or one of these, in group_vars/ and host_vars/ and their subfolders, hidden and backup
# (~) names skipped.
VARS_FOLDERS = ("group_vars", "host_vars")
VARS_EXTENSIONS = ("", ".yml", ".yaml", ".json")
MAX_VARS_FILES = 1_000


def check_vars_files(site: Path, problems: Problems) -> bool:
    """Read group_vars/ and host_vars/ within limits before Ansible's own loader does: it expands
    aliases (PyYAML) and would open a FIFO and wait. One node budget (INVENTORY_LIMITS) spans all the
    files, a refused file spending its whole allowance, so many files just under the per-file limit
    cannot add up to minutes. True when every file passes."""
    files = _vars_files(site)
    if len(files) > MAX_VARS_FILES:
        problems.error("group_vars", "", f"more than {MAX_VARS_FILES} variable files in group_vars/ and host_vars/",
                       "merge them: a site needs a few")
        return False
    budget, ok = INVENTORY_LIMITS.max_nodes, True
    for path in files:
        if budget <= 0:
            break
        shared = f" (what is left of the {INVENTORY_LIMITS.max_nodes} shared by group_vars/ and host_vars/)"
        limits = YamlLimits(CONFIG_LIMITS.max_bytes, min(CONFIG_LIMITS.max_nodes, budget), CONFIG_LIMITS.max_depth,
                            shared if budget < CONFIG_LIMITS.max_nodes else "")
        doc = scan_yaml(path, str(path.relative_to(site)), problems, limits=limits)
        ok = ok and doc is not None
        budget -= doc.nodes if doc is not None else limits.max_nodes
    return ok


def _vars_files(site: Path) -> list[Path]:
    """Candidate files in walk order; folders (symlinked ones too, as Ansible follows them) once each."""
    found: list[Path] = []
    pending = [site / name for name in VARS_FOLDERS if (site / name).is_dir()]
    seen: set[str] = set()
    while pending and len(found) <= MAX_VARS_FILES:
        folder = pending.pop(0)
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") or entry.name.endswith("~"):
                continue
            if entry.is_dir():
                pending.append(entry)
            elif entry.suffix in VARS_EXTENSIONS:
                found.append(entry)
    return found


MESSAGE_PREVIEW = 80  # characters of parser text (which may quote the file) shown back


def preview_text(text: str, limit: int = MESSAGE_PREVIEW) -> str:
    return one_line(text, limit)


def preview_key(key: str) -> str:
    return preview_text(key, 120)


def _syntax_message(exc: MarkedYAMLError) -> str:
    if isinstance(exc, DuplicateKeyError):
        return "YAML syntax error: duplicate key (a key appears twice in one mapping)"  # ruamel's quotes values
    what = (exc.problem or exc.context or "invalid YAML").strip()
    return f"YAML syntax error: {preview_text(what)}"


# Files Ansible reads itself (hosts.yml, group_vars/, host_vars/) are only checked here, never built
# into Python objects: libyaml's event parser (PyYAML's C binding, which Ansible's own loader uses)
# walks them at C speed, the limits are counted on the events, and the line:column of every mapping
# key is kept for problem messages. ruamel's pure-Python round trip took ~0.5 s for 1,000 hosts,
# more than Ansible's whole parse (bench/plan_scale.py).
try:
    from yaml import CSafeLoader as _EventLoader
except ImportError:  # PyYAML built without libyaml: same events, slower
    from yaml import SafeLoader as _EventLoader  # type: ignore[assignment]

KeyPath = tuple[str | int, ...]


@dataclass
class ScannedYaml:
    """A file that passed the limits, with the 1-based (line, column) of each mapping key and list
    item by key path (first occurrence wins; content reached only through an alias is not listed)."""

    path: Path
    nodes: int
    keys: dict[KeyPath, tuple[int, int]]

    def position(self, keys: KeyPath) -> tuple[int | None, int | None]:
        """(line, column) of the deepest existing key on `keys`, or (None, None)."""
        for end in range(len(keys), 0, -1):
            found = self.keys.get(keys[:end])
            if found is not None:
                return found
        return None, None


@dataclass
class _Frame:
    """An open mapping or sequence while scanning."""

    path: KeyPath
    anchor: str | None
    mapping: bool
    start: tuple[int, int]
    size: int = 1
    height: int = 1
    expect_key: bool = True
    key: str | int | None = None
    index: int = 0
    seen: set[tuple[bool, str]] = field(default_factory=set)  # (quoted, text) of the keys so far


class _Scan:
    """Counts nodes (aliases expanded), depth and duplicate keys over one document's events."""

    def __init__(self, limits: YamlLimits) -> None:
        self.limits = limits
        self.nodes = 0
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded size, height)
        self.keys: dict[KeyPath, tuple[int, int]] = {}
        self.documents = 0

    def run(self, text: str) -> None:
        import yaml

        for event in yaml.parse(text, Loader=_EventLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    raise YamlLimitError("more than one YAML document in the file (a second `---`)",
                                         "keep one document: Ansible reads only a single one", "", event.start_mark)
            elif isinstance(event, yaml.CollectionStartEvent):
                self._open(event, isinstance(event, yaml.MappingStartEvent))
            elif isinstance(event, yaml.CollectionEndEvent):
                frame = self.stack.pop()
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = (frame.size, frame.height)
                self._done(frame.size, frame.height, frame.start)
            elif isinstance(event, yaml.AliasEvent):
                self._alias(event)
            elif isinstance(event, yaml.ScalarEvent):
                self._count(1, self._child_path(), event)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (1, 0)
                self._done(1, 0, _line_column(event), (bool(event.style), event.value))

    def _child_path(self) -> KeyPath:
        """Key path of the node starting now (a mapping key's own path is its mapping's)."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.mapping:
            return top.path if top.expect_key or top.key is None else (*top.path, top.key)
        return (*top.path, top.index)

    def _open(self, event: Any, mapping: bool) -> None:
        path = self._child_path()
        self._count(1, path, event)
        if len(self.stack) + 1 > self.limits.max_depth:
            raise self._error(*self.limits.depth_refusal(), path, event)
        self.stack.append(_Frame(path, event.anchor, mapping, _line_column(event)))

    def _alias(self, event: Any) -> None:
        path = self._child_path()
        if any(frame.anchor == event.anchor for frame in self.stack):
            raise self._error("an alias refers to a node that contains it (a cycle)",
                              "remove the alias or point it at a node defined before this one", path, event)
        if event.anchor not in self.anchors:
            raise self._error(f"alias *{preview_text(event.anchor or '', 40)} names no anchor defined before it",
                              "define the anchor (&name) before the alias, or write the value out", path, event)
        size, height = self.anchors[event.anchor]
        self._count(size, path, event)
        if len(self.stack) + height > self.limits.max_depth:
            raise self._error(*self.limits.depth_refusal(), path, event)
        self._done(size, height, _line_column(event))

    def _done(self, size: int, height: int, start: tuple[int, int], scalar: tuple[bool, str] | None = None) -> None:
        """A node that began at `start` is complete: add it to its parent, and record where a key or a
        list item is. `scalar` is (quoted, text) for a scalar: '1' and 1 are different keys."""
        if not self.stack:
            return
        top = self.stack[-1]
        top.size += size
        top.height = max(top.height, height + 1)
        if not top.mapping:
            self.keys.setdefault((*top.path, top.index), start)
            top.index += 1
        elif not top.expect_key:
            top.expect_key = True
        else:
            top.expect_key, top.key = False, scalar[1] if scalar is not None else None
            if scalar is None:
                return
            if scalar in top.seen:
                raise DuplicateKey(*start)
            top.seen.add(scalar)
            self.keys.setdefault((*top.path, scalar[1]), start)

    def _count(self, nodes: int, path: KeyPath, event: Any) -> None:
        self.nodes += nodes
        if self.nodes > self.limits.max_nodes:
            raise self._error(*self.limits.nodes_refusal(), path, event)

    @staticmethod
    def _error(message: str, fix: str, path: KeyPath, event: Any) -> YamlLimitError:
        return YamlLimitError(message, fix, _dotted(list(path)), event.start_mark)


class DuplicateKey(Exception):
    """A key written twice in one mapping: Ansible would keep the last one and warn at best."""

    def __init__(self, line: int, column: int) -> None:
        super().__init__("duplicate key")
        self.line, self.column = line, column


def _line_column(event: Any) -> tuple[int, int]:
    """1-based (line, column) where an event's node starts."""
    return event.start_mark.line + 1, event.start_mark.column + 1


def scan_yaml(path: Path, display: str, problems: Problems, *, limits: YamlLimits) -> ScannedYaml | None:
    """Check a file Ansible will read (within `limits`, one document, no duplicate keys) and index its
    keys' positions; on any failure record a problem naming `display` and return None."""
    text = read_text_or_report(path, display, problems, limits.max_bytes, f"create {path}")
    if text is None:
        return None
    return scan_yaml_text(text, path, display, problems, limits=limits)


def scan_yaml_text(
    text: str, path: Path, display: str, problems: Problems, *, limits: YamlLimits
) -> ScannedYaml | None:
    import yaml

    scan = _Scan(limits)
    try:
        scan.run(text)
    except YamlLimitError as exc:
        exc.record(display, problems)
        return None
    except DuplicateKey as exc:
        problems.error(display, "", "YAML syntax error: duplicate key (a key appears twice in one mapping)",
                       "keep one of the two keys", line=exc.line, column=exc.column)
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = (exc.problem or exc.context or "invalid YAML").strip()
        problems.error(display, "", f"YAML syntax error: {preview_text(what)}",
                       "fix the YAML at that line (check indentation, quotes and colons)",
                       line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None)
        return None
    except yaml.YAMLError as exc:  # e.g. a control character libyaml's reader refuses
        line, column = _text_position(text, getattr(exc, "position", None))
        problems.error(display, "", f"YAML error: {preview_text(str(exc).splitlines()[0] if str(exc).strip() else '')}",
                       "fix the YAML (remove control characters)", line=line, column=column)
        return None
    return ScannedYaml(path=path, nodes=scan.nodes, keys=scan.keys)


def _text_position(text: str, offset: int | None) -> tuple[int | None, int | None]:
    if not isinstance(offset, int) or not 0 <= offset <= len(text):
        return None, None
    line = text.count("\n", 0, offset)
    return line + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1
