"""The plan: what `kfinstall up` would do, where, with which versions. Computed without any SSH.

JSON form (stable; documented in docs/plan-json.md), `apiVersion: kfinstall.io/plan/v1`:
cluster, profile, channel, kubernetesVersion, hosts[], roles{}, phases[], components[], storage,
auth, warnings[].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from installer.config.inventory import ROLE_GROUPS
from installer.config.resolved import ClusterConfig
from installer.serving import replica_bounds

PLAN_API_VERSION = "kfinstall.io/plan/v1"


@dataclass(frozen=True)
class Component:
    name: str
    kind: str  # host-package | chart | image | kubernetes
    version: str
    source: str
    phase: str

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "source": self.source,
            "phase": self.phase,
        }


@dataclass(frozen=True)
class Phase:
    name: str
    runs: bool
    actions: tuple[str, ...]
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "runs": self.runs, "actions": list(self.actions), "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    cfg: ClusterConfig
    phases: tuple[Phase, ...]
    components: tuple[Component, ...]
    extra_warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "apiVersion": PLAN_API_VERSION,
            "cluster": cfg.name,
            "profile": cfg.spec.profile,
            "channel": cfg.release.channel,
            "kubeflowRef": cfg.release.kubeflow_ref,
            "kubernetesVersion": cfg.kubernetes_version,
            "kubernetesVersionDefaulted": cfg.kubernetes_version_defaulted,
            "hosts": [{"name": h.name, "address": h.address, "roles": list(h.roles)} for h in cfg.inventory.hosts],
            "roles": {role: cfg.inventory.names(role) for role in ROLE_GROUPS},
            "phases": [p.as_dict() for p in self.phases],
            "components": [c.as_dict() for c in self.components],
            "storage": _storage(cfg),
            "auth": _auth(cfg),
            "warnings": [w.as_dict() for w in cfg.warnings]
            + [{"severity": "warning", "message": m} for m in self.extra_warnings],
        }


def _storage(cfg: ClusterConfig) -> dict[str, Any]:
    storage = cfg.spec.storage
    return {
        "defaultClass": storage.default_class,
        "nfs": {
            "enabled": storage.nfs.enabled,
            "implementation": storage.nfs.implementation,
            "server": cfg.nfs_server_address(),
            "exportPath": storage.nfs.export_path,
            "storageClass": storage.nfs.storage_class,
        },
        "gluster": {
            "enabled": storage.gluster.enabled,
            "volume": storage.gluster.volume,
            "replica": storage.gluster.replica,
            "hosts": cfg.inventory.names("gluster"),
            "mountPath": storage.gluster.mount_path,
            "storageClass": storage.gluster.storage_class,
        },
    }


def _auth(cfg: ClusterConfig) -> dict[str, Any]:
    auth = cfg.spec.auth
    result: dict[str, Any] = {"type": auth.type, "admins": list(auth.admins)}
    if auth.type == "ldap":
        result["ldap"] = {
            "url": auth.ldap.url,
            "bindDn": auth.ldap.bind_dn,
            "userSearchBase": auth.ldap.user_search_base,
            "allowedGroups": list(auth.ldap.allowed_groups),
        }
    return result


def build_plan(cfg: ClusterConfig) -> Plan:
    phases = (_preflight(cfg), _hosts(cfg), _infrastructure(cfg), _platform(cfg), _verify(cfg))
    # The serving HPA's GPU bound comes from the function the stack uses, so plan says what up does.
    notes = tuple(n for n in (replica_bounds(cfg).note,) if n)
    return Plan(cfg=cfg, phases=phases, components=tuple(_components(cfg)), extra_warnings=notes)


def _count(cfg: ClusterConfig, role: str) -> str:
    hosts = cfg.inventory.names(role)
    shown = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more" if len(hosts) > 3 else "")
    return f"{len(hosts)} host(s): {shown}" if hosts else "no hosts"


def _preflight(cfg: ClusterConfig) -> Phase:
    actions = []
    if cfg.profile.host_phase:
        actions.append(f"check SSH, OS, disk, sudo and clock skew on {len(cfg.inventory.hosts)} host(s)")
    actions.append("check the Pulumi CLI and provider plugins match the installed SDKs")
    return Phase("preflight", True, tuple(actions))


def _hosts(cfg: ClusterConfig) -> Phase:
    if not cfg.profile.host_phase:
        return Phase("hosts", False, (), f"profile {cfg.spec.profile} has no host phase")
    spec, pins = cfg.spec, cfg.release
    actions = [
        f"os_prepare: packages, swap off, kernel modules and sysctls, time sync on {len(cfg.inventory.hosts)} host(s)",
        f"containerd ({spec.containerd.source}) with SystemdCgroup on {_count(cfg, 'kube_node')}",
    ]
    if spec.gpu.enabled:
        actions.append(
            f"nvidia_gpu: driver branch {cfg.nvidia_driver_branch} + container toolkit "
            f"{pins.nvidia.container_toolkit} on {_count(cfg, 'gpu')}"
        )
    if spec.storage.nfs.enabled:
        actions.append(
            f"nfs_server ({spec.storage.nfs.implementation}) exporting {spec.storage.nfs.export_path} "
            f"on {_count(cfg, 'nfs_server')}; nfs clients on every node"
        )
    if spec.storage.gluster.enabled:
        actions.append(
            f"glusterfs: replica {spec.storage.gluster.replica} volume {spec.storage.gluster.volume} on "
            f"{_count(cfg, 'gluster')}; FUSE mount {spec.storage.gluster.mount_path} on every node"
        )
    control = cfg.inventory.names("kube_control_plane")
    join = len(cfg.inventory.hosts) - 1
    actions.append(
        f"kubernetes {cfg.kubernetes_version}: kubeadm init on {control[0] if control else '-'}, "
        f"join {join} more, Calico {pins.kubernetes.cni['calico']}, kubeconfig into the state dir"
    )
    if spec.kubernetes.control_plane_endpoint:
        actions.append(f"kube-vip {pins.kubernetes.kube_vip.tag} announcing {spec.kubernetes.control_plane_endpoint}")
    return Phase("hosts", True, tuple(actions))


def _infrastructure(cfg: ClusterConfig) -> Phase:
    if cfg.spec.profile != "gcp":
        return Phase("infrastructure", False, (), "only the gcp profile creates its cluster")
    gcp = cfg.spec.gcp
    return Phase(
        "infrastructure",
        True,
        (
            f"GKE cluster {cfg.name} in {gcp.region} (project {gcp.project}), {gcp.node_count} x {gcp.machine_type}",
            f"GPU pool: {gcp.gpu_node_count} x {gcp.gpu_machine_type} with {gcp.gpu_count} x {gcp.gpu_type} "
            "(GKE-managed driver)",
            f"Filestore {gcp.filestore_tier} {gcp.filestore_capacity_gb} GB for ReadWriteMany volumes",
        ),
    )


def _platform(cfg: ClusterConfig) -> Phase:
    actions = [f"{c.name} {c.version}" for c in _components(cfg) if c.phase == "platform"]
    return Phase("platform", True, tuple(actions))


def _verify(cfg: ClusterConfig) -> Phase:
    return Phase(
        "verify",
        True,
        (
            "nodes Ready, GPUs allocatable, default StorageClass, JupyterHub login, "
            "a TFJob completes, a serving query answers, DCGM metrics in Prometheus",
        ),
    )


def _components(cfg: ClusterConfig) -> list[Component]:
    return _host_components(cfg) + _platform_components(cfg)


def _host_components(cfg: ClusterConfig) -> list[Component]:
    if not cfg.profile.host_phase:
        return [Component("kubernetes", "kubernetes", cfg.kubernetes_version, "GKE", "infrastructure")]
    pins, spec = cfg.release, cfg.spec
    containerd = (
        f">= {pins.containerd.minimum_distro}" if spec.containerd.source == "distro" else pins.containerd.version
    )
    found = [
        Component("kubernetes", "kubernetes", cfg.kubernetes_version, spec.kubernetes.package_source, "hosts"),
        Component("containerd", "host-package", containerd, spec.containerd.source, "hosts"),
        Component("calico", "manifest", pins.kubernetes.cni["calico"], "upstream manifest", "hosts"),
    ]
    if spec.kubernetes.control_plane_endpoint:
        found.append(
            Component("kube-vip", "image", pins.kubernetes.kube_vip.tag, pins.kubernetes.kube_vip.image, "hosts")
        )
    if spec.gpu.enabled:
        found += [
            Component("nvidia-driver", "host-package", cfg.nvidia_driver_branch, "driver branch", "hosts"),
            Component("nvidia-container-toolkit", "host-package", pins.nvidia.container_toolkit, "NVIDIA", "hosts"),
        ]
    return found


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


def _platform_components(cfg: ClusterConfig) -> list[Component]:
    pins = cfg.release
    found = [
        Component(name, "chart", pins.charts[name].version, pins.charts[name].repository, "platform")
        for name in _enabled_charts(cfg)
    ]
    for name in _enabled_images(cfg):
        image = pins.images[name]
        found.append(Component(name, "image", image.release or image.tag, image.ref, "platform"))
    return found
