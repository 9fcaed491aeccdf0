"""hosts.yml through Ansible's own inventory code, so whatever Ansible accepts, kfinstall accepts.

Only role groups matter to kfinstall; per-host variables stay in the inventory and are handed to
Ansible untouched. The checks here run before any SSH connection.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installer.config.problems import Problems
from installer.config.yamlfile import load_yaml

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

    @property
    def endpoint(self) -> str:
        """Address plus SSH port when one is set: two hosts may share an address on different ports."""
        return f"{self.address}:{self.port}" if self.port else self.address


@dataclass(frozen=True)
class Inventory:
    """The hosts kfinstall will touch, by role group. Empty for profiles without a host phase."""

    path: Path | None
    hosts: tuple[Host, ...]

    def in_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    def names(self, role: str) -> list[str]:
        return [h.name for h in self.in_role(role)]


def find_inventory(site: Path) -> Path | None:
    for name in INVENTORY_FILES:
        if (site / name).is_file():
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


@contextmanager
def _ansible_settings() -> Iterator[None]:
    """Set the parse settings only while Ansible loads: leaking them into os.environ would change
    every ansible command started later from this process (e.g. disable the host-list plugin)."""
    saved = {key: os.environ.get(key) for key in _PARSE_SETTINGS}
    os.environ.update(_PARSE_SETTINGS)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _parse_with_ansible(path: Path) -> Any:
    with _ansible_settings():
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader

        return InventoryManager(loader=DataLoader(), sources=[str(path)])


def load_inventory(path: Path, display: str, problems: Problems) -> Inventory | None:
    """Parse the inventory; syntax errors are reported with line:column before Ansible sees it."""
    if path.suffix in {".yml", ".yaml"} and load_yaml(path, display, problems) is None:
        return None
    try:
        manager = _parse_with_ansible(path)
    except Exception as exc:  # Ansible raises AnsibleError subclasses with multi-line text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        problems.error(
            display,
            "",
            f"Ansible cannot parse the inventory: {first}",
            "run `ansible-inventory -i <file> --list` to see Ansible's full message",
        )
        return None
    hosts = []
    for host in manager.get_hosts():
        groups = tuple(sorted(g.name for g in host.get_groups() if g.name not in {"all", "ungrouped"}))
        address = str(host.vars.get("ansible_host", host.name))
        roles = tuple(r for r in ROLE_GROUPS + LAB_ONLY_GROUPS if r in groups)
        port = host.vars.get("ansible_port")
        hosts.append(
            Host(name=host.name, address=address, roles=roles, groups=groups, port=int(port) if port else None)
        )
    return Inventory(path=path, hosts=tuple(hosts))


def check_inventory(inv: Inventory, display: str, spec: dict[str, Any], problems: Problems) -> None:
    """Role-group rules; `spec` is the merged (maybe invalid) spec dict so checks still run."""
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
    for host in inv.hosts:
        if not host.roles:
            problems.error(
                display,
                f"all.hosts.{host.name}",
                "host is in no role group",
                f"add it to one of {', '.join(ROLE_GROUPS)} or remove it",
            )


def _check_addresses(inv: Inventory, display: str, problems: Problems) -> None:
    seen: dict[str, str] = {}
    for host in inv.hosts:
        if host.endpoint in seen:
            problems.error(
                display,
                f"all.hosts.{host.name}.ansible_host",
                f"address {host.endpoint} is also used by host {seen[host.endpoint]}",
                "give every host its own ansible_host address",
            )
        else:
            seen[host.endpoint] = host.name


def _check_roles(inv: Inventory, display: str, spec: dict[str, Any], problems: Problems) -> None:
    control = inv.in_role("kube_control_plane")
    if not control:
        problems.error(
            display,
            "kube_control_plane",
            "no control-plane host",
            "add one host (or three for HA) to the kube_control_plane group",
        )
    elif len(control) % 2 == 0:
        problems.warn(
            display,
            "kube_control_plane",
            f"{len(control)} control-plane hosts: etcd needs an odd number for quorum",
            "use 1, 3 or 5 control-plane hosts",
        )
    nodes = set(inv.names("kube_node"))
    for host in inv.in_role("gpu"):
        if host.name not in nodes:
            problems.error(
                display,
                f"gpu.hosts.{host.name}",
                "gpu host is not in kube_node",
                f"add {host.name} to kube_node as well (GPU hosts run workloads)",
            )
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
        problems.error(
            display,
            "nfs_server",
            f"{len(servers)} hosts in nfs_server ({', '.join(servers)})",
            "keep exactly one NFS server host",
        )
    if nfs.get("enabled", True) and not servers:
        problems.error(
            display,
            "nfs_server",
            "spec.storage.nfs.enabled is true but no host is in nfs_server",
            "add one host to nfs_server, or set spec.storage.nfs.enabled: false",
        )


def _check_gluster(inv: Inventory, display: str, gluster: dict[str, Any], problems: Problems) -> None:
    if not gluster.get("enabled", False):
        return
    replica = gluster.get("replica", 3)
    members = inv.names("gluster")
    if isinstance(replica, int) and len(members) < replica:
        problems.error(
            display,
            "gluster",
            f"{len(members)} gluster host(s) for replica {replica}",
            f"add hosts to the gluster group (at least {replica}) or lower spec.storage.gluster.replica",
        )
