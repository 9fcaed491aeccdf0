"""hosts.yml through Ansible's own inventory code, so whatever Ansible accepts, kfinstall accepts.

Only role groups matter to kfinstall; per-host variables stay in the inventory and are handed to
Ansible untouched. The checks here run before any SSH connection.

The inventory is the operator's Ansible code: Ansible templates its values and obeys connection
variables such as ansible_ssh_common_args or ansible_python_interpreter, exactly as it would for
`ansible-playbook -i`. kfinstall does not reinterpret those. What kfinstall itself reads and passes on
(the host names, ansible_host, ansible_port, ansible_user and the roles' documented peer address
glusterfs_address) must be literal and well-formed: a host name or address reaches ssh's command line,
kubeadm's certificate SANs, NFS export lists and gluster peer commands, so `-oProxyCommand=...`, `;`,
spaces, lists or `{{ }}` there are refused (exit 2) before any connection.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from installer.config.addresses import address_problem, inventory_name_problem, port_problem, user_problem
from installer.config.legacy_groups import ACCEPTED, REFUSED, known_group
from installer.config.problems import Problems
from installer.config.refusals import refuse
from installer.config.safefile import read_text_or_report
from installer.config.ssh import SSH_TARGET_VARS, SshTarget, read_target
from installer.config.yamlfile import INVENTORY_LIMITS, ScannedYaml, check_vars_files, scan_yaml

ROLE_GROUPS = ("kube_control_plane", "kube_node", "gpu", "nfs_server", "gluster")
LAB_ONLY_GROUPS = ("lab_vm",)
INVENTORY_FILES = ("hosts.yml", "hosts.yaml", "hosts.ini", "hosts")


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    port: int | None = None
    ssh: SshTarget | None = None  # how Ansible's ssh reaches it (installer/config/ssh.py)

    @property
    def endpoint(self) -> str:
        """Address plus SSH port when one is set: two hosts may share an address on different ports."""
        return f"{self.address}:{self.port}" if self.port else self.address


@dataclass(frozen=True)
class Inventory:
    """The hosts kfinstall will touch, by role group. Empty for profiles without a host phase."""

    path: Path | None
    hosts: tuple[Host, ...]
    # Ansible's InventoryManager that read `path` (None without one): plays' host patterns resolve on it.
    ansible: Any = field(default=None, repr=False, compare=False)
    # Where hosts and groups are written in `path`, for problem messages (None without a file).
    where: _Where | None = field(default=None, repr=False, compare=False)
    # (legacy group, role group) pairs read as that role group (installer/config/legacy_groups.py): the
    # legacy group is a child of the role group here and in every ansible-playbook run.
    aliases: tuple[tuple[str, str], ...] = ()

    def in_role(self, role: str) -> list[Host]:
        """The role's hosts in the order Ansible's `groups[role]` lists them (the group's own order, then its
        children's), which the playbooks take the first of (kubeadm init, the Gluster pool, the NFS server);
        all.hosts may list them in another order."""
        members = [h for h in self.hosts if role in h.roles]
        group = self.ansible.groups.get(role) if self.ansible is not None else None
        if group is None:
            return members
        position = {h.name: n for n, h in enumerate(group.get_hosts())}
        return sorted(members, key=lambda h: position.get(h.name, len(position)))

    def pattern_hosts(self, pattern: str | list[str]) -> list[str]:
        """The hosts a play's `hosts:` pattern targets, resolved by Ansible itself (a:b, a:&b, a:!b, ...)."""
        if self.ansible is None:
            return []
        with _quiet_pattern_mismatch():
            return [h.name for h in self.ansible.get_hosts(pattern)]

    def names(self, role: str) -> list[str]:
        return [h.name for h in self.in_role(role)]


@contextmanager
def _quiet_pattern_mismatch() -> Iterator[None]:
    """A play whose group has no host is normal in a plan (no gluster hosts): Ansible's "Could not match
    supplied host pattern" warning is off while kfinstall resolves patterns, and only then; the setting
    (HOST_PATTERN_MISMATCH, read at each match) is restored, and ansible-playbook runs never see it."""
    from ansible import constants

    before = constants.HOST_PATTERN_MISMATCH
    constants.HOST_PATTERN_MISMATCH = "ignore"
    try:
        yield
    finally:
        constants.HOST_PATTERN_MISMATCH = before


def find_inventory(site: Path) -> Path | None:
    """The first inventory file present; any kind of file counts, so that a FIFO or device named
    hosts.yml is refused by the reader instead of reported as missing."""
    for name in INVENTORY_FILES:
        if os.path.lexists(site / name) and not (site / name).is_dir():
            return site / name
    return None


# Read by Ansible when its constants module is first imported: fail instead of warning on an
# unparsable source, and try only the two plugins users write by hand (faster, clearer).
_PARSE_SETTINGS = {
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
    "ANSIBLE_INVENTORY_ENABLED": "yaml,ini",
    "ANSIBLE_LOCALHOST_WARNING": "False",
    "ANSIBLE_NOCOLOR": "True",
}


# The same settings as ansible.constants names them (InventoryManager reads these attributes at parse time).
_PARSE_CONSTANTS: dict[str, Any] = {
    "INVENTORY_UNPARSED_IS_FAILED": True,
    "INVENTORY_ANY_UNPARSED_IS_FAILED": True,
    "INVENTORY_ENABLED": ["yaml", "ini"],
    "LOCALHOST_WARNING": False,
}


@contextmanager
def _ansible_settings() -> Iterator[None]:
    """Set the parse settings only while Ansible loads: leaking them into os.environ would change
    every ansible command started later from this process (e.g. disable the host-list plugin)."""
    saved = {key: os.environ.get(key) for key in _PARSE_SETTINGS}
    os.environ.update(_PARSE_SETTINGS)
    # The environment is read once, when ansible.constants is first imported: when something in this
    # process imported it earlier, the same settings are put on the constants for this parse only.
    from ansible import constants

    kept = {name: getattr(constants, name) for name in _PARSE_CONSTANTS}
    for name, value in _PARSE_CONSTANTS.items():
        setattr(constants, name, value)
    try:
        yield
    finally:
        for name, value in kept.items():
            setattr(constants, name, value)
        for key, env_value in saved.items():
            if env_value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = env_value


def _parse_with_ansible(path: Path) -> tuple[Any, Any]:
    """Ansible's inventory and the data loader it read with (the variable manager reuses both)."""
    with _ansible_settings():
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader

        class _UncachedIsUnshared(DataLoader):
            """Ansible deep-copies every file it parses so that its file cache stays pristine; a file
            read with cache='none' (the inventory plugins read their source so) is in no cache, so
            the copy (~0.2 s CPU on a 1,000-host hosts.yml, a fifth of the parse) protects nothing."""

            def load_from_file(self, file_name: str, cache: str = "all", unsafe: bool = False, **kwargs: Any) -> Any:
                return super().load_from_file(file_name, cache=cache, unsafe=unsafe or cache == "none", **kwargs)

        loader = _UncachedIsUnshared()
        return InventoryManager(loader=loader, sources=[str(path)]), loader


def _readable(path: Path, display: str, problems: Problems) -> str | None:
    """An INI inventory's text: a regular UTF-8 file within INVENTORY_LIMITS' size before Ansible opens it."""
    return read_text_or_report(path, display, problems, INVENTORY_LIMITS.max_bytes, f"create {path}")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__


def load_inventory(path: Path, display: str, problems: Problems) -> Inventory | None:
    """Parse the inventory once, with Ansible; before that a YAML file is checked within limits (syntax
    errors with line:column) by an event scan that also indexes where each key is written."""
    source: ScannedYaml | str | None
    if path.suffix in {".yml", ".yaml"}:
        source = scan_yaml(path, display, problems, limits=INVENTORY_LIMITS)
    else:
        source = _readable(path, display, problems)
    if source is None:
        return None
    # Ansible reads group_vars/ and host_vars/ with PyYAML, which expands aliases: bounded check first.
    if not check_vars_files(path.parent, problems):
        return None
    try:
        manager, loader = _parse_with_ansible(path)
    except Exception as exc:  # Ansible raises AnsibleError subclasses with multi-line text
        problems.error(
            display,
            "",
            f"Ansible cannot parse the inventory: {_first_line(exc)}",
            "run `ansible-inventory -i <file> --list` to see Ansible's full message",
        )
        return None
    connection = _connection_vars(manager, loader, display, problems)
    where = _Where(path, display, source)
    aliases = _adopt_legacy_groups(manager, where, problems)
    hosts = []
    for host in manager.get_hosts():
        groups = tuple(sorted(g.name for g in host.get_groups() if g.name not in {"all", "ungrouped"}))
        roles = tuple(r for r in ROLE_GROUPS + LAB_ONLY_GROUPS if r in groups)
        values = connection(host)
        # A bad value is reported (exit 2 before anything runs) and kept out of the Host, so the
        # role-group rules below still run on every host without tripping over it.
        bad = _check_host(host.name, values, where, problems)
        address = _used(values, bad, ("ansible_host", "ansible_ssh_host"))
        port = _used(values, bad, ("ansible_port", "ansible_ssh_port"))
        hosts.append(
            Host(name=host.name, address=str(address or host.name), roles=roles, groups=groups,
                 port=int(port) if port else None,
                 ssh=read_target(host.name, values, display, problems,
                                 locate=functools.partial(where.value, host.name)))
        )
    return Inventory(path=path, hosts=tuple(hosts), ansible=manager, where=where, aliases=aliases)


def _adopt_legacy_groups(manager: Any, where: _Where, problems: Problems) -> tuple[tuple[str, str], ...]:
    """Make each ACCEPTED legacy group with hosts a child of its role group in Ansible's parse, as
    Kubespray's dynamic_groups does at run time, so roles, plays' patterns and --limit all see it.
    A legacy group that is already the role group's parent would loop: refused unless it adds no host."""
    adopted = []
    for legacy, name in ACCEPTED.items():
        group = manager.groups.get(legacy)
        if group is None or not group.get_hosts():
            continue
        modern = manager.groups.get(manager.add_group(name.modern))
        if modern in group.get_descendants():
            extra = sorted(h.name for h in group.get_hosts() if h not in modern.get_hosts())
            if extra:
                file, line, column = where.group(legacy)
                problems.error(file, legacy, f"group {legacy} is the parent of {name.modern} and also holds "
                               f"{', '.join(extra)}: kfinstall cannot read it as {name.modern}",
                               f"move {', '.join(extra)} into {name.modern}", line=line, column=column)
            continue
        modern.add_child_group(group)
        adopted.append((legacy, name.modern))
    if adopted:
        manager.clear_pattern_cache()
    return tuple(adopted)


# What kfinstall reads from each host: the address it connects to and passes on, the SSH port and user,
# and the gluster role's documented peer address. Everything else stays the operator's Ansible business.
# Ansible's older names (ansible_ssh_host, _port, _user) still work, and win over the new ones when both
# are set: each is checked like the name it stands for.
CONNECTION_VARS = (
    "ansible_host", "ansible_port", "ansible_user", "glusterfs_address",
    "ansible_ssh_host", "ansible_ssh_port", "ansible_ssh_user",
)
_CHECKS = {
    "ansible_host": address_problem,
    "ansible_port": port_problem,
    "ansible_user": user_problem,
    "glusterfs_address": address_problem,
    "ansible_ssh_host": address_problem,
    "ansible_ssh_port": port_problem,
    "ansible_ssh_user": user_problem,
}
_FIXES = {
    "ansible_host": "write the host's literal IP address or DNS name (one value, no spaces or templates)",
    "ansible_port": "write the SSH port as a number from 1 to 65535",
    "ansible_user": "write the literal login name, e.g. root or ubuntu",
    "glusterfs_address": "write the literal IP address or DNS name the gluster peers use",
}
_FIXES |= {f"ansible_ssh_{k}": _FIXES[f"ansible_{k}"] for k in ("host", "port", "user")}


def _used(values: dict[str, Any], bad: set[str], names: tuple[str, ...]) -> Any:
    """The value Ansible uses among its names for one setting (the last one set), None if that one is bad."""
    found = [n for n in names if values.get(n) not in (None, "")]
    return values[found[-1]] if found and found[-1] not in bad else None


def _connection_vars(manager: Any, loader: Any, display: str, problems: Problems) -> Any:
    """host -> its effective CONNECTION_VARS, as Ansible will see them: host and group variables of
    the inventory file plus group_vars/ and host_vars/ beside it (Ansible's own variable manager, so
    precedence is Ansible's). Values are read raw, never templated."""
    from ansible.vars.manager import VariableManager

    variables = VariableManager(loader=loader, inventory=manager)
    fell_back = False

    def effective(host: Any) -> dict[str, Any]:
        nonlocal fell_back
        if not fell_back:
            try:
                with _ansible_settings():
                    found = variables.get_vars(host=host, include_hostvars=False)
                return {key: found.get(key) for key in CONNECTION_VARS + SSH_TARGET_VARS}
            except Exception as exc:  # e.g. a vault-encrypted group_vars file and no vault password
                fell_back = True
                problems.warn(
                    display,
                    "group_vars",
                    f"group_vars/host_vars could not be read ({_first_line(exc)}); connection settings "
                    "there are checked only when Ansible runs",
                    "set ANSIBLE_VAULT_PASSWORD_FILE, or keep ansible_host/ansible_port/ansible_user in hosts.yml",
                )
        merged = {**_group_vars(host), **host.vars}
        return {key: merged.get(key) for key in CONNECTION_VARS + SSH_TARGET_VARS}

    return effective


def _group_vars(host: Any) -> dict[str, Any]:
    from ansible.inventory.helpers import get_group_vars

    return dict(get_group_vars(host.get_groups()))


# Host patterns of kfinstall's plays: Ansible resolves a pattern that is a host's name to that host before any
# group of the name (InventoryManager._evaluate_patterns), so a host called `gpu` would take `hosts: gpu`.
PLAY_GROUPS = (*ROLE_GROUPS, *LAB_ONLY_GROUPS, "all", "ungrouped")


def _check_host(name: str, values: dict[str, Any], where: _Where, problems: Problems) -> set[str]:
    """Report a bad host name or connection value; returns the keys of the bad values."""
    bad = set()
    if name in PLAY_GROUPS:
        file, line, column = where.host(name)
        problems.error(file, f"all.hosts.{name}", f"host name {name} is also the name of a group kfinstall's plays "
                       f"target: Ansible resolves `hosts: {name}` (and --limit {name}) to this host, not to the group",
                       "give the host another name and put its address in ansible_host", line=line, column=column)
    name_problem = inventory_name_problem(name)
    if name_problem is not None:
        file, line, column = where.host(name)
        problems.error(
            file,
            f"all.hosts.{name[:24]}",
            f"{name_problem}: Ansible would pass it to ssh and kubeadm as is",
            "name hosts with letters, digits, '-', '_' and '.' (not starting with '-'), "
            "and put the address in ansible_host",
            line=line,
            column=column,
        )
    for key, check in _CHECKS.items():
        value = values.get(key)
        problem = check(value) if value is not None else None
        if problem is None:
            continue
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            problem += " (templates are not allowed here: kfinstall checks and passes on the literal value)"
        file, line, column = where.value(name, value)
        # A value from group_vars/ or host_vars/ is one problem at its line, not one per host.
        where_key = f"all.hosts.{name[:24]}.{key}" if file == where.display else key
        problems.error(file, where_key, problem, _FIXES[key], line=line, column=column)
        bad.add(key)
    return bad


class _Where:
    """file:line:column of a host entry, a group or a host's value, for problem messages.

    Values carry their origin (file, line) in ansible-core 2.19 and later; otherwise the place comes
    from the inventory file itself: the YAML scan's key index, or the lines of an INI file."""

    def __init__(self, path: Path, display: str, source: ScannedYaml | str | None) -> None:
        self.path, self.display, self.source = path, display, source

    @cached_property
    def _places(self) -> _Places:
        if isinstance(self.source, ScannedYaml):
            return _yaml_places(self.source)
        return _ini_places(self.source) if isinstance(self.source, str) else _Places()

    def _at(self, place: tuple[int, int] | None) -> tuple[str, int | None, int | None]:
        return (self.display, *place) if place is not None else (self.display, None, None)

    def host(self, name: str, group: str | None = None) -> tuple[str, int | None, int | None]:
        """The host's first entry (under `group` when given and found there)."""
        place = self._places.members.get((group, name)) if group is not None else None
        return self._at(place or self._places.hosts.get(name))

    def group(self, name: str) -> tuple[str, int | None, int | None]:
        return self._at(self._places.groups.get(name))

    def host_key(self, name: str, key: str) -> tuple[str, int | None, int | None]:
        """A host's own `key` written in the inventory file, else the host's entry."""
        return self._at(self._places.values.get((name, key)) or self._places.hosts.get(name))

    def value(self, name: str, value: Any) -> tuple[str, int | None, int | None]:
        origin = _origin(value)
        if origin is not None:
            source, line, column = origin
            return self._display_of(source), line, column
        return self.host(name)

    def _display_of(self, source: str) -> str:
        """A file beside the inventory by its relative name (group_vars/all.yml), others in full."""
        try:
            relative = Path(source).resolve().relative_to(self.path.resolve().parent)
        except (ValueError, OSError):
            return source
        return self.display if relative == Path(self.path.name) else str(relative)


def _origin(value: Any) -> tuple[str, int | None, int | None] | None:
    try:
        from ansible._internal._datatag._tags import Origin  # ansible-core >= 2.19; private, so optional
    except ImportError:
        return None
    tag = Origin.get_tag(value)
    if tag is None or not tag.path:
        return None
    return str(tag.path), tag.line_num, tag.col_num


@dataclass
class _Places:
    """First (line, column) of each host entry, group, host-in-group entry and host value in a file."""

    hosts: dict[str, tuple[int, int]] = field(default_factory=dict)
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)
    members: dict[tuple[str | None, str], tuple[int, int]] = field(default_factory=dict)
    values: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


