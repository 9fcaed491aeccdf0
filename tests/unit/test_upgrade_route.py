"""The route planner: every ordered pair of channels, exact hops or the exact refusal."""

from __future__ import annotations

from dataclasses import replace

import pytest

from installer.errors import PreflightError
from installer.releases import Release, all_releases, channel_names, load_release
from installer.upgrade.route import (
    Change,
    Hop,
    Route,
    channel_path,
    overlap,
    plan_route,
    release_changes,
    validate_route,
)

# The installed Kubernetes minor used for each starting channel: the lowest it supports.
START = {"1.9": "1.29", "1.10": "1.31", "1.11": "1.32", "26.03": "1.34", "26.03.1": "1.34"}

K, P = "kubernetes", "platform"
# (kind, from channel, to channel, kubernetes from, kubernetes to), for a defaulted Kubernetes version.
ROUTES: dict[tuple[str, str], list[tuple[str, str, str, str, str]]] = {
    ("1.9", "1.10"): [(K, "1.9", "1.9", "1.29", "1.30"), (K, "1.9", "1.9", "1.30", "1.31"),
                      (P, "1.9", "1.10", "1.31", "1.31")],
    ("1.9", "1.11"): [(K, "1.9", "1.9", "1.29", "1.30"), (K, "1.9", "1.9", "1.30", "1.31"),
                      (P, "1.9", "1.10", "1.31", "1.31"), (K, "1.10", "1.10", "1.31", "1.32"),
                      (P, "1.10", "1.11", "1.32", "1.32")],
    ("1.9", "26.03"): [(K, "1.9", "1.9", "1.29", "1.30"), (K, "1.9", "1.9", "1.30", "1.31"),
                       (P, "1.9", "1.10", "1.31", "1.31"), (K, "1.10", "1.10", "1.31", "1.32"),
                       (P, "1.10", "1.11", "1.32", "1.32"), (K, "1.11", "1.11", "1.32", "1.33"),
                       (K, "1.11", "1.11", "1.33", "1.34"), (P, "1.11", "26.03", "1.34", "1.34")],
    ("1.9", "26.03.1"): [(K, "1.9", "1.9", "1.29", "1.30"), (K, "1.9", "1.9", "1.30", "1.31"),
                         (P, "1.9", "1.10", "1.31", "1.31"), (K, "1.10", "1.10", "1.31", "1.32"),
                         (P, "1.10", "1.11", "1.32", "1.32"), (K, "1.11", "1.11", "1.32", "1.33"),
                         (K, "1.11", "1.11", "1.33", "1.34"), (P, "1.11", "26.03", "1.34", "1.34"),
                         (P, "26.03", "26.03.1", "1.34", "1.34")],
    ("1.10", "1.11"): [(K, "1.10", "1.10", "1.31", "1.32"), (P, "1.10", "1.11", "1.32", "1.32")],
    ("1.10", "26.03"): [(K, "1.10", "1.10", "1.31", "1.32"), (P, "1.10", "1.11", "1.32", "1.32"),
                        (K, "1.11", "1.11", "1.32", "1.33"), (K, "1.11", "1.11", "1.33", "1.34"),
                        (P, "1.11", "26.03", "1.34", "1.34")],
    ("1.10", "26.03.1"): [(K, "1.10", "1.10", "1.31", "1.32"), (P, "1.10", "1.11", "1.32", "1.32"),
                          (K, "1.11", "1.11", "1.32", "1.33"), (K, "1.11", "1.11", "1.33", "1.34"),
                          (P, "1.11", "26.03", "1.34", "1.34"), (P, "26.03", "26.03.1", "1.34", "1.34")],
    ("1.11", "26.03"): [(K, "1.11", "1.11", "1.32", "1.33"), (K, "1.11", "1.11", "1.33", "1.34"),
                        (P, "1.11", "26.03", "1.34", "1.34")],
    ("1.11", "26.03.1"): [(K, "1.11", "1.11", "1.32", "1.33"), (K, "1.11", "1.11", "1.33", "1.34"),
                          (P, "1.11", "26.03", "1.34", "1.34"), (P, "26.03", "26.03.1", "1.34", "1.34")],
    ("26.03", "26.03.1"): [(P, "26.03", "26.03.1", "1.34", "1.34")],
}

