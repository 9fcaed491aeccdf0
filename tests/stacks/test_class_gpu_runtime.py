"""Class check: every pod that uses an NVIDIA GPU names a RuntimeClass that exists, whenever `nvidia`
is not containerd's default runtime (every profile x channel, plus the bare device-plugin stack).

Why a pod without the class gets no GPU, from upstream:
- The NVIDIA Container Toolkit injects the driver libraries and /dev/nvidia* only when the container
  is started by `nvidia-container-runtime` (it reads NVIDIA_VISIBLE_DEVICES or CDI annotations);
  plain runc ignores both. kfinstall's containerd keeps `default_runtime_name = "runc"` and adds the
  `nvidia` runtime on GPU hosts only (playbooks/roles/containerd/templates/config.toml.j2), so a pod
  reaches it only through a RuntimeClass with handler `nvidia` (Kubernetes RuntimeClass, node.k8s.io/v1).
- NVIDIA/k8s-device-plugin deployments/helm/nvidia-device-plugin/templates/daemonset-device-plugin.yml
  (v0.16.2 .. v0.19.3): the plugin container carries NVIDIA_VISIBLE_DEVICES=all and loads NVML from
  the injected libraries; `runtimeClassName` is rendered only when the value is set (default null).
  A GPU workload gets its devices the same way: the plugin's default device-list strategy is `envvar`
  (cmd/nvidia-device-plugin/main.go, api/config/v1/consts.go), so Allocate only sets
  NVIDIA_VISIBLE_DEVICES (internal/plugin/server.go) and the nvidia runtime does the injection.
- NVIDIA's GPU Operator CDI page (docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/cdi.html):
  from v25.10.0 containerd's own CDI support injects GPUs, and workloads that set
  `runtimeClassName: nvidia` need no change; before it (channels 1.9, 1.10) the runtime is required.
- NVIDIA/dcgm-exporter deployment/templates/daemonset.yaml (3.3.7-3.5.0 .. 4.5.3-4.8.2): same
  `runtimeClassName` value (default ""); its image sets NVIDIA_VISIBLE_DEVICES=all
  (docker/Dockerfile.ubuntu22.04 at 3.3.7-3.5.0, docker/Dockerfile at 4.5.3-4.8.2).
- NVIDIA/gpu-operator (v24.6.2, v25.3.4, v25.10.1, v26.3.3): the operator creates RuntimeClass
  `operator.runtimeClass` with handler of the same name (assets/pre-requisites/0200_runtime_class.yaml,
  controllers/object_controls.go transformRuntimeClass) and sets it on its operands on containerd
  (setRuntimeClass / setRuntimeClassName); at v26.3.3 not when cdi.nriPluginEnabled is true
  (controllers/state_manager.go isStateEnabled "pre-requisites"). It does not make `nvidia` the
  default runtime: with toolkit.enabled false it never touches containerd's configuration.
- GKE: the GPU device plugin GKE runs mounts the driver (host /home/kubernetes/bin/nvidia at
  /usr/local/nvidia) and the device nodes into each container itself (GoogleCloudPlatform/
  container-engine-accelerators pkg/gpu/nvidia/beta_plugin.go Allocate, cmd/nvidia_gpu/nvidia_gpu.go
  -host-path/-container-path), so no RuntimeClass is needed or created there.
- KubeSpawner merges `extra_pod_config` into the user pod's spec (jupyterhub/kubespawner
  kubespawner/objects.py make_pod, update_k8s_model), which is how a GPU profile names the class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import kvalidate
import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, REPO, SHARED_SCHEMAS, RenderCache

from installer.config.resolved import ClusterConfig
from installer.render import Recorded, evaluate, plain
from installer.verify import demo_objects
from stacks.gpu import GPU_NODE_LABEL, RUNTIME_CLASS
from stacks.values import merge

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
# No sample site uses the bare device plugin, so private-gpu is also rendered with it.
DEVICE_PLUGIN = ("spec.gpu.stack=device-plugin",)
CASES = [(p, c, ()) for p, c in MATRIX] + [("private-gpu", c, DEVICE_PLUGIN) for c in CHANNELS]
CONTAINERD_TEMPLATE = REPO / "playbooks" / "roles" / "containerd" / "templates" / "config.toml.j2"
KUBERNETES_DEFAULTS = REPO / "playbooks" / "roles" / "kubernetes" / "defaults" / "main.yml"
GPU = "nvidia.com/gpu"
# The runtime the containerd role adds on GPU hosts (runtimes.nvidia, BinaryName nvidia-container-runtime).
NVIDIA_HANDLER = "nvidia"


def _case_id(case: tuple[str, str, tuple[str, ...]]) -> str:
    profile, channel, sets = case
    return f"{profile}-{channel}" + ("-device-plugin" if sets else "")


@dataclass
class GpuPods:
    """Pod specs that need the NVIDIA runtime (name -> spec) and the RuntimeClasses that will exist."""

    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """RuntimeClass name -> {"handler": ..., "scheduling": ...} (rendered, or created by the GPU Operator)."""


def _containerd_runtimes() -> tuple[str, list[str]]:
    """(default runtime, runtime handlers) of kfinstall's containerd configuration on a GPU host."""
    text = CONTAINERD_TEMPLATE.read_text()
    default = re.search(r'default_runtime_name = "([^"]+)"', text)
    assert default, f"{CONTAINERD_TEMPLATE}: no default_runtime_name"
    return default.group(1), re.findall(r"\.containerd\.runtimes\.([A-Za-z0-9_-]+)\]", text)


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod template of a workload (Pod, Deployment-like, CronJob, TFJob/PyTorchJob replicas)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return [spec]
    if "template" in spec:
        return [spec["template"].get("spec") or {}]
    if "jobTemplate" in spec:
        return _pod_specs({"spec": spec["jobTemplate"].get("spec") or {}})
    replicas = [value for key, value in spec.items() if key.endswith("ReplicaSpecs") and isinstance(value, dict)]
    return [(r.get("template") or {}).get("spec") or {} for group in replicas for r in group.values()]