def _yaml_places(doc: ScannedYaml) -> _Places:
    """Ansible's YAML inventory: groups are top-level keys or keys under `children:`, hosts are keys
    under `hosts:`, and a host's variables are keys below its entry."""
    places = _Places()
    for path, place in doc.keys.items():
        if not all(isinstance(part, str) for part in path):
            continue
        parts = [str(part) for part in path]
        if len(parts) == 1 or (len(parts) >= 2 and parts[-2] == "children"):
            places.groups.setdefault(parts[-1], place)
        if len(parts) >= 2 and parts[-2] == "hosts":
            places.hosts.setdefault(parts[-1], place)
            places.members.setdefault((parts[-3] if len(parts) >= 3 else None, parts[-1]), place)
        elif len(parts) >= 3 and parts[-3] == "hosts":
            places.values.setdefault((parts[-2], parts[-1]), place)
    return places


def _ini_places(text: str) -> _Places:
    """Ansible's INI inventory: `[group]` lists hosts (first word of a line, then key=value pairs),
    `[group:children]` lists groups, `[group:vars]` holds variables; `#` and `;` start comments.
    Host ranges (node[01:10]) are not expanded: those hosts are placed by file only."""
    places = _Places()
    group, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        column = len(raw) - len(raw.lstrip()) + 1
        if line.startswith("[") and line.endswith("]"):
            group, _, kind = line[1:-1].strip().partition(":")
            kind = kind or "hosts"
            places.groups.setdefault(group, (number, column + 1))
            continue
        words = line.split()
        if kind == "children":
            places.groups.setdefault(words[0], (number, column))
        elif kind == "hosts":
            places.hosts.setdefault(words[0], (number, column))
            places.members.setdefault((group, words[0]), (number, column))
            for word in words[1:]:
                key = word.partition("=")[0]
                places.values.setdefault((words[0], key), (number, raw.find(word) + 1))
    return places