MIGRATIONS = {
    ("1.9", "1.10"): ("z2jh-values-3-to-4", "pod-security-labels", "kube-prometheus-stack-crds"),
    ("1.10", "1.11"): ("training-operator-standalone", "pod-security-labels", "kube-prometheus-stack-crds"),
    ("1.11", "26.03"): ("training-operator-standalone", "pod-security-labels", "ingress-nginx-to-traefik",
                        "kube-prometheus-stack-crds"),
    ("26.03", "26.03.1"): ("training-operator-standalone", "pod-security-labels"),
}

NEXT = {"1.9": "1.9 -> 1.10 -> 1.11 -> 26.03 -> 26.03.1", "1.10": "1.10 -> 1.11 -> 26.03 -> 26.03.1",
        "1.11": "1.11 -> 26.03 -> 26.03.1", "26.03": "26.03 -> 26.03.1"}


def _allowed(channel: str) -> str:
    if channel in NEXT:
        return f"Allowed route from {channel}: {NEXT[channel]} (one hop at a time)."
    return f"Channel {channel} is the newest: no upgrade is available."


def _plan(source: str, target: str, explicit: str | None = None) -> Route:
    return plan_route(source, START[source], target, explicit,
                      defaulted_kubernetes=load_release(target).kubernetes.default_minor)


def _shape(route: Route) -> list[tuple[str, str, str, str, str]]:
    return [(h.kind, h.from_channel, h.to_channel, h.kubernetes_from, h.kubernetes_to) for h in route.hops]


PAIRS = [(a, b) for a in channel_names() for b in channel_names()]


def test_the_matrix_covers_every_channel() -> None:
    assert set(START) == set(channel_names()) and len(PAIRS) == 25


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_ordered_pair(source: str, target: str) -> None:
    order = channel_names()
    if (source, target) in ROUTES:
        route = _plan(source, target)
        assert _shape(route) == ROUTES[(source, target)]
        assert [h.index for h in route.hops] == list(range(1, len(route.hops) + 1))
        platform = [h for h in route.hops if h.kind == "platform"]
        assert [h.migrations for h in platform] == [MIGRATIONS[(h.from_channel, h.to_channel)] for h in platform]
        assert route.channels == order[order.index(source): order.index(target) + 1]
        return
    with pytest.raises(PreflightError) as refused:
        _plan(source, target)
    message = refused.value.message
    if source == target:
        assert message.startswith(f"already on channel {source} with Kubernetes {START[source]}; same-channel")
    else:
        assert order.index(target) < order.index(source)
        assert message.startswith(f"refusing to downgrade from channel {source} to {target}: downgrades are not")
    assert message.endswith(_allowed(source))
    assert refused.value.exit_code == 3


def test_a_defaulted_version_never_moves_kubernetes() -> None:
    route = _plan("26.03", "26.03.1")
    assert route.kubernetes_to == "1.34" and not route.kubernetes_explicit
    assert route.notes == ("Kubernetes stays at 1.34: channel 26.03.1's default minor 1.35 never triggers an "
                           "upgrade; set spec.kubernetes.version to move on",)


def test_same_channel_with_a_higher_default_is_refused_and_says_why() -> None:
    with pytest.raises(PreflightError, match=r"default minor 1\.35 does not trigger an upgrade \(a defaulted "
                                             r"version never does\); set spec\.kubernetes\.version: \"1\.35\""):
        plan_route("26.03.1", "1.34", "26.03.1", None, defaulted_kubernetes="1.35")