def _wants_gpu(pod: dict[str, Any]) -> bool:
    containers = [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]
    return any(str(((c.get("resources") or {}).get(part) or {}).get(GPU, "0")) not in ("0", "")
               for c in containers for part in ("limits", "requests"))


def _release_values(records: list[Recorded], release: str) -> dict[str, Any] | None:
    for record in records:
        if record.typ == "kubernetes:helm.sh/v3:Release" and plain(record.inputs).get("name") == release:
            return plain(record.inputs).get("values") or {}
    return None


def _upstream_defaults(folder: str, version: str) -> dict[str, Any]:
    path = SHARED_SCHEMAS / folder / version / "values.yaml"
    if not path.is_file():
        pytest.skip(f"upstream chart defaults absent: {path}")
    return yaml.safe_load(path.read_text()) or {}


def _notebook_pods(hub: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The user pod each GPU profile spawns, as far as the runtime is concerned.

    z2jh maps singleuser.extraResource.limits and profileList[].kubespawner_override to KubeSpawner
    (extra_resource_limits, extra_pod_config); KubeSpawner puts extra_pod_config into the pod spec.
    """
    singleuser = hub.get("singleuser") or {}
    base_limits = ((singleuser.get("extraResource") or {}).get("limits")) or {}
    base_pod = singleuser.get("extraPodConfig") or {}
    pods = {}
    for profile in singleuser.get("profileList") or [{"slug": "default", "kubespawner_override": {}}]:
        override = profile.get("kubespawner_override") or {}
        limits = {**base_limits, **(override.get("extra_resource_limits") or {})}
        pod = dict(override.get("extra_pod_config", base_pod))
        pod["runtimeClassName"] = pod.get("runtimeClassName", pod.get("runtime_class_name"))
        pod["containers"] = [{"name": "notebook", "resources": {"limits": limits}}]
        pods[f"jupyterhub profile {profile.get('slug')}"] = pod
    return pods


def _chart_daemonsets(cfg: ClusterConfig, records: list[Recorded], found: GpuPods) -> None:
    """GPU DaemonSets the charts create from their values (the charts are never rendered here)."""
    for release in ("nvidia-device-plugin", "dcgm-exporter"):
        values = _release_values(records, release)
        if values is not None:
            # Both templates write runtimeClassName only when the value is non-empty.
            pod = {"runtimeClassName": values.get("runtimeClassName") or None}
            found.pods[f"{release} DaemonSet (chart values)"] = pod
    operator = _release_values(records, "gpu-operator")
    if operator is not None:
        version = cfg.release.charts["gpu-operator"].version
        merged = merge(_upstream_defaults("gpu-operator", version), operator)
        if (merged.get("cdi") or {}).get("nriPluginEnabled"):
            pytest.fail("gpu-operator with cdi.nriPluginEnabled creates no RuntimeClass: this check does not model it")
        name = (merged.get("operator") or {}).get("runtimeClass") or "nvidia"  # DefaultRuntimeClass
        found.classes[name] = {"handler": name, "scheduling": None}
        for operand in ("devicePlugin", "dcgmExporter", "gfd"):
            if (merged.get(operand) or {}).get("enabled", True):
                found.pods[f"gpu-operator operand {operand}"] = {"runtimeClassName": name}


def gpu_pods(cfg: ClusterConfig, records: list[Recorded]) -> GpuPods:
    found = GpuPods()
    objects = [plain(r.inputs) for r in records if r.is_kubernetes_object]
    for obj in objects:
        if obj.get("kind") == "RuntimeClass":
            found.classes[obj["metadata"]["name"]] = {"handler": obj.get("handler"),
                                                      "scheduling": obj.get("scheduling")}
    for obj in [*objects, *demo_objects(cfg)]:
        for index, pod in enumerate(_pod_specs(obj)):
            if _wants_gpu(pod):
                found.pods[f"{obj.get('kind')} {obj['metadata'].get('name')} #{index}"] = pod
    hub = _release_values(records, "jupyterhub")
    if hub is not None:
        found.pods.update({name: pod for name, pod in _notebook_pods(hub).items() if _wants_gpu(pod)})
    if cfg.spec.gpu.enabled:
        _chart_daemonsets(cfg, records, found)
    return found


@pytest.fixture(scope="module")
def gpu_renders(renders: RenderCache) -> Any:
    done: dict[tuple[str, str, tuple[str, ...]], tuple[ClusterConfig, list[Recorded]]] = {}

    def get(profile: str, channel: str, sets: tuple[str, ...]) -> tuple[ClusterConfig, list[Recorded]]:
        key = (profile, channel, sets)
        if key not in done:
            if not sets:
                rendered = renders.get(profile, channel)
                done[key] = (rendered.cfg, rendered.records)
            else:
                cfg = renders.config(profile, channel, sets)
                done[key] = (cfg, evaluate(cfg))
        return done[key]

    return get


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_every_gpu_pod_names_an_existing_nvidia_runtime_class(
        gpu_renders: Any, case: tuple[str, str, tuple[str, ...]]) -> None:
    cfg, records = gpu_renders(*case)
    found = gpu_pods(cfg, records)
    default_runtime, handlers = _containerd_runtimes()
    if cfg.spec.gpu.enabled and cfg.spec.gpu.stack != "gke":
        # Hosts: the GPU stack's DaemonSets always, and the sample's GPU notebooks, need the runtime.
        assert found.pods, "a GPU site with no pod on the NVIDIA runtime: the walker found nothing"
        assert default_runtime != "nvidia", "nvidia became containerd's default: revisit this check"
        assert NVIDIA_HANDLER in handlers
        bad = {name: pod.get("runtimeClassName") for name, pod in found.pods.items()
               if pod.get("runtimeClassName") not in found.classes
               or found.classes[pod["runtimeClassName"]]["handler"] != NVIDIA_HANDLER}
        assert not bad, (f"GPU pods without a RuntimeClass whose handler is {NVIDIA_HANDLER!r}; "
                         f"classes: {found.classes}; pods -> class: {bad}")
    else:
        # GKE and GPU-less sites: no RuntimeClass is needed, and none may be named that does not exist.
        named = {name: pod.get("runtimeClassName") for name, pod in found.pods.items() if pod.get("runtimeClassName")}
        assert all(c in found.classes for c in named.values()), named


@pytest.mark.parametrize("channel", CHANNELS)
def test_device_plugin_runtime_class_keeps_to_the_nodes_ansible_labels(gpu_renders: Any, channel: str) -> None:
    """The RuntimeClass's scheduling.nodeSelector is the label Ansible gives exactly the hosts whose
    containerd has the handler (group `gpu`), and the GPU DaemonSets select the same nodes: the
    DaemonSet controller places pods by the template's nodeSelector, not by the RuntimeClass's
    (kubernetes pkg/controller/daemon, NodeShouldRunDaemonPod), so other nodes would hold Pending pods."""
    cfg, records = gpu_renders("private-gpu", channel, DEVICE_PLUGIN)
    found = gpu_pods(cfg, records)
    key, value = GPU_NODE_LABEL
    runtime_classes = [plain(r.inputs) for r in records if r.is_kubernetes_object and r.typ.endswith("RuntimeClass")]
    assert [kvalidate.errors(obj, cfg.kubernetes_minor) for obj in runtime_classes] == [[]]
    assert found.classes.get(RUNTIME_CLASS, {}).get("scheduling", {}).get("nodeSelector") == {key: value}
    defaults = yaml.safe_load(KUBERNETES_DEFAULTS.read_text())
    assert defaults.get("kubernetes_gpu_runtime_label") == key, "the kubernetes role labels GPU nodes with another key"
    for release in ("nvidia-device-plugin", "dcgm-exporter"):
        values = _release_values(records, release) or {}
        assert values.get("nodeSelector") == {key: value}, release


def test_the_check_sees_a_missing_class(renders: RenderCache) -> None:
    """The walker reports a GPU serving pod, a GPU notebook and the plugin DaemonSets without a class."""
    cfg = renders.config("private-gpu", CHANNELS[-1], DEVICE_PLUGIN)
    records = [r for r in evaluate(cfg) if not (r.typ.endswith("RuntimeClass"))]
    found = gpu_pods(cfg, records)
    assert {"Deployment tf-serving #0", "nvidia-device-plugin DaemonSet (chart values)",
            "dcgm-exporter DaemonSet (chart values)"} <= set(found.pods)
    assert any(name.startswith("jupyterhub profile") for name in found.pods)
    assert not found.classes
