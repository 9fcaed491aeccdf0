"""Static guards of the role boundaries of playbooks/ (issue 14): every role owns its files, handlers and
private variables; shared logic lives once, in kf_defaults and the kfinstall.hosts collection.

Each guard is a function over a playbooks/ directory that returns one "file:line: what is wrong" per
violation; the tests run them on this checkout, and on a small tree holding one violation of each kind
(so a guard that finds nothing is known to be able to find something). Read as text or YAML, no Ansible.

A role's private variable is `_<role>_...` (`_kf_...` for kf_defaults, whose variables use kfinstall's
shared kf_ prefix). Full-line YAML comments are not code and are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import pytest
import yaml
from task_walk import walk_tasks

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
CODE_SUFFIXES = {".yml", ".yaml", ".j2"}
# The prefix of a role's own variables when it is not the role's name.
ROLE_PREFIX = {"kf_defaults": "kf"}

# The os_prepare_ names read outside os_prepare, each with the reason it may be. (file under playbooks/,
# name) -> why.
OS_PREPARE_READ_ELSEWHERE: dict[tuple[str, str], str] = {}

# What a role can only have from kf_defaults: the probe's fact and what kf_defaults derives from it.
KF_DEFAULTS_PUBLIC = ("kf_host", "kf_running_units", "kf_install_needed")
INCLUDE_MODULES = {"include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role"}

# Shared logic written once (the kfinstall.hosts filter upstream_version, the probe's `container`).
WRITTEN_ONCE = [
    (re.compile(r"""regex_replace\(\s*['"]\^(?:\[0-9\]|\\d)\+:"""),
     "strips a version's epoch by hand: use the filter kfinstall.hosts.upstream_version"),
    (re.compile(r"virtualization_tech_guest"),
     "tests for a container host again: use the probe's kf_host.container (kf_defaults)"),
]
ROLE_PATH_UP = re.compile(r"""role_path(?:\s*[~+]\s*['"]|\s*}}\s*)/\.\.""")


# --- reading the tree -----------------------------------------------------------------------------------

def _roles(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "roles").iterdir() if p.is_dir()) if (root / "roles").is_dir() else []


def _code_files(top: Path) -> list[Path]:
    return sorted(p for p in top.rglob("*") if p.is_file() and p.suffix in CODE_SUFFIXES
                  and "collections" not in p.relative_to(top).parts)


def _code_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a YAML or Jinja file, full-line YAML comments left out."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if path.suffix != ".j2" and line.lstrip().startswith("#"):
            continue
        yield number, line


def _where(root: Path, path: Path, line: int) -> str:
    return f"{path.relative_to(root.parent)}:{line}"


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that records each mapping's first line as the key __line__."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _load(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader)


def _names(value: Any) -> list[str]:
    """notify/listen: one name or a list of names."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# --- the guards ---------------------------------------------------------------------------------------------

def private_variable_violations(root: Path) -> list[str]:
    """a. A role uses no other role's `_<role>_` variables; a playbook uses none at all."""
    roles = _roles(root)
    prefixes = {ROLE_PREFIX.get(role, role): role for role in roles}
    # Longest first: `_nfs_server_x` is nfs_server's even if a role `nfs` existed.
    private = re.compile(r"(?<!\w)_(" + "|".join(sorted(map(re.escape, prefixes), key=len, reverse=True))
                         + r")_\w+")
    found = []
    for role in roles:
        for path in _code_files(root / "roles" / role):
            for number, line in _code_lines(path):
                for match in private.finditer(line):
                    owner = prefixes[match.group(1)]
                    if owner != role:
                        found.append(f"{_where(root, path, number)}: {match.group(0)} is a private variable of "
                                     f"the role {owner}: read one of its public variables (or facts) instead")
    for path in sorted(root.glob("*.yml")):
        for number, line in _code_lines(path):
            for match in private.finditer(line):
                found.append(f"{_where(root, path, number)}: {match.group(0)} is a private variable of the role "
                             f"{prefixes[match.group(1)]}: a playbook sets the role's public variables only")
    return found