def check_inventory(inv: Inventory, display: str, spec: dict[str, Any], problems: Problems) -> None:
    """Role-group rules; `spec` is the merged (maybe invalid) spec dict so checks still run. Each
    problem about hosts.yml gets the line:column its key names (see _place_problems)."""
    first = len(problems.items)
    _check_role_groups(inv, display, spec, problems)
    if inv.where is not None:
        _place_problems(inv, inv.where, problems, first)


def _check_role_groups(inv: Inventory, display: str, spec: dict[str, Any], problems: Problems) -> None:
    if spec.get("profile") == "gcp":
        if inv.hosts:
            problems.error(
                display,
                "all",
                f"the gcp profile creates its nodes with GKE, but {len(inv.hosts)} host(s) are listed",
                "empty hosts.yml (keep `all: {}`) or choose a host-based profile",
            )
        return
    _check_presence(inv, display, problems)
    _check_legacy_groups(inv, display, problems)
    _check_bastion(inv, display, problems)
    _check_near_role_groups(inv, display, problems)
    _check_addresses(inv, display, problems)
    _check_roles(inv, display, spec, problems)


def _check_presence(inv: Inventory, display: str, problems: Problems) -> None:
    if not inv.hosts:
        problems.error(
            display,
            "all",
            "no hosts in the inventory",
            "list your machines under the role groups kube_control_plane, kube_node, ...",
        )
    others = []
    for host in inv.hosts:
        if not host.roles and any(known_group(group) for group in host.groups):
            # Another tool's host (Kubespray, DeepOps): left alone, or named by its group's refusal.
            refused = any(g in REFUSED and not inv.in_role(REFUSED[g].modern) for g in host.groups)
            others += [] if refused or "bastion" in host.groups else [host]
        elif not host.roles:
            near = [(group, role) for group in host.groups if (role := near_role_group(group)) is not None]
            problems.error(
                display,
                f"all.hosts.{host.name}",
                "host is in no role group" + (f" (it is in {near[0][0]}, not {near[0][1]})" if near else ""),
                f"rename the group {near[0][0]} to {near[0][1]}" if near
                else f"add it to one of {', '.join(ROLE_GROUPS)} or remove it",
            )
    if others:
        shown = ", ".join(f"{h.name} ({', '.join(h.groups)})" for h in others[:5])
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        problems.warn(display, "all", f"{len(others)} host(s) in none of kfinstall's role groups but in groups of "
                      f"other tools (Kubespray, DeepOps) are left alone: {shown}{more}",
                      f"add a host to one of {', '.join(ROLE_GROUPS)} if kfinstall should manage it")


