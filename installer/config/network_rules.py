"""Address rules across kfinstall.yaml and the inventory: the cluster's ranges must not take the hosts' addresses.

kubeadm, Calico, kube-vip and MetalLB accept overlapping ranges without a word and the cluster then
misroutes traffic (a pod network holding a host's address) or two machines answer for one IP (a
kube-vip endpoint on a host, a MetalLB pool holding one). Only literal IP addresses are compared:
a host named by a DNS name is not resolved (validate connects to nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from installer.config.inventory import Host, Inventory
from installer.config.model import ClusterFile
from installer.config.problems import Problems
from installer.config.refusals import refuse

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Where = Callable[[str], tuple[str, int | None, int | None]]  # key path -> (file, line, column)
SHOWN = 3  # hosts named in one message


@dataclass(frozen=True)
class PoolEntry:
    """One entry of spec.networking.metallb.addresses: a CIDR or an a-b range (both ends included)."""

    text: str
    first: Address
    last: Address

    def __contains__(self, address: Address) -> bool:
        # Compared as integers: an IPv4 and an IPv6 address are never in one entry, and do not order.
        return address.version == self.first.version and int(self.first) <= int(address) <= int(self.last)


def pool_entry(text: str) -> PoolEntry:
    """The model checked the entry's syntax; a range's ends are addresses, a CIDR's host bits may be set."""
    if "-" in text:
        first, last = (ipaddress.ip_address(part.strip()) for part in text.split("-", 1))
        return PoolEntry(text, first, last)
    network = ipaddress.ip_network(text.strip(), strict=False)
    return PoolEntry(text, network[0], network[-1])


def host_addresses(inventory: Inventory) -> list[tuple[Host, Address]]:
    """Every host's literal IP address (ansible_host, else the name); DNS names are left out."""
    found = []
    for host in inventory.hosts:
        try:
            found.append((host, ipaddress.ip_address(host.address.split("%", 1)[0])))
        except ValueError:
            continue
    return found


def _named(hosts: Iterable[tuple[Host, Address]]) -> str:
    listed = [f"{host.name} ({address})" for host, address in hosts]
    more = f" and {len(listed) - SHOWN} more" if len(listed) > SHOWN else ""
    return ", ".join(listed[:SHOWN]) + more


def subnets(cluster: ClusterFile, inventory: Inventory, problems: Problems, where: Where) -> None:
    k8s = cluster.spec.kubernetes
    ranges = {"podSubnet": ipaddress.ip_network(k8s.pod_subnet),
              "serviceSubnet": ipaddress.ip_network(k8s.service_subnet)}
    hosts = host_addresses(inventory)
    for key, network in ranges.items():
        inside = [(h, a) for h, a in hosts if a in network]
        if inside:
            path = f"spec.kubernetes.{key}"
            _refuse(problems, "subnet-holds-host", where, path, f"{network} holds the address of host "
                   f"{_named(inside)}: traffic to it would be routed into the cluster network",
                   f"choose a private range none of the hosts' addresses fall in as {path}")
    pod, service = ranges["podSubnet"], ranges["serviceSubnet"]
    if pod.version == service.version and pod.overlaps(service):
        _refuse(problems, "subnets-overlap", where, "spec.kubernetes.serviceSubnet",
               f"{service} overlaps spec.kubernetes.podSubnet {pod}",
               "choose two ranges that do not overlap, e.g. the defaults 10.244.0.0/16 (pods) and 10.96.0.0/12 "
               "(services)")


def metallb_pool(cluster: ClusterFile, inventory: Inventory, problems: Problems, where: Where) -> None:
    metallb = cluster.spec.networking.metallb
    if not metallb.enabled:
        return
    hosts = host_addresses(inventory)
    for index, text in enumerate(metallb.addresses):
        entry = pool_entry(text)
        inside = [(h, a) for h, a in hosts if a in entry]
        if inside:
            _refuse(problems, "metallb-pool-holds-host", where, f"spec.networking.metallb.addresses[{index}]",
                   f"{text} holds the address of host {_named(inside)}: MetalLB would hand it to a Service")


def control_plane_endpoint(cluster: ClusterFile, inventory: Inventory, problems: Problems, where: Where) -> None:
    endpoint = cluster.spec.kubernetes.control_plane_endpoint
    if not endpoint:
        return
    path = "spec.kubernetes.controlPlaneEndpoint"
    host_part = endpoint.partition(":")[0]
    same = [h for h in inventory.hosts if h.address.lower() == host_part.lower()]
    if same:
        _refuse(problems, "control-plane-endpoint-taken", where, path,
               f"{host_part} is the address of host {same[0].name}: kube-vip needs an address no machine uses")
        return
    try:
        address = ipaddress.ip_address(host_part)
    except ValueError:
        return  # a DNS name: not resolved here
    metallb = cluster.spec.networking.metallb
    pools = [pool_entry(text) for text in metallb.addresses] if metallb.enabled else []
    inside = next((entry for entry in pools if address in entry), None)
    if inside is not None:
        _refuse(problems, "control-plane-endpoint-taken", where, path,
               f"{host_part} is inside the MetalLB pool {inside.text}: MetalLB could give it to a Service")


def _refuse(problems: Problems, rule: str, where: Where, path: str, message: str, fix: str | None = None) -> None:
    file, line, column = where(path)
    refuse(problems, rule, file, path, message, fix, line=line, column=column)
