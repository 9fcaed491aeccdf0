"""installer.catalogue and the rendered program agree: every namespace the program creates, with its
Pod Security labels and component, is the catalogue's, for every profile x channel and for sites that
turn parts off."""

from __future__ import annotations

import pytest
from stackhelpers import CHANNELS, PROFILES

from installer import catalogue
from installer.config.resolved import ClusterConfig
from installer.render import Recorded, evaluate


def _rendered_namespaces(records: list[Recorded]) -> dict[str, dict[str, str]]:
    """namespace name -> its labels, from the rendered Namespace objects."""
    return {r.inputs["metadata"]["name"]: dict(r.inputs["metadata"].get("labels") or {})
            for r in records if r.is_kubernetes_object and r.inputs.get("kind") == "Namespace"}


def _catalogue_namespaces(cfg: ClusterConfig) -> dict[str, dict[str, str]]:
    return {ns.name: {"app.kubernetes.io/managed-by": "kfinstall", "app.kubernetes.io/part-of": "kfinstall",
                      "kfinstall.io/component": ns.component, **catalogue.pod_security_labels(ns.level)}
            for ns in catalogue.platform_namespaces(cfg)}


def _agree(cfg: ClusterConfig, records: list[Recorded]) -> None:
    assert _rendered_namespaces(records) == _catalogue_namespaces(cfg)
    rendered_levels = {name: labels["pod-security.kubernetes.io/enforce"]
                       for name, labels in _rendered_namespaces(records).items()}
    assert catalogue.namespace_levels(cfg) == rendered_levels


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("profile", PROFILES)
def test_catalogue_is_the_programs_namespaces(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    _agree(rendered.cfg, rendered.records)


VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "parts off": ("private-gpu", ("spec.components.monitoring.enabled=false", "spec.components.training.enabled=false",
                                  "spec.networking.metallb.enabled=false", "spec.components.serving.enabled=false")),
    "no ingress": ("lab", ("spec.networking.ingress.enabled=false",)),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_catalogue_follows_what_a_site_turns_off(renders, variant: str) -> None:
    profile, sets = VARIANTS[variant]
    cfg = renders.config(profile, CHANNELS[-1], sets)
    _agree(cfg, evaluate(cfg))


def test_the_catalogue_needs_no_pulumi() -> None:
    import subprocess
    import sys

    probe = ("import sys, installer.catalogue, installer.verify, installer.upgrade.backup; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_kubernetes', 'stacks')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