def _check_bastion(inv: Inventory, display: str, problems: Problems) -> None:
    """Kubespray's bastion (the first host of `bastion`): kfinstall writes its key file into the site's
    ssh_config (installer/adapters/ssh.py), so the path must be literal and one line."""
    for jump in (h for h in inv.hosts if "bastion" in h.groups and h.roles):
        # Kubespray's bastion is the way in, never a cluster host: kfinstall would configure it and reach it
        # directly while sending the others through it.
        problems.error(display, f"all.hosts.{jump.name}", f"host {jump.name} is in the bastion group and also in "
                       f"{', '.join(jump.roles)}: a jump host is never a cluster host kfinstall configures",
                       f"take {jump.name} out of {', '.join(jump.roles)}, or out of bastion if it is a cluster host")
    first = inv.pattern_hosts("bastion[0]")
    host = next((h for h in inv.hosts if first and h.name == first[0]), None)
    identity = host.ssh.identity if host is not None and host.ssh is not None else None
    if host is None or identity is None:
        return
    if "{{" in identity or "{%" in identity or '"' in identity or not identity.isprintable():
        problems.error(display, f"all.hosts.{host.name}.ansible_ssh_private_key_file",
                       "the bastion's key file must be a literal path (no template, quote or control character): "
                       "kfinstall writes it into the site's ssh_config for the jump",
                       "write the key file's path itself")


