"""What `up --limit` does on a running site: which plays reach which hosts, what the limited hosts read or
set through hosts outside the limit, and what it refuses. `plan --limit` prints the same object.

Only the limited hosts get host-phase tasks. The playbooks read the others' inventory variables (group
membership, ansible_host: Ansible gives every host's inventory variables under --limit) and, for the
steps that only a member of the running cluster or volume can answer, run delegated to one host outside
the limit: the join command and the CNI on the first control plane, the trusted pool and the volume's
auth.allow on the first Gluster host. Those delegated tasks count under the limited host that asked;
nothing else runs on the others.

Refused (exit 3, before any connection), each with the safe path:
  * no host-phase run is recorded yet (--limit changes a converged site; a partial first run would leave
    a control plane or export the others never get);
  * a new host the NFS export does not admit yet: the export list is a file on the NFS server, and changing
    it restarts the server for every client, so it is not done behind the operator's back;
  * (with or without --limit: first_host_refusals) a new host listed first in kube_control_plane or gluster
    while others of that group are converged: the playbooks build from the first host of each; and an
    nfs_server that is not the converged NFS server (clients would move to an empty export).
A new Gluster host joins the trusted pool through the first Gluster host (a peer probe, as for a full run);
kfinstall never adds bricks to an existing volume, so the volume is unchanged (replace-brick is the operator's).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from installer.config.inventory import ROLE_GROUPS
from installer.config.resolved import ClusterConfig
from installer.errors import ConfigError
from installer.limit import resolve_limit
from installer.phases.base import Step

HOST_PHASES = ("preflight", "hosts")  # the phases `up --limit` runs; the others are cluster-wide
CLUSTER_HOSTS = ("kube_control_plane", "kube_node", "nfs_server")  # the hosts the NFS export admits


@dataclass(frozen=True)
class LimitedRun:
    pattern: str
    hosts: tuple[str, ...]
    added: tuple[str, ...]  # limited hosts the last recorded apply did not have
    steps: tuple[Step, ...]  # site.yml's plays with only the limited hosts
    contacts: tuple[str, ...]  # hosts outside the limit that delegated tasks connect to
    outside: tuple[str, ...]  # what the limited hosts read or set through hosts outside the limit
    refusals: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "hosts": list(self.hosts), "added": list(self.added),
                "steps": [s.as_dict() for s in self.steps], "contacts": list(self.contacts),
                "outside": list(self.outside), "refusals": list(self.refusals),
                "phases": list(HOST_PHASES)}

    def lines(self) -> list[str]:
        """The text plan's view: the hosts, each play that reaches them, what comes from outside."""
        lines = [f"Limited to {len(self.hosts)} host(s) ({self.pattern}): {', '.join(self.hosts)}; "
                 "only preflight and the host phase run (platform and verify are cluster-wide)"]
        lines += [f"  new host: {host} (not in the last recorded apply)" for host in self.added]
        for step in self.steps:
            if step.hosts:
                lines.append(f"  step {step.playbook} | {step.play}: {', '.join(step.hosts)}")
        lines += [f"  outside the limit: {note}" for note in self.outside]
        lines += [f"  refused by up --limit: {message}" for message in self.refusals]
        return lines


def check_limit_phases(only: str | None, start_at: str | None) -> None:
    """--limit selects hosts: with a cluster-wide phase asked for by name it is bad input (exit 2)."""
    asked = only or start_at
    if asked is not None and asked not in HOST_PHASES:
        option = "--only" if only else "--from"
        raise ConfigError(f"--limit runs preflight and the host phase only; {option} {asked} is cluster-wide: "
                          f"run `kfinstall up {option} {asked}` without --limit")


def limited_run(cfg: ClusterConfig, pattern: str, recorded_roles: dict[str, list[str]] | None) -> LimitedRun:
    """The limited run of `pattern` on `cfg`; `recorded_roles` are the hosts per role the host phase last ran
    to its end on (converged_roles), None when no host-phase run has finished."""
    from installer.phases.hosts import plan_steps  # the phases package imports this module's users

    hosts = resolve_limit(cfg.inventory, pattern)
    chosen = set(hosts)
    recorded = recorded_roles or {}
    known = {h for names in recorded.values() for h in names}
    added = tuple(h for h in hosts if h not in known)
    steps = tuple(Step(s.playbook, s.play, tuple(h for h in s.hosts if h in chosen)) for s in plan_steps(cfg))
    contacts, outside = _outside(cfg, chosen)
    refusals = _refusals(cfg, hosts, recorded_roles)
    return LimitedRun(pattern, hosts, added, steps, contacts, tuple(outside), tuple(refusals))


