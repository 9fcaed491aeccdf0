"""Taking one host out of the operator's hosts.yml (for `kfinstall node remove`), comments kept.

hosts.yml is the operator's file, so the edit is as small as it can be: the lines of the host's
entries are cut from the text (every group that lists it, and its own entry with the variables
written on it), and every other byte stays as it was, comments included. ruamel's round-trip
parse gives where each entry starts; the cut ends before the next line that is not deeper than the
entry (its next sibling, a comment or blank line at its own level, or the end of its group), so a
comment written between two hosts stays with the host below it. The result is parsed again and
must equal the old inventory minus that host, value for value; anything else (a host written as a
range, in flow style, behind an alias, in an INI file, a file that is a link) is not edited: the
operator gets the exact lines to delete instead, exit 2 before any host is touched.

host_vars/<host>(.yml) files are never touched (they are the operator's); they are named so the
operator can remove them.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from installer.config.problems import Problems
from installer.config.safefile import read_text_or_report
from installer.config.yamlfile import INVENTORY_LIMITS, VARS_EXTENSIONS, parse_yaml_text
from installer.errors import ConfigError
from installer.owned import write_file_atomically


@dataclass(frozen=True)
class Entry:
    """One place the host is written: under `group` (`all` for its own entry), lines first..last (1-based)."""

    group: str
    first: int
    last: int


@dataclass
class HostRemoval:
    """What removing `host` from `path` means: the entries, the new text (None when kfinstall will
    not edit the file: `reason` says why), and host_vars files to mention."""

    path: Path
    host: str
    entries: list[Entry] = field(default_factory=list)
    new_text: str | None = None
    old_text: str | None = None
    reason: str | None = None
    host_vars: list[str] = field(default_factory=list)

    @property
    def editable(self) -> bool:
        return self.new_text is not None

    def instructions(self) -> list[str]:
        """What the operator deletes by hand (with --keep-inventory, or when kfinstall cannot edit)."""
        lines = [f"{self.path.name} line {e.first}" + (f"-{e.last}" if e.last > e.first else "")
                 + f": the entry {self.host} under {e.group}" for e in self.entries]
        if not self.entries:
            lines.append(f"{self.path.name}: delete {self.host} from every group that lists it")
        lines += [f"{name}: the host's own variables (kfinstall leaves this file alone; delete it if unused)"
                  for name in self.host_vars]
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "editable": self.editable, "reason": self.reason,
                "entries": [{"group": e.group, "firstLine": e.first, "lastLine": e.last} for e in self.entries],
                "hostVars": list(self.host_vars), "instructions": self.instructions()}


def plan_host_removal(path: Path, host: str) -> HostRemoval:
    """Work out the edit without writing anything (the caller shows it and writes it at the end)."""
    removal = HostRemoval(path=path, host=host, host_vars=_host_vars_files(path.parent, host))
    removal.reason = _not_editable(path)
    if removal.reason is not None:
        return removal
    problems = Problems()
    text = read_text_or_report(path, path.name, problems, INVENTORY_LIMITS.max_bytes, "")
    loaded = None if text is None else parse_yaml_text(text, path, path.name, problems, limits=INVENTORY_LIMITS)
    if text is None or loaded is None or not isinstance(loaded.tree, CommentedMap):
        removal.reason = f"{path.name} could not be read again ({'; '.join(p.message for p in problems.items)})"
        return removal
    removal.old_text = text
    places = list(_places(loaded.tree, host, None))
    # str.splitlines breaks where YAML does (\n, \r\n, \r, U+0085, U+2028/9); the other breaks it knows are
    # characters YAML refuses, so the lines counted here are the parser's lines.
    lines = text.splitlines(keepends=True)
    removal.entries = [_entry(lines, group, line, column) for group, line, column in places]
    if not places:
        removal.reason = (f"{host} is not written literally in {path.name} (a host range or a pattern?); "
                          "delete it by hand")
        return removal
    cut = {n for e in removal.entries for n in range(e.first, e.last + 1)}
    new_text = "".join(line for number, line in enumerate(lines, start=1) if number not in cut)
    if not _only_host_removed(text, new_text, path, host):
        removal.reason = (f"cutting {host}'s lines out of {path.name} would change more than that host "
                          "(flow style, aliases or a shared line); delete it by hand")
        return removal
    removal.new_text = new_text
    return removal


def _not_editable(path: Path) -> str | None:
    """Why kfinstall will not edit `path` at all (not YAML, a link, not a regular file), else None."""
    if path.suffix not in (".yml", ".yaml"):
        return f"{path.name} is not a YAML inventory; kfinstall edits only YAML ones"
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        return f"{path.name} cannot be read again ({exc.strerror or exc.__class__.__name__})"
    if stat.S_ISLNK(mode) or not stat.S_ISREG(mode):
        return f"{path.name} is a link or not a regular file; kfinstall does not edit through it"
    return None


def write_host_removal(removal: HostRemoval, backup_dir: Path | None = None) -> Path | None:
    """Write the edited hosts.yml, only if the file still holds what was planned (an operator's edit
    in between wins: ConfigError naming the lines to delete by hand). Same mode and owner as before.

    With `backup_dir` (the state dir: kfinstall's, never read as an inventory) the old text is kept there
    first, private, and its path returned: the operator's file is replaced only once a copy exists."""
    if removal.new_text is None or removal.old_text is None:
        raise ConfigError(f"{removal.path} was not edited: {removal.reason}. Delete by hand: "
                          + "; ".join(removal.instructions()))
    try:
        now = removal.path.read_text(encoding="utf-8")
        info = os.lstat(removal.path)
    except (OSError, UnicodeError):
        now, info = None, None
    if now != removal.old_text or info is None or stat.S_ISLNK(info.st_mode):
        raise ConfigError(f"{removal.path} changed while kfinstall ran, so it was not edited. Delete by hand: "
                          + "; ".join(removal.instructions()))
    backup = None
    if backup_dir is not None:
        backup_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        backup = backup_dir / f"{removal.path.name}.before-node-remove-{removal.host}-{stamp}"
        write_file_atomically(backup, removal.old_text.encode("utf-8"), 0o600)
    write_file_atomically(removal.path, removal.new_text.encode("utf-8"), stat.S_IMODE(info.st_mode))
    if os.geteuid() == 0 and (info.st_uid, info.st_gid) != (0, 0):
        # Run with sudo, the new file would be root's: the operator could no longer edit their own inventory.
        os.chown(removal.path, info.st_uid, info.st_gid, follow_symlinks=False)
    return backup


def _host_vars_files(site: Path, host: str) -> list[str]:
    folder = site / "host_vars"
    found = [f"host_vars/{host}{ext}" for ext in VARS_EXTENSIONS if os.path.lexists(folder / f"{host}{ext}")]
    if (folder / host).is_dir():
        found.append(f"host_vars/{host}/")
    return found


def _places(group_map: Any, host: str, group: str | None) -> Any:
    """(group, line, column) of every key `host` under a `hosts:` of a group, walking `children:`
    (top-level keys are groups; a group's vars are never walked)."""
    if not isinstance(group_map, CommentedMap):
        return
    if group is None:  # the document: each top-level key is a group
        for name, value in group_map.items():
            yield from _places(value, host, str(name))
        return
    hosts = group_map.get("hosts")
    if isinstance(hosts, CommentedMap) and host in hosts:
        line, column = hosts.lc.key(host)
        yield group, line + 1, column
    children = group_map.get("children")
    if isinstance(children, CommentedMap):
        for name, value in children.items():
            yield from _places(value, host, str(name))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _entry(lines: list[str], group: str, first: int, column: int) -> Entry:
    """The entry starting at line `first` (key at `column`, 0-based): it and the lines below that are
    indented deeper, up to the first line that is not. Blank lines belong to it only when a deeper line
    follows them (blank lines after the entry stay with what follows)."""
    last = first
    for number in range(first + 1, len(lines) + 1):
        line = lines[number - 1]
        if not line.strip():
            continue
        if _indent(line) <= column:
            break
        last = number
    return Entry(group, first, last)


def _only_host_removed(old: str, new: str, path: Path, host: str) -> bool:
    """The new text parses to the old inventory without `host`, and nothing else changed."""
    problems = Problems()
    before = parse_yaml_text(old, path, path.name, problems, limits=INVENTORY_LIMITS)
    after = parse_yaml_text(new, path, path.name, problems, limits=INVENTORY_LIMITS)
    if before is None or after is None or problems.items:
        return False
    # `hosts:` left with no entry reads as null, which Ansible takes as an empty group.
    return bool(_without(before.data, host, None) == _without(after.data, host, None))


def _without(group_map: Any, host: str, group: str | None) -> Any:
    """Plain data of a parsed inventory with `host` dropped from every group's hosts (a null `hosts:`
    read as an empty one)."""
    if not isinstance(group_map, dict):
        return group_map
    if group is None:
        return {name: _without(value, host, name) for name, value in group_map.items()}
    out = dict(group_map)
    if "hosts" in out and out["hosts"] is None:
        out["hosts"] = {}
    if isinstance(out.get("hosts"), dict):
        out["hosts"] = {name: value for name, value in out["hosts"].items() if name != host}
    if isinstance(out.get("children"), dict):
        out["children"] = {name: _without(value, host, name) for name, value in out["children"].items()}
    return out