def _check_legacy_groups(inv: Inventory, display: str, problems: Problems) -> None:
    """A warning per legacy group read as a role group (at the group's line), naming the rename."""
    for legacy, modern in inv.aliases:
        count = sum(1 for h in inv.hosts if legacy in h.groups)
        problems.warn(display, legacy,
                      f"group {legacy} ({count} host(s)) is {ACCEPTED[legacy].origin} for {modern}: kfinstall reads "
                      f"it as {modern}", f"rename the group {legacy} to {modern} (group_vars/{legacy}.yml too, if "
                      "you have one): the old name is accepted for now")


# Names operators reach for that are not kfinstall's role groups: Kubespray's pre-2.16 spellings and
# the gluster package's name. Anything else counts as a near miss only when one edit away (see below).
_KNOWN_MISSES = {"kube_master": "kube_control_plane", "kube-master": "kube_control_plane",
                 "glusterfs": "gluster", "nfs": "nfs_server"}


def near_role_group(group: str) -> str | None:
    """The role group `group` was probably meant to be: the same but for case or '-' for '_', a
    plural, a known older name, or (for names of 5+ letters, so a `cpu` group is not taken for `gpu`)
    one letter added, dropped, changed or swapped. None for a role group itself or anything else."""
    if group in ROLE_GROUPS + LAB_ONLY_GROUPS:
        return None
    plain = group.lower().replace("-", "_")
    if plain in _KNOWN_MISSES:
        return _KNOWN_MISSES[plain]
    for role in ROLE_GROUPS:
        if plain in (role, role + "s") or (len(role) >= 5 and _one_edit_apart(plain, role)):
            return role
    return None