def converged_roles(cfg: ClusterConfig) -> dict[str, list[str]] | None:
    """Hosts per role that the host phase last ran to its end on (state.json); for a site whose state predates
    that, the last recorded apply's (installer.applied); None when neither has any."""
    from installer.applied import read_applied
    from installer.state import read_state

    state = read_state(cfg.state_dir)
    if state is not None and state.host_roles:
        return state.host_roles
    return ((read_applied(cfg.state_dir) or {}).get("hosts") or {}).get("roles") or None


def converged_roles_after(
    cfg: ClusterConfig, before: dict[str, list[str]], limit: Sequence[str]
) -> dict[str, list[str]]:
    """converged_roles once a host phase ran to its end: every host's roles, or under --limit the limited
    hosts' roles as they are now and the others' as they were."""
    if not limit:
        return {role: cfg.inventory.names(role) for role in ROLE_GROUPS}
    return {role: [h for h in before.get(role, []) if h not in limit]
            + [h for h in cfg.inventory.names(role) if h in limit] for role in ROLE_GROUPS}


def _first(cfg: ClusterConfig, role: str) -> str | None:
    names = cfg.inventory.names(role)
    return names[0] if names else None


def _in(cfg: ClusterConfig, chosen: set[str], roles: Iterable[str]) -> bool:
    return any(h in chosen for role in roles for h in cfg.inventory.names(role))


def _outside(cfg: ClusterConfig, chosen: set[str]) -> tuple[tuple[str, ...], list[str]]:
    contacts: list[str] = []
    notes: list[str] = []
    first_cp = _first(cfg, "kube_control_plane")
    if first_cp and first_cp not in chosen and _in(cfg, chosen, ("kube_control_plane", "kube_node")):
        contacts.append(first_cp)
        endpoint = cfg.spec.kubernetes.control_plane_endpoint or f"{first_cp}'s address in the inventory"
        notes.append(f"the join command (a new bootstrap token), the CNI manifest and node labels through {first_cp} "
                     f"(tasks delegated to it, counted under the limited host); the API endpoint is {endpoint}")
    storage = cfg.spec.storage
    server = _first(cfg, "nfs_server")
    if storage.nfs.enabled and server and server not in chosen and _in(cfg, chosen, ("kube_node",)):
        notes.append(f"the NFS server address {cfg.nfs_server_address()} from the inventory (nothing runs on {server})")
    brick = _first(cfg, "gluster")
    if storage.gluster.enabled and brick and brick not in chosen and _in(cfg, chosen, ("gluster", "kube_node")):
        contacts.append(brick)
        notes.append(f"the Gluster pool and volume {storage.gluster.volume} are read on {brick}; when a new client "
                     f"must be admitted, the volume's auth.allow is set through {brick} (an online volume setting)")
        servers = [h for h in cfg.inventory.names("gluster") if h in chosen]
        if servers:
            notes.append(f"{', '.join(servers)} join(s) the Gluster pool (peer probe through {brick}); the volume's "
                         "bricks are not changed (kfinstall creates the volume once): move a brick with "
                         "`gluster volume replace-brick` (docs/operations.md, \"Removing a node\")")
    return tuple(dict.fromkeys(contacts)), notes


def _refusals(cfg: ClusterConfig, hosts: Sequence[str], recorded: dict[str, list[str]] | None) -> list[str]:
    managed = [h.name for h in cfg.inventory.hosts if set(h.roles) & set(ROLE_GROUPS)]
    if set(hosts) == set(managed):
        return first_host_refusals(cfg, recorded)  # every host: the same run as without --limit
    if not recorded:
        return [f"no successful host-phase run of {cfg.name} is recorded in {cfg.state_dir}: run `kfinstall up` "
                "on every host first; --limit changes a converged site"]
    return first_host_refusals(cfg, recorded) + _nfs_refusal(cfg, hosts, recorded)