def role_path_violations(root: Path) -> list[str]:
    """b. No template or file is found through role_path ~ '/..' (another role's directory)."""
    return [f"{_where(root, path, number)}: role_path ~ '/..' leaves the role: a role renders its own "
            "templates (lookup('ansible.builtin.template', 'x.j2') finds them in its templates/)"
            for path in _code_files(root) for number, line in _code_lines(path) if ROLE_PATH_UP.search(line)]


def os_prepare_name_violations(root: Path) -> list[str]:
    """b. No os_prepare_ variable or fact is read outside os_prepare (bar the listed exceptions)."""
    name = re.compile(r"(?<!\w)os_prepare_\w+")
    found = []
    for path in _code_files(root):
        relative = path.relative_to(root)
        if relative.parts[:2] == ("roles", "os_prepare"):
            continue
        for number, line in _code_lines(path):
            for match in name.finditer(line):
                if (str(relative), match.group(0)) not in OS_PREPARE_READ_ELSEWHERE:
                    found.append(f"{_where(root, path, number)}: {match.group(0)} is os_prepare's: other roles "
                                 "and plays read kf_defaults' public variables and the probe's kf_host instead")
    return found


def _includes_kf_defaults(path: Path) -> int | None:
    """The line of a task of this file that includes or imports kf_defaults' tasks, if any."""
    for task in walk_tasks(_load(path)):
        for module in INCLUDE_MODULES & task.keys():
            args = task[module]
            if isinstance(args, dict) and args.get("name") == "kf_defaults":
                return int(task["__line__"])
    return None


def _dependencies(role_dir: Path) -> list[str]:
    meta = role_dir / "meta" / "main.yml"
    data = (yaml.safe_load(meta.read_text(encoding="utf-8")) or {}) if meta.is_file() else {}
    return [d if isinstance(d, str) else d.get("role", d.get("name", "")) for d in data.get("dependencies") or []]


def kf_defaults_dependency_violations(root: Path) -> list[str]:
    """c. A role that reads kf_defaults' probe fact or includes its tasks depends on kf_defaults (meta):
    run alone, it then has them too."""
    used = re.compile(r"(?<!\w)(" + "|".join(KF_DEFAULTS_PUBLIC) + r")\b")
    found = []
    for role in _roles(root):
        role_dir = root / "roles" / role
        if role == "kf_defaults" or "kf_defaults" in _dependencies(role_dir):
            continue
        for path in _code_files(role_dir):
            first = next(((number, m.group(1)) for number, line in _code_lines(path) for m in [used.search(line)] if m),
                         None)
            if first:
                found.append(f"{_where(root, path, first[0])}: {role} reads {first[1]} but its meta/main.yml does "
                             "not list kf_defaults in dependencies")
            included = _includes_kf_defaults(path) if path.suffix != ".j2" and "tasks" in path.parts else None
            if included:
                found.append(f"{_where(root, path, included)}: {role} includes kf_defaults' tasks but its "
                             "meta/main.yml does not list kf_defaults in dependencies")
    return found


def notify_violations(root: Path) -> list[str]:
    """d. Every notify names a handler of the notifying role (its name or one it listens to)."""
    found = []
    for role in _roles(root):
        role_dir = root / "roles" / role
        handlers_file = role_dir / "handlers" / "main.yml"
        handlers = list(walk_tasks(_load(handlers_file))) if handlers_file.is_file() else []
        known = {n for h in handlers for n in [*_names(h.get("name")), *_names(h.get("listen"))]}
        for path in sorted([*role_dir.glob("tasks/*.yml"), *role_dir.glob("handlers/*.yml")]):
            for task in walk_tasks(_load(path)):
                for handler in _names(task.get("notify")):
                    if handler not in known:
                        found.append(f"{_where(root, path, task['__line__'])}: notify {handler!r}: no handler of "
                                     f"{role} has that name or listens to it ({handlers_file.relative_to(root.parent)})")
    return found