def _one_edit_apart(a: str, b: str) -> bool:
    """One character inserted, deleted or replaced, or two neighbours swapped."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long = sorted((a, b), key=len)
    cut = next((i for i in range(len(short)) if short[i] != long[i]), len(short))
    return short[cut:] == long[cut + 1:]


def _check_near_role_groups(inv: Inventory, display: str, problems: Problems) -> None:
    """A group one slip away from a role group (kube_nodes, kube-node, gpus) gives its hosts no role.
    When the role group it resembles is empty, `up` would build the cluster without that role (no
    workers, or GPU hosts without a driver): an error. Beside a populated role group the name may be
    the operator's own (a group for group_vars): a warning. A group with no host changes nothing."""
    members: dict[str, int] = {}
    for host in inv.hosts:
        for group in host.groups:
            members[group] = members.get(group, 0) + 1
    for name, count in sorted(members.items()):
        role = near_role_group(name)
        if role is None or name in ACCEPTED:
            continue
        if not inv.in_role(role):
            why = f" ({REFUSED[name].origin}: {REFUSED[name].why})" if name in REFUSED else ""
            problems.error(display, name, f"group {name} ({count} host(s)) is not a role group, and {role} is "
                           f"empty: up would give these hosts no {role} role{why}",
                           f"rename the group {name} to {role}")
        else:
            problems.warn(display, name, f"group {name} looks like the role group {role}, but kfinstall gives "
                          f"its hosts no role from it", f"rename it to {role} if that was meant, or give it a name "
                          "further from the role groups")