def test_an_explicit_version_continues_after_the_last_channel_hop() -> None:
    route = _plan("26.03", "26.03.1", explicit="1.36")
    assert _shape(route) == [(P, "26.03", "26.03.1", "1.34", "1.34"), (K, "26.03.1", "26.03.1", "1.34", "1.35"),
                             (K, "26.03.1", "26.03.1", "1.35", "1.36")]
    assert route.kubernetes_explicit and route.kubernetes_to == "1.36"
    assert route.hops[-1].reason == "explicit spec.kubernetes.version 1.36"


def test_an_explicit_version_on_the_same_channel_is_a_kubernetes_only_route() -> None:
    route = plan_route("26.03.1", "1.35", "26.03.1", "1.36")
    assert _shape(route) == [(K, "26.03.1", "26.03.1", "1.35", "1.36")]


def test_an_explicit_patch_version_reaches_the_minor() -> None:
    route = _plan("1.10", "1.11", explicit="1.33.4")
    assert _shape(route)[-1] == (K, "1.11", "1.11", "1.32", "1.33.4")
    assert route.kubernetes_to == "1.33.4"


def test_explicit_kubernetes_downgrade_is_refused() -> None:
    with pytest.raises(PreflightError, match=r"refusing to downgrade Kubernetes from 1\.33 to 1\.32 .*allowed: "
                                             r"1\.33 or later within 1\.32-1\.34"):
        plan_route("1.10", "1.33", "1.11", "1.32")


def test_explicit_version_outside_the_target_range_is_refused() -> None:
    with pytest.raises(PreflightError, match=r"outside target channel 1\.10's range 1\.31-1\.33; choose one of "
                                             r"1\.31, 1\.32, 1\.33"):
        plan_route("1.9", "1.29", "1.10", "1.34")


def test_installed_version_outside_its_channel_is_refused() -> None:
    with pytest.raises(PreflightError, match=r"installed Kubernetes 1\.28 is outside channel 1\.9's range 1\.29-1\.31"):
        plan_route("1.9", "1.28", "1.10")


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(PreflightError, match=r"unknown channel '2\.0'"):
        channel_path("1.9", "2.0")


def _variant(base: Release, **k8s: str) -> Release:
    return base.model_copy(update={"kubernetes": base.kubernetes.model_copy(update=k8s)})


def test_no_overlap_is_refused_with_both_ranges() -> None:
    old = _variant(load_release("1.9"), max_minor="1.30")
    new = _variant(load_release("1.10"), min_minor="1.31")
    releases = tuple(old if r.channel == "1.9" else new if r.channel == "1.10" else r for r in all_releases())
    assert overlap(old, new) is None
    with pytest.raises(PreflightError, match=r"channels 1\.9 \(1\.29-1\.30\) and 1\.10 \(1\.31-1\.33\) share no "
                                             r"Kubernetes minor, so the intersection rule cannot be met"):
        plan_route("1.9", "1.29", "1.10", releases=releases)


def test_kubernetes_above_the_overlap_is_refused() -> None:
    old = _variant(load_release("1.10"), max_minor="1.34")
    new = _variant(load_release("1.11"), max_minor="1.33")
    releases = tuple(old if r.channel == "1.10" else new if r.channel == "1.11" else r for r in all_releases())
    with pytest.raises(PreflightError, match=r"Kubernetes 1\.34 is above the overlap 1\.32-1\.33 of channels "
                                             r"1\.10 and 1\.11, and Kubernetes is never downgraded"):
        plan_route("1.10", "1.34", "1.11", releases=releases)


def test_unreachable_target_is_refused() -> None:
    cut = load_release("1.11").model_copy(update={"upgrades_from": ()})
    releases = tuple(cut if r.channel == "1.11" else r for r in all_releases())
    with pytest.raises(PreflightError, match=r"channel 26\.03 is unreachable from 1\.10: no chain of upgradesFrom "
                                             r"edges leads there\. Channel 1\.10 is the newest"):
        plan_route("1.10", "1.31", "26.03", releases=releases)