def written_once_violations(root: Path) -> list[str]:
    """e. The version normalisation and the container-host test are not written again in playbooks/."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {*CODE_SUFFIXES, ".py", ".md"}):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found.extend(f"{_where(root, path, number)}: {why}" for pattern, why in WRITTEN_ONCE if pattern.search(line))
    return found


GUARDS = [private_variable_violations, role_path_violations, os_prepare_name_violations,
          kf_defaults_dependency_violations, notify_violations, written_once_violations]


@pytest.mark.parametrize("guard", GUARDS, ids=lambda g: g.__name__)
def test_playbooks_keep_the_role_boundaries(guard) -> None:
    found = guard(PLAYBOOKS)
    assert not found, f"{guard.__doc__}\n" + "\n".join(found)


# --- c. the package table's conditions ----------------------------------------------------------------------

KF_DEFAULTS = PLAYBOOKS / "roles" / "kf_defaults" / "defaults" / "main.yml"
# Besides kf_* settings (kf_host included) and the table's own _kf_ derived switches.
TABLE_MAY_READ = {"group_names"}


class _AnyName(dict):  # type: ignore[type-arg]
    """Ansible's filters and tests (bool, version, ...): any name exists; only the variables matter here."""

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> Any:
        return lambda *args, **kwargs: None

    def get(self, name: str, default: Any = None) -> Any:
        return self[name]


_JINJA = jinja2.Environment()
_JINJA.filters = _AnyName(_JINJA.filters)
_JINJA.tests = _AnyName(_JINJA.tests)


def _undeclared(value: Any) -> set[str]:
    """The variables the templates in a value (a string, or lists and mappings of them) read."""
    if isinstance(value, str):
        return set(jinja2.meta.find_undeclared_variables(_JINJA.parse(value))) if "{" in value else set()
    if isinstance(value, dict):
        return set().union(*(_undeclared(v) for v in value.values()), set())
    if isinstance(value, list):
        return set().union(*(_undeclared(v) for v in value), set())
    return set()


def package_table_violations(defaults: dict[str, Any]) -> list[str]:
    """Each kf_packages entry's templates (needed, packages, minimum, ...) and the _kf_ switches they use
    read only kf_* settings, group_names and kf_host: whether a host needs a package
    follows from what kfinstall passes and the inventory's groups, never from a role's internals."""
    found = []
    for key, entry in (defaults.get("kf_packages") or {}).items():
        seen: set[str] = set()
        pending = [(f"kf_packages.{key}", name) for name in sorted(_undeclared(entry))]
        while pending:
            where, name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            if name.startswith("_kf_") and name in defaults:
                pending.extend((f"{where} -> {name}", n) for n in sorted(_undeclared(defaults[name])))
            elif not (name.startswith("kf_") or name in TABLE_MAY_READ):
                found.append(f"{where} reads {name}: a table condition reads kf_* settings, group_names, "
                             "kf_host or the table's own _kf_ switches only")
    return found


def test_package_table_conditions_read_public_switches_only() -> None:
    defaults = yaml.safe_load(KF_DEFAULTS.read_text(encoding="utf-8"))
    assert len(defaults["kf_packages"]) >= 8, "the table lost entries"  # the walk found the table
    found = package_table_violations(defaults)
    assert not found, f"{KF_DEFAULTS.relative_to(REPO)}:\n" + "\n".join(found)


def test_the_table_guard_follows_the_derived_switches() -> None:
    defaults = {
        "kf_packages": {
            "a": {"packages": ["x"], "needed": "{{ _kf_server | bool }}"},
            "b": {"packages": "{{ ['y'] if _glusterfs_brick else [] }}", "needed": "{{ 'kube_node' in group_names }}"},
        },
        "_kf_server": "{{ inventory_hostname in glusterfs_servers and kf_gluster_enabled }}",
    }
    assert sorted(package_table_violations(defaults)) == [
        "kf_packages.a -> _kf_server reads glusterfs_servers: a table condition reads kf_* settings, "
        "group_names, kf_host or the table's own _kf_ switches only",
        "kf_packages.a -> _kf_server reads inventory_hostname: a table condition reads kf_* settings, "
        "group_names, kf_host or the table's own _kf_ switches only",
        "kf_packages.b reads _glusterfs_brick: a table condition reads kf_* settings, group_names, "
        "kf_host or the table's own _kf_ switches only",
    ]


