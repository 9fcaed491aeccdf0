"""The platform program: every component, in dependency order, from one ClusterConfig.

Order matters where one component's objects are another's types or consumers: StorageClasses
before volumes, MetalLB before LoadBalancer Services, kube-prometheus-stack (ServiceMonitor CRD)
before the GPU stack's ServiceMonitor, training-operator CRDs before its controller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer.adapters.kube import kubeconfig_path
from installer.catalogue import gpu_stack_in_cluster, notebook_jobs, workspace_wanted
from installer.config.resolved import ClusterConfig
from stacks.base import ComponentArgs
from stacks.gpu import Gpu, GpuArgs
from stacks.jupyterhub import NAMESPACE as JUPYTERHUB_NAMESPACE
from stacks.jupyterhub import Jupyterhub, JupyterhubArgs
from stacks.monitoring import NAMESPACE as MONITORING_NAMESPACE
from stacks.monitoring import Monitoring, MonitoringArgs
from stacks.networking import Networking, NetworkingArgs
from stacks.serving import Serving, ServingArgs
from stacks.storage import (
    FILESTORE_CLASS,
    HUB_DB_VOLUME,
    PROMETHEUS_VOLUME,
    VOLUME_CLASSES_OUTPUT,
    NfsExport,
    Storage,
    StorageArgs,
    default_class_name,
    nfs_export,
    volume_classes,
)
from stacks.tensorboard import Tensorboard, TensorboardArgs
from stacks.tls import Tls, TlsArgs
from stacks.training import Training, TrainingArgs
from stacks.workspace import NAMESPACE as WORKSPACE_NAMESPACE
from stacks.workspace import Workspace, WorkspaceArgs


@dataclass
class Cluster:
    provider: k8s.Provider
    nfs: NfsExport | None


def _cluster(cfg: ClusterConfig) -> Cluster:
    if cfg.spec.profile == "gcp":
        from stacks.gcp import FILESTORE_SHARE, GkeArgs, GkeCluster  # pulumi_gcp only loads for gcp

        gke = GkeCluster("gke", GkeArgs(cfg=cfg))
        export = NfsExport(server=gke.filestore_ip, share=f"/{FILESTORE_SHARE}", class_name=FILESTORE_CLASS,
                           mount_options=filestore_mount_options(cfg))
        return Cluster(provider=gke.provider, nfs=export)
    # The site's kubeconfig (installer.adapters.kube): the cluster verify, backup and upgrade talk to.
    provider = k8s.Provider("cluster", kubeconfig=str(kubeconfig_path(cfg)), enable_server_side_apply=True)
    return Cluster(provider=provider, nfs=nfs_export(ComponentArgs(cfg=cfg)))


def filestore_mount_options(cfg: ClusterConfig) -> list[str]:
    # Basic Filestore tiers serve NFSv3 only; the model's default nfsvers=4.1 would fail to mount.
    if cfg.spec.gcp.filestore_tier.startswith("BASIC"):
        return ["nfsvers=3", "hard"]
    return list(cfg.spec.storage.nfs.mount_options)


def program(cfg: ClusterConfig, installed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Declare the whole platform; returns the stack outputs (plain values or Outputs).

    `installed`: the outputs of the stack's last deployment (None for render or a new stack), so
    volumes whose class cannot change keep the one they were created with (storage.volume_classes).
    """
    cluster = _cluster(cfg)
    base: dict[str, Any] = {"cfg": cfg, "provider": cluster.provider}
    comps = cfg.spec.components
    default_class = default_class_name(ComponentArgs(cfg=cfg))
    storage = Storage("storage", StorageArgs(**base, nfs=cluster.nfs))
    networking = Networking("networking", NetworkingArgs(**base))
    ingress = networking.ingress_class
    classes = volume_classes(ComponentArgs(cfg=cfg), installed)
    outputs: dict[str, Any] = {"default_storage_class": default_class, "ingress_class": ingress,
                               VOLUME_CLASSES_OUTPUT: classes}
    monitoring = None
    if comps.monitoring.enabled:
        monitoring = Monitoring("monitoring", MonitoringArgs(**base, storage_class=classes[PROMETHEUS_VOLUME],
                                                            ingress_class=ingress,
                                                            depends_on=[storage, networking]))
        outputs["monitoring_release"] = monitoring.release_name
    if gpu_stack_in_cluster(cfg):
        Gpu("gpu", GpuArgs(**base, monitoring_release=monitoring.release_name if monitoring else None,
                           depends_on=[monitoring] if monitoring else []))
    if comps.training.enabled:
        Training("training", TrainingArgs(**base))
    # The team namespace: where TFJobs, serving and TensorBoard meet; notebooks submit jobs into it.
    workspace = None
    if workspace_wanted(cfg):
        workspace = Workspace("workspace", WorkspaceArgs(**base, storage_class=default_class, depends_on=[storage]))
    hub = None
    if comps.jupyterhub.enabled:
        hub = Jupyterhub("jupyterhub", JupyterhubArgs(**base, storage_class=default_class, ingress_class=ingress,
                                                db_storage_class=classes[HUB_DB_VOLUME] or None,
                                                service_type=networking.service_type,
                                                jobs_namespace=WORKSPACE_NAMESPACE if notebook_jobs(cfg) else None,
                                                depends_on=[storage, networking, *([workspace] if workspace else [])]))
    if workspace is not None:
        if comps.serving.enabled:
            outputs["serving_endpoint"] = Serving("serving", ServingArgs(**base, depends_on=[workspace])).endpoint
        if comps.tensorboard.enabled:
            Tensorboard("tensorboard", TensorboardArgs(**base, depends_on=[workspace]))
    # Last: the operator's certificate goes into every UI namespace, so those must exist first.
    ui: list[pulumi.Resource] = [c for c in (monitoring, hub) if c is not None]
    Tls("tls", TlsArgs(**base, ui_namespaces=ui_namespaces(cfg), depends_on=ui))
    return outputs


def ui_namespaces(cfg: ClusterConfig) -> list[str]:
    """Namespaces holding an Ingress of a UI: JupyterHub's (TensorBoard is a hub service behind it) and Grafana's."""
    comps = cfg.spec.components
    enabled = ((comps.jupyterhub.enabled, JUPYTERHUB_NAMESPACE), (comps.monitoring.enabled, MONITORING_NAMESPACE))
    return [ns for on, ns in enabled if on]


def export_outputs(outputs: dict[str, Any]) -> None:
    for key, value in outputs.items():
        pulumi.export(key, value)
