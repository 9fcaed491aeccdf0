"""Components a site turned off are neither upgraded nor migrated (issue 15 item 8; installer.upgrade.site).

The route planner knows channels only; `kfinstall upgrade` (dry run and real run) takes the route through
site_route, so a hop's changes and migrations are those of what the site deploys, and the rest is listed
as skipped with its reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from installer.cli import cli
from installer.config.load import load
from installer.releases import load_release
from installer.upgrade.facts import ClusterFacts, NodeFacts
from installer.upgrade.migration_table import INGRESS_SWITCH, KPS_CRDS, TRAINING_STANDALONE, Z2JH_3_TO_4
from installer.upgrade.preflight import check_tfjobs
from installer.upgrade.route import plan_route
from installer.upgrade.rules import load_rules
from installer.upgrade.site import site_route


def _dry_run(make_site, cluster: dict[str, Any], source: str = "1.9", target: str = "1.11") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    site = make_site({"spec.channel": target, **cluster}, secrets=False)
    result = CliRunner().invoke(cli, ["upgrade", "-i", str(site), "--from", source, "--to", target, "--dry-run",
                                      "-o", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _platform_hops(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [hop for hop in doc["route"]["hops"] if hop["kind"] == "platform"]


def _all_migrations(doc: dict[str, Any]) -> set[str]:
    return {name for hop in _platform_hops(doc) for name in hop["migrations"]}


def _components(hop: dict[str, Any]) -> set[str]:
    return {change["component"] for change in hop["changes"]}


def test_with_everything_on_the_channels_migrations_all_run(make_site) -> None:
    doc = _dry_run(make_site, {}, "1.11", "26.03")
    assert {TRAINING_STANDALONE, INGRESS_SWITCH} <= _all_migrations(doc)


def test_jupyterhub_off_is_not_upgraded_nor_migrated(make_site) -> None:
    on = _dry_run(make_site, {})
    off = _dry_run(make_site, {"spec.components.jupyterhub.enabled": False,
                               "spec.components.tensorboard.enabled": False})  # served behind the hub's login
    assert Z2JH_3_TO_4 in _all_migrations(on)
    assert Z2JH_3_TO_4 not in _all_migrations(off)
    hop = next(h for h in _platform_hops(off) if any(s.startswith("chart/jupyterhub ") for s in h["skipped"]))
    assert "chart/jupyterhub" not in _components(hop) and "image/notebook" not in _components(hop)
    assert f"migration {Z2JH_3_TO_4}: JupyterHub is turned off" in hop["skipped"]


def test_monitoring_off_needs_no_crd_migration(make_site) -> None:
    assert KPS_CRDS in _all_migrations(_dry_run(make_site, {}))
    off = _dry_run(make_site, {"spec.components.monitoring.enabled": False})
    assert KPS_CRDS not in _all_migrations(off)
    assert not any("chart/kube-prometheus-stack" in _components(h) for h in _platform_hops(off))


def test_ingress_off_has_no_controller_switch_and_no_dns_pause(make_site) -> None:
    # Only the lab profile may go without an ingress controller (HTTPS is served through it).
    off = _dry_run(make_site, {"spec.profile": "lab", "spec.storage.gluster.enabled": False,
                               "spec.networking.ingress.enabled": False, "spec.networking.ingress.host": None,
                               "spec.networking.tls.enabled": False}, "1.11", "26.03")
    [hop] = _platform_hops(off)
    assert INGRESS_SWITCH not in hop["migrations"]
    assert not {"chart/ingress-nginx", "chart/traefik"} & _components(hop)
    assert not any("DNS" in pause for pause in hop["pauses"])
    assert f"migration {INGRESS_SWITCH}: the ingress controller is turned off" in hop["skipped"]


@pytest.mark.parametrize("gpu", [True, False])
def test_gpu_off_leaves_the_driver_alone_and_does_not_reboot(make_site, gpu: bool) -> None:
    cfg = load(make_site({"spec.channel": "1.10", "spec.gpu.enabled": gpu}, secrets=False), need_secrets=False)
    route = site_route(plan_route("1.9", "1.31", "1.10"), cfg)
    [hop] = route.hops
    node = {c.component for c in hop.node_changes}
    assert ("nvidia-driver" in node) is gpu
    assert any("rebooted" in pause for pause in hop.pauses) is gpu
    assert "containerd" in node  # the runtime change still drains each node for containerd


def test_the_tfjob_guard_holds_with_training_off(make_site) -> None:
    """Jobs that exist while training is off still refuse the hop whose target would drop their CRDs."""
    cfg = load(make_site({"spec.channel": "26.03", "spec.components.training.enabled": False}, secrets=False),
               need_secrets=False)
    [hop] = site_route(plan_route("1.11", "1.34", "26.03"), cfg).hops
    assert TRAINING_STANDALONE not in hop.migrations
    crd = load_rules().training_operator.guarded_crds[0]
    facts = ClusterFacts(nodes=(NodeFacts("n1", False, True, "v1.34.0"),), apiserver_versions=("v1.34.0",),
                         crd_objects={crd: 2})
    problems = check_tfjobs(facts, hop, training_enabled=False, rules=load_rules())
    assert problems and crd in problems[0]
    assert load_release("26.03")  # the channel the guard judges exists