# --- the guards can fail: one violation of each kind --------------------------------------------------------

BROKEN_TREE = {
    "10-os.yml": """
- name: OS
  hosts: all
  vars:
    _containerd_installed_version: "{{ _os_prepare_candidates.containerd }}"
    kf_export: "{{ hostvars[groups['nfs_server'][0]]._nfs_server_export_dir }}"
  roles: [os_prepare]
""",
    "roles/os_prepare/tasks/main.yml": """
- name: OS | Probe
  ansible.builtin.set_fact:
    os_prepare_in_container: "{{ ansible_facts.virtualization_tech_guest | default([]) | length > 0 }}"
""",
    "roles/containerd/meta/main.yml": "dependencies: []\n",
    "roles/containerd/tasks/main.yml": """
# A comment naming _nfs_server_files or os_prepare_skipped is not code.
- name: Containerd | Install
  ansible.builtin.include_role:
    name: kf_defaults
    tasks_from: install.yml
- name: Containerd | Write the configuration
  kfinstall.hosts.files:
    files: ["{{ _nfs_server_files }}", "{{ lookup('template', role_path ~ '/../x/templates/a.j2') }}"]
  notify: [Containerd | Restart containerd]
  when: "'containerd' not in kf_running_units and os_prepare_installed_packages | length > 0"
""",
    "roles/containerd/templates/config.toml.j2": "version = {{ _kf_install_candidates.containerd "
                                                 "| regex_replace('^[0-9]+:', '') }}\n",
    "roles/nfs_server/handlers/main.yml": """
- name: NFS server | Restart nfs-ganesha
  listen: ganesha changed
  ansible.builtin.debug: {}
""",
    "roles/nfs_server/tasks/main.yml": """
- name: NFS server | Write
  ansible.builtin.debug: {}
  notify: [ganesha changed, NFS server | Restart nfs-ganesha, NFS server | Re-export]
  vars: {x: "{{ _nfs_server_files }}"}
""",
    "roles/kf_defaults/tasks/main.yml": "- name: Host | Probe\n  ansible.builtin.debug: {msg: '{{ _kf_probe }}'}\n",
}


def test_each_guard_names_the_file_and_line_of_a_violation(tmp_path: Path) -> None:
    root = tmp_path / "playbooks"
    for name, text in BROKEN_TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text.lstrip("\n"))
    found = {guard.__name__: [line.split(": ", 1)[0] + ": " + line.split(": ", 2)[1].split(" ")[0]
                              for line in guard(root)] for guard in GUARDS}
    assert found == {
        "private_variable_violations": [
            "playbooks/roles/containerd/tasks/main.yml:8: _nfs_server_files",
            "playbooks/roles/containerd/templates/config.toml.j2:1: _kf_install_candidates",
            "playbooks/10-os.yml:4: _containerd_installed_version",
            "playbooks/10-os.yml:4: _os_prepare_candidates",
            "playbooks/10-os.yml:5: _nfs_server_export_dir",
        ],
        "role_path_violations": ["playbooks/roles/containerd/tasks/main.yml:8: role_path"],
        "os_prepare_name_violations": ["playbooks/roles/containerd/tasks/main.yml:10: os_prepare_installed_packages"],
        "kf_defaults_dependency_violations": [
            "playbooks/roles/containerd/tasks/main.yml:10: containerd",
            "playbooks/roles/containerd/tasks/main.yml:2: containerd",
        ],
        "notify_violations": [
            "playbooks/roles/containerd/tasks/main.yml:6: notify",
            "playbooks/roles/nfs_server/tasks/main.yml:1: notify",
        ],
        "written_once_violations": [
            "playbooks/roles/containerd/templates/config.toml.j2:1: strips",
            "playbooks/roles/os_prepare/tasks/main.yml:3: tests",
        ],
    }
    assert "'NFS server | Re-export'" in "".join(notify_violations(root))
    assert "'Containerd | Restart containerd'" in "".join(notify_violations(root))