def _place_problems(inv: Inventory, where: _Where, problems: Problems, first: int) -> None:
    """Add line:column to the problems from `first` on that name the inventory file without a line,
    from their key: `G.hosts.H` is host H's entry in group G (`all` for its first entry), `...H.VAR`
    a variable written on it, and a bare group name that group's entry."""
    names = {host.name for host in inv.hosts}
    for index in range(first, len(problems.items)):
        problem = problems.items[index]
        if problem.file != where.display or problem.line is not None:
            continue
        group, _, rest = problem.key.partition(".hosts.")
        if rest in names:
            place = where.host(rest, None if group == "all" else group)
        elif rest and "." in rest and rest.rsplit(".", 1)[0] in names:
            place = where.host_key(*rest.rsplit(".", 1))
        elif problem.key and "." not in problem.key:
            place = where.group(problem.key)
        else:
            continue
        if place[1] is not None:
            problems.items[index] = replace(problem, line=place[1], column=place[2])


def _machine(host: Host) -> tuple[str, int]:
    """The address and port ssh reaches, however written: kfinstall keeps its state per host name but undoes
    it per machine (the record on the host), so one machine under two names must not pass as two."""
    try:
        address = ipaddress.ip_address(host.address).compressed  # 2001:DB8:0::21 is 2001:db8::21
    except ValueError:
        address = host.address.lower()  # a DNS name: its case means nothing
    return address, host.port or 22


