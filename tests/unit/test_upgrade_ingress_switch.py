"""The hop onto the first Traefik channel is a migration of the upgrade route (issue 12 item 10).

ingress-nginx was retired in March 2026 with no further releases or security fixes ("Ingress NGINX:
Statement from the Kubernetes Steering and Security Response Committees", kubernetes.io blog
2026-01-29; ../shared/research/versions.md "Corrections and additions"), so channels 26.03 and 26.03.1
pin Traefik. Moving a cluster across that edge changes the controller under every Ingress:
- Ingresses kfinstall does not manage and that name ingress-nginx's class would go dark when it is
  removed, so the hop refuses them before any change (the operator moves or deletes them);
- MetalLB can give one address to two Services only with `metallb.io/allow-shared-ip` and ports that do
  not overlap (metallb.io/usage, "IP address sharing"); both controllers take 80 and 443, so the new
  Service gets a new address and the hop pauses for DNS;
- the old controller goes only after the new one serves (Pulumi deletes what the program no longer
  declares after its creates and updates, pulumi/pulumi#9979; helm.v3.Release awaits its resources).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from installer.config.load import load
from installer.errors import PreflightError
from installer.phases.base import RunContext
from installer.releases import load_release
from installer.runs import RunRecord
from installer.upgrade.facts import ClusterFacts, NodeFacts, Z2jhSettings
from installer.upgrade.migrations import INGRESS_SWITCH, migrations_for, stranded_ingresses
from installer.upgrade.route import plan_route
from installer.upgrade.rules import load_rules
from installer.upgrade.run import hop_config, run_migrations

EDGES = [("1.9", "1.10"), ("1.10", "1.11"), ("1.11", "26.03"), ("26.03", "26.03.1")]
KFINSTALL_RELEASES = {"jupyterhub", "kube-prometheus-stack"}


@pytest.mark.parametrize(("old", "new"), EDGES)
def test_only_the_hop_onto_traefik_switches_the_controller(old: str, new: str) -> None:
    names = migrations_for(load_release(old), load_release(new), load_rules())
    assert (INGRESS_SWITCH in names) is (new == "26.03")


def test_the_switch_checks_before_changes_and_pauses_for_dns() -> None:
    hop = plan_route("1.11", "1.34", "26.03").hops[0]
    assert hop.kind == "platform" and INGRESS_SWITCH in hop.migrations
    # A refusal must come before anything is applied: after the other guards, before the CRD apply.
    assert hop.migrations.index(INGRESS_SWITCH) < hop.migrations.index("kube-prometheus-stack-crds")
    assert any(p.startswith(f"after hop {hop.index}: the ingress controller's address changes") for p in hop.pauses)
    assert {c.component for c in hop.changes} >= {"chart/traefik", "chart/ingress-nginx"}


def _ingress(ns: str, name: str, cls: str | None, *, labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None, by_annotation: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": ns, "name": name, "labels": labels or {},
                            "annotations": dict(annotations or {})}
    spec: dict[str, Any] = {}
    if cls and by_annotation:
        meta["annotations"]["kubernetes.io/ingress.class"] = cls
    elif cls:
        spec["ingressClassName"] = cls
    return {"metadata": meta, "spec": spec}


LISTING = {"items": [
    _ingress("jupyterhub", "jupyterhub", "nginx", annotations={"meta.helm.sh/release-name": "jupyterhub"}),
    _ingress("monitoring", "kube-prometheus-stack-grafana", "nginx",
             annotations={"meta.helm.sh/release-name": "kube-prometheus-stack"}),
    _ingress("kubeflow-user", "tensorboard", "nginx", labels={"app.kubernetes.io/managed-by": "kfinstall"}),
    _ingress("team-a", "dashboard", "nginx"),
    _ingress("team-b", "legacy", "nginx", by_annotation=True),
    _ingress("team-c", "other", "haproxy"),
    _ingress("team-d", "default-class", None),
    "not an object",
]}


def test_ingresses_only_ingress_nginx_serves_are_found() -> None:
    assert stranded_ingresses(LISTING, "nginx", KFINSTALL_RELEASES) == ["team-a/dashboard", "team-b/legacy"]


def _site(make_site, target: str) -> Path:  # noqa: ANN001 - fixture
    return make_site({"spec.channel": target, "spec.kubernetes.version": "1.34"})


def _facts() -> ClusterFacts:
    node = NodeFacts("cp1", True, True, "v1.34.3", "2.1.4", 2, True)
    return ClusterFacts(nodes=(node,), apiserver_versions=("v1.34.3",), z2jh=Z2jhSettings("escape", True))


def _run(site: Path, listing: dict[str, Any], address: str = "192.0.2.240", services: dict[str, Any] | None = None,
         services_rc: int = 0) -> tuple[RunContext, list[list[str]]]:
    """The switch alone on `site`; kubectl answers `listing` for Ingresses, `services` (rc `services_rc`) for
    the Services of the pool check (test_upgrade_ingress_pool.py) and `address` for the old controller."""
    cfg = load(site)
    hop = plan_route("1.11", "1.34", "26.03").hops[0]
    hop = type(hop)(**{**hop.__dict__, "migrations": (INGRESS_SWITCH,)})  # the switch alone
    ctx = RunContext(cfg=cfg, record=RunRecord.start(cfg, "test"), console=Console(file=io.StringIO()))
    probes: list[list[str]] = []

    def probe(argv: list[str]) -> tuple[int, str, str]:
        probes.append(argv)
        if "ingress" in argv:
            return 0, json.dumps(listing), ""
        if "--all-namespaces" in argv:  # Services, for the pool check
            return services_rc, json.dumps(services or {"items": []}), "forbidden" if services_rc else ""
        return 0, address, ""

    def command(argv: list[str]) -> None:
        raise AssertionError(f"the switch changes nothing itself: {argv}")

    run_migrations(ctx, hop, hop_config(cfg, hop), _facts(), command=command, probe=probe)
    return ctx, probes


def test_an_operators_nginx_ingress_refuses_the_hop_naming_it(make_site) -> None:
    with pytest.raises(PreflightError) as refused:
        _run(_site(make_site, "26.03"), LISTING)
    message = str(refused.value)
    assert "team-a/dashboard, team-b/legacy" in message
    assert "Move them to IngressClass traefik (spec.ingressClassName) or delete them" in message
    assert "jupyterhub/jupyterhub" not in message


def test_the_switch_records_the_classes_and_the_old_address(make_site) -> None:
    ctx, probes = _run(_site(make_site, "26.03"), {"items": LISTING["items"][:3]})
    notes = json.loads((ctx.record.path / "migrations-hop-01.json").read_text())[INGRESS_SWITCH]
    assert notes == {"controller": {"from": "ingress-nginx", "to": "traefik"},
                     "ingressClass": {"from": "nginx", "to": "traefik"},
                     "oldAddress": "192.0.2.240", "host": "ml.example.com"}
    assert probes[0][-5:] == ["get", "ingress", "--all-namespaces", "-o", "json"]
    assert probes[1][3:8] == ["get", "service", "--namespace", "ingress-nginx", "ingress-nginx-controller"]


def test_a_kubectl_failure_refuses_the_hop(make_site) -> None:
    site = _site(make_site, "26.03")
    cfg = load(site)
    hop = plan_route("1.11", "1.34", "26.03").hops[0]
    hop = type(hop)(**{**hop.__dict__, "migrations": (INGRESS_SWITCH,)})
    ctx = RunContext(cfg=cfg, record=RunRecord.start(cfg, "test"), console=Console(file=io.StringIO()))
    with pytest.raises(PreflightError, match="cannot list Ingresses: forbidden"):
        run_migrations(ctx, hop, hop_config(cfg, hop), _facts(), command=lambda argv: None,
                       probe=lambda argv: (1, "", "forbidden"))


def test_an_existing_sites_class_follows_the_channel(make_site) -> None:
    """A site that never set className gets nginx on 1.11 and traefik on 26.03: nothing to edit by hand."""
    site = make_site()
    from stacks.networking import ingress_class

    assert ingress_class(load(site, ("spec.channel=1.11",))) == "nginx"
    assert ingress_class(load(site, ("spec.channel=26.03",))) == "traefik"
