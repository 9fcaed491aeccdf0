"""KubeHpaMaxedOut must not fire forever for an HPA whose floor is its ceiling.

kube-prometheus-stack's KubeHpaMaxedOut is `current_replicas == spec_max_replicas` for 15m
(prometheus-community/helm-charts charts/kube-prometheus-stack/templates/prometheus/rules-1.14/
kubernetes-apps.yaml at kube-prometheus-stack-61.9.0, -70.10.0 and -79.12.0). An HPA with
minReplicas == maxReplicas always runs at its maximum, so the alert fires from 15 minutes after install
for ever. kfinstall makes such an HPA: the model allows serving.replicas == maxReplicas
(installer/config/rules.py refuses only max < min) and on gcp replica_bounds caps both at the GPU pool
(one GPU node with one GPU: 1..1). Upstream fixed the expression in chart 82.10.2 (commit 1c0c69b0a,
PR #6725, kubernetes-mixin sync): `and spec_max_replicas != spec_min_replicas`.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, SHARED_SCHEMAS, helm_merge

from installer.render import plain

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
ALERT = "KubeHpaMaxedOut"
FIXED_IN = (82, 10, 2)  # first kube-prometheus-stack chart whose KubeHpaMaxedOut skips min == max
# `max != min` in either order, as the guard that keeps a fixed-size HPA quiet.
GUARD = re.compile(r"kube_horizontalpodautoscaler_spec_(max|min)_replicas\b(\{[^}]*\})?\s*!=\s*"
                   r"kube_horizontalpodautoscaler_spec_(?!\1)(max|min)_replicas\b")


def _kps(rendered: Any) -> tuple[str, dict[str, Any]] | None:
    for release in rendered.helm():
        inputs = plain(release.inputs)
        if inputs.get("chart") == "kube-prometheus-stack":
            defaults = SHARED_SCHEMAS / "kube-prometheus-stack" / inputs["version"] / "values.yaml"
            if not defaults.is_file():
                pytest.skip(f"upstream defaults {defaults} are absent")
            return inputs["version"], helm_merge(yaml.safe_load(defaults.read_text()), inputs["values"])
    return None


def _chart_rule_on(values: dict[str, Any]) -> bool:
    """The template's gates: defaultRules.create, defaultRules.rules.kubernetesApps, not disabled.<alert>."""
    rules = values.get("defaultRules") or {}
    return bool(rules.get("create")) and bool((rules.get("rules") or {}).get("kubernetesApps")) and not bool(
        (rules.get("disabled") or {}).get(ALERT))


def _own_rules(rendered: Any) -> list[dict[str, Any]]:
    found = []
    for record in rendered.kubernetes_objects():
        obj = plain(record.inputs)
        if obj.get("kind") != "PrometheusRule":
            continue
        for group in obj["spec"]["groups"]:
            found.extend(rule for rule in group["rules"] if rule.get("alert") == ALERT)
    return found


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_hpa_maxed_out_alert_is_quiet_for_a_fixed_size_hpa_and_kept_for_the_rest(renders, profile: str,
                                                                                  channel: str) -> None:
    rendered = renders.get(profile, channel)
    kps = _kps(rendered)
    if kps is None:
        pytest.skip("monitoring is disabled in this sample")
    version, values = kps
    chart_guarded = tuple(int(part) for part in version.split(".")) >= FIXED_IN
    chart_on = _chart_rule_on(values)
    assert not (chart_on and not chart_guarded), (
        f"kube-prometheus-stack {version}'s {ALERT} fires for ever for an HPA with minReplicas == maxReplicas")
    own = _own_rules(rendered)
    for rule in own:
        assert GUARD.search(rule["expr"]), rule["expr"]
    assert own or chart_on, f"no {ALERT} alert at all: an HPA stuck at its ceiling would go unnoticed"
