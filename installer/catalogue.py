"""The platform's names, namespaces and Pod Security levels: one table, without Pulumi.

stacks/ creates every namespace from these entries (stacks.base.namespace takes one), and decides
which parts to deploy with the predicates below; `verify`, `plan`, `backup` and `upgrade` read the
same table without loading Pulumi or rendering the program (the upgrade's Pod Security dry run used
to start a child `python -m installer render` to learn the levels). tests/stacks/test_catalogue.py
holds the table to the rendered program for every profile x channel.

Privileged namespaces hold only DaemonSets that need the host (CSI node plugins, MetalLB speakers,
node-exporter, GPU operands); everything else is baseline or stricter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from installer.config.resolved import ClusterConfig
from installer.releases import Release

PodSecurityLevel = Literal["privileged", "baseline", "restricted"]
IngressController = Literal["ingress-nginx", "traefik"]


@dataclass(frozen=True)
class Namespace:
    """A namespace the platform program creates, its Pod Security level and its component label."""

    name: str
    level: PodSecurityLevel
    component: str  # kfinstall.io/component of the namespace and what lives in it


STORAGE = Namespace("kfinstall-storage", "privileged", "storage")  # CSI node plugins mount on the host
METALLB = Namespace("metallb-system", "privileged", "networking")  # speakers: host network, NET_RAW
INGRESS: dict[IngressController, Namespace] = {
    "ingress-nginx": Namespace("ingress-nginx", "baseline", "networking"),
    "traefik": Namespace("traefik", "baseline", "networking"),
}
MONITORING = Namespace("monitoring", "privileged", "monitoring")  # node-exporter: host network and PID
GPU = Namespace("gpu-operator", "privileged", "gpu")  # driver, toolkit and device-plugin DaemonSets
TRAINING = Namespace("kubeflow", "restricted", "training")
WORKSPACE = Namespace("kubeflow-user", "baseline", "workspace")  # TFJobs, serving, TensorBoard
JUPYTERHUB = Namespace("jupyterhub", "baseline", "jupyterhub")
CERT_MANAGER = Namespace("cert-manager", "baseline", "tls")

def pod_security_labels(level: str) -> dict[str, str]:
    """The Pod Security Admission labels of a namespace at `level`: enforce, audit and warn, at the
    API server's latest policy version."""
    labels: dict[str, str] = {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "audit", "warn")}
    labels["pod-security.kubernetes.io/enforce-version"] = "latest"
    return labels


# Names inside those namespaces that commands outside the program address.
PROMETHEUS_SERVICE = "kps-prometheus"  # kube-prometheus-stack with fullnameOverride kps (charts/)
HUB_PROXY_SERVICE = "proxy-public"  # z2jh's own name for the proxy's Service
HUB_POD_SELECTOR = "component=hub"  # z2jh's label of the hub pod
SERVING_NAME = "tf-serving"  # Deployment and Service of TF Serving (stacks/serving.py)
INGRESS_NGINX_SERVICE = "ingress-nginx-controller"  # <release>-controller, release ingress-nginx


# What the program deploys for a site -----------------------------------------------------------------


def ingress_controller(release: Release) -> IngressController:
    """The controller a channel pins (a channel pins exactly one of them)."""
    return "traefik" if release.ingress_controller == "traefik" else "ingress-nginx"


def tls_enabled(cfg: ClusterConfig) -> bool:
    """True when UIs are served over HTTPS (everywhere but a lab that turned it off)."""
    net = cfg.spec.networking
    return net.tls.enabled and net.ingress.enabled and bool(net.ingress.host)


def uses_site_ca(cfg: ClusterConfig) -> bool:
    """cert-manager issues the UI certificate from the site CA (no certificate of the operator's own)."""
    return tls_enabled(cfg) and cfg.spec.networking.tls.cert_file is None


def gpu_stack_in_cluster(cfg: ClusterConfig) -> bool:
    """The GPU Operator or device plugin runs in the cluster (GKE's managed GPU stack does not)."""
    return cfg.spec.gpu.enabled and cfg.spec.gpu.stack != "gke"


def notebook_jobs(cfg: ClusterConfig) -> bool:
    """Notebooks submit training jobs into the workspace namespace."""
    comps = cfg.spec.components
    return comps.jupyterhub.enabled and comps.training.enabled


def workspace_wanted(cfg: ClusterConfig) -> bool:
    """The team namespace exists where TFJobs, serving and TensorBoard meet."""
    comps = cfg.spec.components
    return comps.serving.enabled or comps.tensorboard.enabled or notebook_jobs(cfg)


def platform_namespaces(cfg: ClusterConfig) -> tuple[Namespace, ...]:
    """Every namespace the program creates for `cfg`, in the program's order."""
    spec, comps = cfg.spec, cfg.spec.components
    wanted = [
        (True, STORAGE),
        (spec.networking.metallb.enabled, METALLB),
        (spec.networking.ingress.enabled, INGRESS[ingress_controller(cfg.release)]),
        (comps.monitoring.enabled, MONITORING),
        (gpu_stack_in_cluster(cfg), GPU),
        (comps.training.enabled, TRAINING),
        (workspace_wanted(cfg), WORKSPACE),
        (comps.jupyterhub.enabled, JUPYTERHUB),
        (uses_site_ca(cfg), CERT_MANAGER),
    ]
    return tuple(ns for on, ns in wanted if on)


def namespace_levels(cfg: ClusterConfig) -> dict[str, PodSecurityLevel]:
    """Namespace name -> the Pod Security level the program labels it with (enforce, audit, warn)."""
    return {ns.name: ns.level for ns in platform_namespaces(cfg)}
