"""The ingress switch (1.11 -> 26.03) needs a free MetalLB address for Traefik's Service (issue 12 item 10).

Upstream facts:
- Pulumi creates the Traefik release before it deletes ingress-nginx's (what a program no longer declares
  is deleted after its creates and updates, pulumi/pulumi#9979), so both controllers' LoadBalancer
  Services exist at once, and MetalLB gives two Services one address only with `metallb.io/allow-shared-ip`
  and ports that do not overlap (metallb.io/usage, "IP address sharing"); both take 80 and 443.
- helm.v3.Release waits for its resources (skipAwait false), and Helm calls a LoadBalancer Service ready
  only once `status.loadBalancer.ingress` is set (helm/helm pkg/kube/ready.go, ReadyChecker.serviceReady).
So with every pool address held, Traefik's Service stays <pending>, its release times out and the hop fails
half-way; the switch must refuse before any change instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_upgrade_ingress_switch import _run as run_switch

from installer.errors import PreflightError
from installer.upgrade.migrations import free_pool_addresses
from installer.upgrade.route import plan_route


def _service(ns: str, name: str, kind: str, ips: list[str]) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name}, "spec": {"type": kind},
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


NGINX = _service("ingress-nginx", "ingress-nginx-controller", "LoadBalancer", ["192.0.2.240"])


def test_free_addresses_count_cidrs_and_ranges_minus_what_services_hold() -> None:
    services = {"items": [NGINX, _service("team", "db", "LoadBalancer", ["192.0.2.241"]),
                          _service("team", "other-pool", "LoadBalancer", ["198.51.100.7"]),
                          _service("team", "plain", "ClusterIP", []), "not an object"]}
    assert free_pool_addresses(["192.0.2.240/32"], services) == 0
    assert free_pool_addresses(["192.0.2.240/31"], services) == 0
    assert free_pool_addresses(["192.0.2.240-192.0.2.243"], services) == 2
    assert free_pool_addresses(["192.0.2.240/28", "2001:db8::/127"], services) == 16 - 2 + 2


def _run(make_site, pool: list[str], services: dict[str, Any], services_rc: int = 0) -> list[list[str]]:  # noqa: ANN001
    site: Path = make_site({"spec.channel": "26.03", "spec.kubernetes.version": "1.34",
                            "spec.networking.metallb.enabled": True, "spec.networking.metallb.addresses": pool})
    return run_switch(site, {"items": []}, services=services, services_rc=services_rc)[1]


def test_a_full_pool_refuses_the_hop_before_any_change(make_site) -> None:  # noqa: ANN001
    with pytest.raises(PreflightError) as refused:
        _run(make_site, ["192.0.2.240/32"], {"items": [NGINX]})
    message = str(refused.value)
    assert "no free address for Traefik's Service" in message
    assert "spec.networking.metallb.addresses" in message


def test_a_pool_with_a_free_address_lets_the_hop_go_on(make_site) -> None:  # noqa: ANN001
    probes = _run(make_site, ["192.0.2.240-192.0.2.241"], {"items": [NGINX]})
    assert probes[-1][3:] == ["get", "service", "--all-namespaces", "-o", "json"]


def test_services_that_cannot_be_listed_refuse_the_hop(make_site) -> None:  # noqa: ANN001
    with pytest.raises(PreflightError, match="cannot list Services: forbidden"):
        _run(make_site, ["192.0.2.240/28"], {}, services_rc=1)


def test_the_pause_tells_a_node_port_site_to_move_its_load_balancer() -> None:
    """Without MetalLB or GKE the controller's Service is a NodePort (stacks/networking.py); node ports are
    allocated per Service from the cluster's range (Kubernetes docs, Service type NodePort), so Traefik's
    differ from ingress-nginx's and the operator's load balancer must follow, not DNS."""
    hop = plan_route("1.11", "1.34", "26.03").hops[0]
    pause = next(p for p in hop.pauses if "ingress controller's address changes" in p)
    assert "node ports" in pause and "kubectl -n traefik get service traefik" in pause