def _check_addresses(inv: Inventory, display: str, problems: Problems) -> None:
    seen: dict[tuple[str, int], str] = {}
    for host in inv.hosts:
        machine = _machine(host)
        if machine in seen:
            problems.error(
                display,
                f"all.hosts.{host.name}.ansible_host",
                f"address {host.endpoint} is also used by host {seen[machine]}",
                "give every host its own ansible_host address",
            )
        else:
            seen[machine] = host.name


def _check_roles(inv: Inventory, display: str, spec: dict[str, Any], problems: Problems) -> None:
    control = inv.in_role("kube_control_plane")
    if not control:
        refuse(problems, "control-plane-missing", display, "kube_control_plane", "no control-plane host",
               "add one host (or three for HA) to the kube_control_plane group")
    elif len(control) % 2 == 0:
        # The host phase asserts it too (playbooks/00-validate.yml): refused here, before any host is touched.
        refuse(problems, "control-plane-even", display, "kube_control_plane",
               f"{len(control)} control-plane hosts: etcd needs an odd number for quorum",
               f"use 1, 3 or 5 control-plane hosts (add or remove one of {', '.join(h.name for h in control)})")
    nodes = set(inv.names("kube_node"))
    if inv.hosts and not nodes:
        refuse(problems, "kube-node-missing", display, "kube_node", "no host in kube_node: nothing would run the "
               "platform's workloads", "add the worker hosts (or the control-plane host of a one-machine site) to "
               "the kube_node group")
    for host in inv.in_role("gpu"):
        if host.name not in nodes:
            refuse(problems, "gpu-not-kube-node", display, f"gpu.hosts.{host.name}", "gpu host is not in kube_node",
                   f"add {host.name} to kube_node as well (GPU hosts run workloads)")
    storage = _mapping(spec.get("storage"))
    _check_nfs(inv, display, _mapping(storage.get("nfs")), problems)
    _check_gluster(inv, display, _mapping(storage.get("gluster")), problems)
    if spec.get("profile") != "lab":
        for host in inv.in_role("lab_vm"):
            problems.error(
                display,
                f"lab_vm.hosts.{host.name}",
                "the lab_vm group is only for the lab profile",
                "move the host to a role group or remove it",
            )


def _mapping(value: Any) -> dict[str, Any]:
    """The spec may be invalid here (rules still run beside model errors): treat non-maps as empty."""
    return value if isinstance(value, dict) else {}


def _check_nfs(inv: Inventory, display: str, nfs: dict[str, Any], problems: Problems) -> None:
    servers = inv.names("nfs_server")
    if len(servers) > 1:
        refuse(problems, "nfs-server-several", display, "nfs_server",
               f"{len(servers)} hosts in nfs_server ({', '.join(servers)})", "keep exactly one NFS server host")
    if nfs.get("enabled", True) and not servers:
        refuse(problems, "nfs-server-missing", display, "nfs_server",
               "spec.storage.nfs.enabled is true but no host is in nfs_server",
               "add one host to nfs_server, or set spec.storage.nfs.enabled: false")


def _check_gluster(inv: Inventory, display: str, gluster: dict[str, Any], problems: Problems) -> None:
    if not gluster.get("enabled", False):
        return
    replica = gluster.get("replica", 3)
    members = inv.names("gluster")
    if not isinstance(replica, int) or isinstance(replica, bool) or replica < 1:
        return  # the model reports it
    if len(members) < replica:
        refuse(problems, "gluster-hosts", display, "gluster", f"{len(members)} gluster host(s) for replica {replica}",
               f"add hosts to the gluster group (at least {replica}) or lower spec.storage.gluster.replica")
    elif len(members) % replica:
        # A replica-N volume takes its bricks N at a time (the glusterfs role asserts it too).
        refuse(problems, "gluster-hosts", display, "gluster",
               f"{len(members)} gluster hosts for replica {replica}: a replica {replica} volume needs a multiple of "
               f"{replica}", f"use {len(members) - len(members) % replica} or "
               f"{len(members) + replica - len(members) % replica} gluster hosts, "
               "or change spec.storage.gluster.replica")
