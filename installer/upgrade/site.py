"""The route for one site: what the channels change, less what this site turned off (issue 15 item 8).

The route planner (route.py) knows channels only. A site that turned a component off (JupyterHub,
monitoring, the ingress controller, GPU support, ...) never deployed it, so a hop neither upgrades nor
migrates it: its chart, image and host-package changes and its migrations are set aside as `skipped`
(with the reason), the pauses are recomputed from what remains, and a platform hop drains nodes for a
runtime change only when the site runs what changed (containerd; the NVIDIA driver only with GPU support).

Which charts and images the site deploys comes from the platform phase's own lists (the ones `plan` shows),
for the site with the old channel's pins and with the new one's (a chart renamed across channels, as
ingress-nginx -> traefik, counts when either side deploys it).

The TFJob guard does not depend on this: installer.upgrade.preflight.check_tfjobs judges the channel
boundary, so jobs that exist while training is off still refuse the hop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from installer.config.resolved import ClusterConfig
from installer.phases.platform import deployed_charts, deployed_images
from installer.releases import load_release
from installer.upgrade.migration_table import INGRESS_SWITCH, KPS_CRDS, TRAINING_STANDALONE, Z2JH_3_TO_4
from installer.upgrade.route import Change, Hop, Route, platform_pauses

# Migration -> (is it for this site, why not). Pod Security labels apply to whatever namespaces the
# target program creates (catalogue.namespace_levels already leaves out those of components turned off).
MIGRATION_OWNERS: dict[str, tuple[Callable[[ClusterConfig], bool], str]] = {
    Z2JH_3_TO_4: (lambda cfg: cfg.spec.components.jupyterhub.enabled, "JupyterHub is turned off"),
    TRAINING_STANDALONE: (lambda cfg: cfg.spec.components.training.enabled, "training is turned off"),
    INGRESS_SWITCH: (lambda cfg: cfg.spec.networking.ingress.enabled, "the ingress controller is turned off"),
    KPS_CRDS: (lambda cfg: cfg.spec.components.monitoring.enabled, "monitoring is turned off"),
}


def _with_all_components(cfg: ClusterConfig) -> list[ClusterConfig]:
    """The site with every optional part on (both serving images): which images belong to a component."""
    spec = cfg.spec
    comps = spec.components
    on = {name: getattr(comps, name).model_copy(update={"enabled": True})
          for name in ("jupyterhub", "training", "serving", "monitoring", "tensorboard")}
    storage = spec.storage.model_copy(update={"gluster": spec.storage.gluster.model_copy(update={"enabled": True})})
    out = []
    for gpu_serving in (False, True):
        components = comps.model_copy(update={**on, "serving": on["serving"].model_copy(update={"gpu": gpu_serving})})
        full = spec.model_copy(update={"components": components, "storage": storage,
                                       "gpu": spec.gpu.model_copy(update={"enabled": True})})
        out.append(dataclasses.replace(cfg, cluster=cfg.cluster.model_copy(update={"spec": full})))
    return out


def _pins_for(cfg: ClusterConfig, channel: str) -> ClusterConfig:
    return dataclasses.replace(cfg, release=load_release(channel))


def skip_reason(change: Change, cfg: ClusterConfig, old_channel: str, new_channel: str) -> str | None:
    """Why this site leaves `change` alone, or None when the hop carries it out."""
    kind, _, name = change.component.partition("/")
    sides = [_pins_for(cfg, old_channel), _pins_for(cfg, new_channel)]
    if kind == "chart":
        if not any(name in deployed_charts(side) for side in sides):
            return "the site does not deploy this chart (its component is turned off, or another choice, in " \
                "kfinstall.yaml)"
    elif kind == "image":
        optional = {image for side in sides for full in _with_all_components(side) for image in deployed_images(full)}
        if name in optional and not any(name in deployed_images(side) for side in sides):
            return "the site does not run this image (its component is turned off in kfinstall.yaml)"
    elif change.component in ("nvidia-driver", "nvidia-container-toolkit"):
        if not (cfg.spec.gpu.enabled and cfg.profile.host_phase):
            return "GPU support is turned off (spec.gpu.enabled)" if cfg.profile.host_phase else \
                f"profile {cfg.spec.profile} has no hosts kfinstall manages"
    elif change.component == "kube-vip":
        if not cfg.spec.kubernetes.control_plane_endpoint:
            return "no kube-vip: spec.kubernetes.controlPlaneEndpoint is not set"
    elif (change.component == "containerd" or kind == "cni") and not cfg.profile.host_phase:
        return f"profile {cfg.spec.profile} has no hosts kfinstall manages"
    return None


def site_hop(hop: Hop, cfg: ClusterConfig) -> Hop:
    """`hop` without the changes and migrations of what the site turned off (a Kubernetes hop is unchanged)."""
    if hop.kind != "platform":
        return hop
    kept: list[Change] = []
    skipped: list[str] = []
    for change in hop.changes:
        reason = skip_reason(change, cfg, hop.from_channel, hop.to_channel)
        if reason is None:
            kept.append(change)
        else:
            skipped.append(f"{change.text()}: {reason}")
    migrations: list[str] = []
    for name in hop.migrations:
        owner = MIGRATION_OWNERS.get(name)
        if owner is None or owner[0](cfg):
            migrations.append(name)
        else:
            skipped.append(f"migration {name}: {owner[1]}")
    changes = tuple(kept)
    return dataclasses.replace(
        hop, changes=changes, migrations=tuple(migrations), skipped=tuple(skipped),
        pauses=platform_pauses(hop.index, hop.to_channel, changes, tuple(migrations)),
    )


def site_route(route: Route, cfg: ClusterConfig) -> Route:
    """The route as this site runs it: every platform hop through site_hop."""
    return dataclasses.replace(route, hops=tuple(site_hop(hop, cfg) for hop in route.hops))
