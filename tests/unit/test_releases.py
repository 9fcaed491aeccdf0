"""Release channels: every pin present, ranges coherent, edges one hop at a time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from installer.releases import all_releases, channel_names, load_release
from installer.versions import minor_tuple, parse

EXPECTED_CHANNELS = ["1.9", "1.10", "1.11", "26.03", "26.03.1"]
REQUIRED_CHARTS = {"gpu-operator", "nvidia-device-plugin", "dcgm-exporter", "csi-driver-nfs", "metallb",
                   "jupyterhub", "kube-prometheus-stack", "cert-manager"}
INGRESS_CONTROLLERS = {"ingress-nginx", "traefik"}
REQUIRED_IMAGES = {"training-operator", "tensorflow-serving", "tensorflow-serving-gpu", "tensorboard",
                   "local-path-provisioner"}


def test_channels_in_order() -> None:
    assert channel_names() == EXPECTED_CHANNELS


@pytest.mark.parametrize("channel", EXPECTED_CHANNELS)
def test_channel_pins_are_complete(channel: str) -> None:
    release = load_release(channel)
    assert REQUIRED_CHARTS <= set(release.charts)
    assert len(INGRESS_CONTROLLERS & set(release.charts)) == 1, "exactly one ingress controller per channel"
    assert REQUIRED_IMAGES <= set(release.images)
    for pin in release.images.values():
        assert pin.tag and pin.tag != "latest"
    for chart in release.charts.values():
        parse(chart.version)  # a real version, not a range
        assert chart.repository.startswith("https://")


@pytest.mark.parametrize("channel", EXPECTED_CHANNELS)
def test_kubernetes_range_is_coherent(channel: str) -> None:
    k8s = load_release(channel).kubernetes
    assert minor_tuple(k8s.min_minor) <= minor_tuple(k8s.default_minor) <= minor_tuple(k8s.max_minor)
    assert k8s.supports(k8s.default_minor)
    assert k8s.minors()[0] == k8s.min_minor and k8s.minors()[-1] == k8s.max_minor


def test_upgrade_edges_are_single_hops_to_the_previous_channel() -> None:
    releases = all_releases()
    assert releases[0].upgrades_from == ()
    for previous, current in zip(releases, releases[1:], strict=False):
        assert current.upgrades_from == (previous.channel,)


def test_consecutive_channels_share_a_kubernetes_minor() -> None:
    """The intersection rule needs an overlap between each hop's ranges (versions.md 10.1)."""
    releases = all_releases()
    for previous, current in zip(releases, releases[1:], strict=False):
        assert set(previous.kubernetes.minors()) & set(current.kubernetes.minors()), (previous.channel, current.channel)


def test_training_operator_tfjob_on_every_channel() -> None:
    for release in all_releases():
        assert release.images["training-operator"].release, release.channel


def test_unknown_channel_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        load_release("0.1")


def test_channel_files_are_named_after_their_channel() -> None:
    folder = Path(__file__).resolve().parents[2] / "installer" / "releases"
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    assert names == sorted(EXPECTED_CHANNELS)
    for path in folder.glob("*.yaml"):
        assert re.search(rf'^channel: "{re.escape(path.stem)}"$', path.read_text(), re.M)
