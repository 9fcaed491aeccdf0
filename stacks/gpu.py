"""GPU stack: the NVIDIA GPU Operator (host driver and toolkit left to Ansible) or the bare device
plugin plus dcgm-exporter; on GKE nothing, because GKE installs driver and device plugin itself
and a node must have exactly one nvidia.com/gpu advertiser.

Which runtime runs GPU containers: on hosts, containerd's default runtime stays runc and GPU hosts
(inventory group `gpu`) get a second runtime, handler `nvidia` (playbooks/roles/containerd). A pod
reaches it only by naming the RuntimeClass `nvidia`: the GPU Operator creates that class itself
(operator.runtimeClass, handler = name; NVIDIA/gpu-operator assets/pre-requisites/0200_runtime_class.yaml
and controllers/object_controls.go transformRuntimeClass) and sets it on its own operands; with the
bare device plugin kfinstall creates it here, restricted to nodes Ansible labels GPU_NODE_LABEL.
Every GPU pod kfinstall writes takes `gpu_pod_settings(cfg)`. GKE needs no class: its nodes run
GPU containers through GKE's own driver installer and device plugin.

Why a class rather than nvidia as containerd's default on GPU hosts: the NVIDIA hook then runs only
for pods that ask for it, so a CPU pod on a GPU host whose image sets NVIDIA_VISIBLE_DEVICES=all
(every CUDA image does) does not get every GPU past the scheduler, and the node's system pods
(CNI, kube-proxy, CSI) do not depend on the toolkit; both GPU stacks then work the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from installer import catalogue
from installer.config.resolved import ClusterConfig
from stacks.base import ComponentArgs, child_opts, helm_release, k, labels, namespace

NAMESPACE = catalogue.GPU.name
TIME_SLICING_CONFIG = "kfinstall-time-slicing"
DCGM_PORT_NAME = "metrics"
# The containerd runtime handler the containerd role adds on GPU hosts, and the RuntimeClass naming it
# (the GPU Operator's default operator.runtimeClass is the same name).
RUNTIME_CLASS = "nvidia"
# Set by Ansible (playbooks/roles/kubernetes) on exactly the nodes whose containerd has the `nvidia`
# handler. The node-restriction.kubernetes.io/ prefix is one a kubelet cannot set on itself
# (NodeRestriction admission), so only the control plane decides which nodes get GPU pods.
GPU_NODE_LABEL = ("node-restriction.kubernetes.io/kfinstall-nvidia-runtime", "true")
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_runtime_class(cfg: ClusterConfig) -> str | None:
    """The RuntimeClass a pod that uses nvidia.com/gpu must name; None where none is needed (GKE, no GPUs).

    Both host stacks keep runc as containerd's default, so a GPU container started without the
    `nvidia` runtime gets neither the driver libraries nor the device nodes.
    """
    gpu = cfg.spec.gpu
    if not gpu.enabled or gpu.stack == "gke":
        return None
    return RUNTIME_CLASS


def gpu_pod_settings(cfg: ClusterConfig) -> dict[str, Any]:
    """Pod spec fields for a pod that requests nvidia.com/gpu: the RuntimeClass (where needed) and the
    toleration of the nvidia.com/gpu taint GPU nodes may carry (GKE taints its GPU pools with it)."""
    settings: dict[str, Any] = {"tolerations": [dict(GPU_TOLERATION)]}
    runtime_class = gpu_runtime_class(cfg)
    if runtime_class:
        settings["runtimeClassName"] = runtime_class
    return settings


def gpu_daemonset_values(cfg: ClusterConfig) -> dict[str, Any]:
    """Chart values that put a GPU DaemonSet (device plugin, GFD, dcgm-exporter) on the `nvidia` runtime
    and only on nodes that have it: the DaemonSet controller places pods by the template's own
    nodeSelector, not the RuntimeClass's, so without it every other node keeps a Pending pod."""
    runtime_class = gpu_runtime_class(cfg)
    if runtime_class is None:
        return {}
    key, value = GPU_NODE_LABEL
    return {"runtimeClassName": runtime_class, "nodeSelector": {key: value}}


@dataclass(frozen=True, kw_only=True)
class GpuArgs(ComponentArgs):
    monitoring_release: str | None = None
    """kube-prometheus-stack's release name: ServiceMonitors carry it as their `release` label."""


def _time_slicing(replicas: int) -> dict[str, str]:
    """Device plugin sharing config: each GPU is advertised `replicas` times (no isolation)."""
    resources = [{"name": "nvidia.com/gpu", "replicas": replicas}]
    config = {"version": "v1", "sharing": {"timeSlicing": {"resources": resources}}}
    return {"any": yaml.safe_dump(config, sort_keys=False)}


