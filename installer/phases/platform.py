"""The platform phase: the Pulumi program (stacks.program) through installer.adapters.pulumi.

The adapter's preflight (CLI, plugins, kubeconfig, passphrase) raises PreflightError (exit 3)
with the fix for each missing piece; a failed update raises PhaseFailed (exit 4).
"""

from __future__ import annotations

import time

from installer.adapters import pulumi as engine
from installer.config.resolved import ClusterConfig
from installer.phases.base import Component, Phase, PhasePlan, PhaseResult, RunContext

# Why `up`'s preflight leaves the kubeconfig out (preflight's details and output say so).
KUBECONFIG_LATER = "written by the hosts phase of this run"


def checks_later(cfg: ClusterConfig, phases: tuple[str, ...]) -> dict[str, str]:
    """The platform checks preflight leaves to the platform phase itself, each with its reason.

    A fresh host-based site has no kubeconfig until its hosts phase builds the cluster and fetches
    STATE/kubeconfig, so in a run whose hosts phase comes first that check waits for the platform
    phase (engine.up makes it before any change). Without the hosts phase first (`--only platform`)
    preflight checks it."""
    if not cfg.profile.host_phase or "hosts" not in phases or "platform" not in phases:
        return {}
    return {"kubeconfig": KUBECONFIG_LATER} if phases.index("hosts") < phases.index("platform") else {}


def check(ctx: RunContext, phases: tuple[str, ...]) -> None:
    """Part of preflight: refuse before the host phase when the platform phase could not run (every
    check but the ones `checks_later` names for a run of these phases)."""
    engine.preflight(ctx.cfg, kubeconfig="kubeconfig" not in checks_later(ctx.cfg, phases))


def run(ctx: RunContext) -> PhaseResult:
    start = time.monotonic()

    def on_output(line: str) -> None:
        ctx.record.append_event({"event": "pulumi", "line": line.rstrip()})
        ctx.console.print(line.rstrip(), markup=False, highlight=False)

    summary = engine.up(ctx.cfg, on_output=on_output)
    ctx.record.write_json("pulumi-up.json", summary.as_dict())
    return PhaseResult("platform", "ok", time.monotonic() - start, details={"pulumi": summary.as_dict()})


class PlatformPhase(Phase):
    """The Pulumi program: charts and images of the enabled components (on gcp, the GKE cluster too)."""

    name = "platform"

    def plan(self, cfg: ClusterConfig) -> PhasePlan:
        components = tuple(_components(cfg))
        return PhasePlan("platform", True, tuple(f"{c.name} {c.version}" for c in components), components=components)

    def run(self, ctx: RunContext) -> PhaseResult:
        return run(ctx)


PLATFORM = PlatformPhase()


def _enabled_charts(cfg: ClusterConfig) -> list[str]:
    spec = cfg.spec
    charts = []
    if spec.storage.nfs.enabled:
        charts.append("csi-driver-nfs")
    if spec.gpu.enabled and spec.gpu.stack == "gpu-operator":
        charts.append("gpu-operator")
    if spec.gpu.enabled and spec.gpu.stack == "device-plugin":
        charts += ["nvidia-device-plugin", "dcgm-exporter"]
    if spec.networking.metallb.enabled:
        charts.append("metallb")
    if spec.networking.ingress.enabled:
        charts.append(cfg.release.ingress_controller)
    if spec.networking.tls.enabled and spec.networking.ingress.host and spec.networking.tls.cert_file is None:
        charts.append("cert-manager")  # issues the UI certificate from the site CA (stacks/tls.py)
    if spec.components.jupyterhub.enabled:
        charts.append("jupyterhub")
    if spec.components.monitoring.enabled:
        charts.append("kube-prometheus-stack")
    if spec.components.serving.enabled and spec.profile != "gcp":
        charts.append("metrics-server")
    return charts


def _enabled_images(cfg: ClusterConfig) -> list[str]:
    components, images = cfg.spec.components, []
    if cfg.spec.storage.gluster.enabled:
        images.append("local-path-provisioner")
    if components.training.enabled:
        images.append("training-operator")
    if components.serving.enabled:
        images.append("tensorflow-serving-gpu" if components.serving.gpu else "tensorflow-serving")
    if components.tensorboard.enabled:
        images += ["tensorboard", "tensorboard-auth"]
    if components.jupyterhub.enabled:
        images.append("notebook")
        if cfg.spec.gpu.enabled:
            images.append("notebook-gpu")
    return images


def deployed_charts(cfg: ClusterConfig) -> list[str]:
    """The channel's chart keys the platform program deploys for `cfg` (an upgrade leaves the others alone)."""
    return _enabled_charts(cfg)


def deployed_images(cfg: ClusterConfig) -> list[str]:
    """The channel's component images the program deploys for `cfg` (helpers such as busybox not listed)."""
    return _enabled_images(cfg)


def _components(cfg: ClusterConfig) -> list[Component]:
    pins = cfg.release
    found = [
        Component(name, "chart", pins.charts[name].version, pins.charts[name].repository, "platform")
        for name in _enabled_charts(cfg)
    ]
    for name in _enabled_images(cfg):
        image = pins.images[name]
        found.append(Component(name, "image", image.release or image.tag, image.ref, "platform"))
    return found