def first_host_refusals(cfg: ClusterConfig, recorded: dict[str, list[str]] | None) -> list[str]:
    """A new host listed first in kube_control_plane or gluster while hosts of that group are converged.

    The playbooks build the cluster from the first host of each (kubernetes 0030-init: `kubeadm init` where
    admin.conf is missing; glusterfs volume.yml: the pool and the volume read and created there). A new first
    control plane would start a second cluster beside the running one (kfinstall's kubeconfig then fetched
    from it, and with kube-vip a second holder of the API address); a new first Gluster host is outside the
    trusted pool. Listing a replacement in the failed host's place is the natural edit, so it is refused
    (exit 3, for `up` with or without --limit) with the order that works."""
    refusals = []
    for role, what in (("kube_control_plane", "runs `kubeadm init` there and would start a second cluster beside "
                        "the running one (kfinstall's kubeconfig then fetched from it)"),
                       ("gluster", "reads and creates the pool and the volume there, and it is outside the "
                        "trusted pool")):
        if role == "gluster" and not cfg.spec.storage.gluster.enabled:
            continue
        names = cfg.inventory.names(role)
        converged = [h for h in names if h in ((recorded or {}).get(role) or [])]
        if names and converged and names[0] not in converged:
            refusals.append(
                f"{names[0]} is listed first in {role} but is not one of its converged hosts "
                f"({', '.join(converged)}): the host phase {what}. Safe path: in hosts.yml list {converged[0]} "
                f"first in {role} and {names[0]} after it, then run again")
    return refusals + _nfs_server_moved(cfg, recorded)


def _nfs_server_moved(cfg: ClusterConfig, recorded: dict[str, list[str]] | None) -> list[str]:
    """nfs_server names another host than the converged NFS server: that host would serve an empty export and
    every client's mount would move to it (the data stays on the old server, unserved). `node remove` refuses
    the NFS server for the same reason; an edit of hosts.yml must not get round it."""
    before = (recorded or {}).get("nfs_server") or []
    now = cfg.inventory.names("nfs_server")
    if not cfg.spec.storage.nfs.enabled or not before or not now or now[0] in before:
        return []
    return [f"nfs_server is {now[0]} in hosts.yml but the converged NFS server is {', '.join(before)}: {now[0]} "
            f"would serve an empty {cfg.spec.storage.nfs.export_path} and every client's mount would move to it. "
            f"Safe path: put {before[0]} back in nfs_server (kfinstall does not move an NFS server; to retire "
            "the site: `kfinstall backup --cluster`, `kfinstall down --purge-data`, `kfinstall reset`)"]


def _nfs_refusal(cfg: ClusterConfig, hosts: Sequence[str], recorded: dict[str, list[str]]) -> list[str]:
    """A new cluster host the NFS export on a server outside the limit does not admit yet."""
    nfs = cfg.spec.storage.nfs
    server = _first(cfg, "nfs_server")
    if not nfs.enabled or server is None or server in hosts:
        return []
    admitted = {h for role in CLUSTER_HOSTS for h in recorded.get(role) or []}
    cluster = {h for role in CLUSTER_HOSTS for h in cfg.inventory.names(role)}
    by_name = {h.name: h for h in cfg.inventory.hosts}
    left_out = [h for h in hosts if h in cluster and h not in admitted
                and not covered(by_name[h].address, nfs.allowed_clients)]
    if not left_out:
        return []
    names = ",".join(left_out)
    return [f"the NFS export on {server} does not admit {', '.join(left_out)} yet (its allowed clients are the hosts "
            f"of the last recorded apply and spec.storage.nfs.allowedClients): run `kfinstall up --limit "
            f"'{names},{server}'` ({server} then changes only its export list), or add their network to "
            "spec.storage.nfs.allowedClients"]


def covered(address: str, allowed: Iterable[str]) -> bool:
    """Whether an allowed-clients list already admits `address` (an IP in a listed network, or listed as is)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address in allowed
    for entry in allowed:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a DNS name: cannot be compared with an address without resolving it
    return False