class Gpu(pulumi.ComponentResource):
    """Makes nvidia.com/gpu schedulable and exports DCGM metrics to Prometheus."""

    def __init__(self, name: str, args: GpuArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Gpu", name, None, opts)
        self._name, self._args = name, args
        gpu = args.cfg.spec.gpu
        self.ns = namespace(self, args, f"{name}-ns", catalogue.GPU)
        deps: list[pulumi.Resource] = [self.ns, *args.depends_on]
        if gpu.time_slicing_replicas > 1:
            deps.append(k8s.core.v1.ConfigMap(
                f"{name}-time-slicing", metadata=k({"name": TIME_SLICING_CONFIG, "namespace": NAMESPACE,
                                                    "labels": labels("gpu")}),
                data=_time_slicing(gpu.time_slicing_replicas), opts=child_opts(self, args, [self.ns])))
        self.releases = (self._operator(deps) if gpu.stack == "gpu-operator" else self._device_plugin(deps))
        self.register_outputs({"namespace": NAMESPACE})

    def _sharing(self) -> dict[str, Any]:
        if self._args.cfg.spec.gpu.time_slicing_replicas <= 1:
            return {}
        return {"config": {"name": TIME_SLICING_CONFIG, "default": "any"}}

    def _operator(self, deps: list[pulumi.Resource]) -> list[pulumi.Resource]:
        gpu = self._args.cfg.spec.gpu
        computed: dict[str, Any] = {
            "mig": {"strategy": gpu.mig.strategy if gpu.mig.strategy != "none" else "single"},
            "devicePlugin": self._sharing(),
            "dcgmExporter": {"serviceMonitor": {"enabled": True,
                                                "additionalLabels": self._release_label()}},
        }
        if gpu.mig.config:
            computed["migManager"] = {"config": {"default": gpu.mig.config}}
        # The operator creates this RuntimeClass (handler = name) and sets it on its operands; naming it
        # here keeps it the class gpu_pod_settings gives GPU pods, whatever the chart's default becomes.
        computed["operator"] = {"runtimeClass": RUNTIME_CLASS}
        release = helm_release(self, self._args, "gpu-operator", ns=NAMESPACE, computed=computed, depends_on=deps)
        return [release]

    def _device_plugin(self, deps: list[pulumi.Resource]) -> list[pulumi.Resource]:
        cfg = self._args.cfg
        deps = [*deps, self._runtime_class()]
        on_gpu_nodes = gpu_daemonset_values(cfg)
        computed = {"migStrategy": cfg.spec.gpu.mig.strategy, **self._sharing(), **on_gpu_nodes}
        plugin = helm_release(self, self._args, "nvidia-device-plugin", ns=NAMESPACE, computed=computed,
                              depends_on=deps)
        dcgm = helm_release(self, self._args, "dcgm-exporter", ns=NAMESPACE, computed=on_gpu_nodes,
                            depends_on=deps)
        monitor = self._service_monitor([dcgm, *self._args.depends_on])
        return [plugin, dcgm, monitor]

    def _runtime_class(self) -> pulumi.Resource:
        """RuntimeClass `nvidia` for the bare device plugin (the operator makes its own). Its scheduling
        keeps every pod naming it on nodes whose containerd has the handler, and adds the GPU toleration."""
        key, value = GPU_NODE_LABEL
        return k8s.node.v1.RuntimeClass(
            f"{self._name}-runtime-class", metadata=k({"name": RUNTIME_CLASS, "labels": labels("gpu")}),
            handler=RUNTIME_CLASS,
            scheduling=k({"nodeSelector": {key: value}, "tolerations": [dict(GPU_TOLERATION)]}),
            opts=child_opts(self, self._args, self._args.depends_on))

    def _release_label(self) -> dict[str, str]:
        release = self._args.monitoring_release
        return {"release": release} if release else {}

    def _service_monitor(self, deps: list[pulumi.Resource]) -> pulumi.Resource:
        """Our own ServiceMonitor (the chart's is disabled) so its selector and label are reviewable."""
        return k8s.apiextensions.CustomResource(
            f"{self._name}-dcgm-servicemonitor", api_version="monitoring.coreos.com/v1", kind="ServiceMonitor",
            metadata=k({"name": "dcgm-exporter", "namespace": NAMESPACE,
                        "labels": {**labels("gpu", "dcgm-exporter"), **self._release_label()}}),
            spec=k({"selector": {"matchLabels": {"app.kubernetes.io/name": "dcgm-exporter"}},
                    "namespaceSelector": {"matchNames": [NAMESPACE]},
                    "endpoints": [{"port": DCGM_PORT_NAME, "path": "/metrics", "interval": "15s"}]}),
            opts=child_opts(self, self._args, deps))