def test_a_route_that_skips_a_minor_is_refused() -> None:
    route = _plan("1.10", "1.11")
    first = route.hops[0]
    skipping = replace(route, kubernetes_from="1.30", hops=(replace(first, kubernetes_from="1.30"), route.hops[1]))
    with pytest.raises(PreflightError, match=r"hop 1 skips Kubernetes minors: 1\.30 -> 1\.32; kubeadm upgrades one "
                                             r"minor at a time \(next allowed: 1\.31\)"):
        validate_route(skipping)


def test_a_route_that_skips_a_channel_is_refused() -> None:
    route = _plan("1.9", "1.11")
    hops = route.hops
    skipping = replace(route, hops=(*hops[:2], replace(hops[2], to_channel="1.11")))
    with pytest.raises(PreflightError, match=r"hop 3 skips channels: 1\.9 -> 1\.11 is not an upgradesFrom edge\. "
                                             r"Allowed route from 1\.9: 1\.9 -> 1\.10"):
        validate_route(skipping)


def test_containerd_pins_below_the_runtime_requirement_are_refused() -> None:
    old_version = load_release("1.9").containerd.version
    old_runtime = load_release("26.03.1").containerd.model_copy(update={"version": old_version})
    bad = load_release("26.03.1").model_copy(update={"containerd": old_runtime})
    releases = tuple(bad if r.channel == "26.03.1" else r for r in all_releases())
    with pytest.raises(PreflightError, match=r"hop 3 reaches Kubernetes 1\.36 but channel 26\.03\.1 pins containerd "
                                             r"1\.7\.22 \(< 2\.0\)"):
        plan_route("26.03", "1.34", "26.03.1", "1.36", releases=releases)


def test_platform_hop_lists_every_changed_pin() -> None:
    hop = _plan("26.03", "26.03.1").hops[0]
    assert hop.changes == release_changes(load_release("26.03"), load_release("26.03.1"))
    assert [c.text() for c in hop.changes] == [
        "kubeflow kubeflow/community-distribution@26.03 -> kubeflow/community-distribution@release-26.03.1",
        "containerd 2.1.4 -> 2.2.0",
        "chart/cert-manager v1.20.3 -> v1.21.1",
        "chart/dcgm-exporter 4.8.1 -> 4.8.2",
        "chart/nvidia-device-plugin 0.19.0 -> 0.19.3",
        "chart/traefik 41.2.0 -> 41.3.0",
    ] + [c.text() for c in hop.changes if c.component.startswith("image/notebook")]
    assert Change("containerd", "2.1.4", "2.2.0") in hop.changes
    assert [c.component for c in hop.node_changes] == ["containerd"]


def test_kubernetes_hops_carry_backups_and_a_pause() -> None:
    hop: Hop = _plan("1.10", "1.11").hops[0]
    assert hop.changes == (Change("kubernetes", "1.31", "1.32"),)
    assert hop.backups == ("etcd-snapshot", "pki-kubeadm-config", "jupyterhub-db", "pulumi-stack", "resolved-config")
    assert hop.pauses == ("before hop 1: control planes are upgraded, then each worker is drained in turn",)
    assert hop.key == "kubernetes:1.10:1.31->1.32"


def test_driver_branch_changes_add_a_reboot_pause() -> None:
    hop = _plan("1.9", "1.10").hops[2]
    assert Change("nvidia-driver", "550", "570") in hop.changes
    assert any("rebooted one at a time" in p for p in hop.pauses)


def test_route_json_is_stable() -> None:
    data = _plan("1.10", "1.11").as_dict()
    assert data["summary"] == "1.10@1.31 -> k8s 1.32 -> 1.11"
    assert data["from"] == {"channel": "1.10", "kubernetes": "1.31"}
    assert data["to"] == {"channel": "1.11", "kubernetes": "1.32"}
    assert [h["kind"] for h in data["hops"]] == ["kubernetes", "platform"]
    assert set(data["hops"][1]) == {"index", "key", "kind", "fromChannel", "toChannel", "kubernetes", "changes",
                                    "migrations", "backups", "pauses", "reason", "skipped"}
