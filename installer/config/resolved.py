"""ClusterConfig: the one frozen, validated view of a site that every later layer receives."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from installer.config.inventory import Inventory
from installer.config.model import ClusterFile, Spec
from installer.config.problems import Problem
from installer.config.secrets import Secrets
from installer.config.tlsfiles import TlsMaterial
from installer.profiles import Profile
from installer.releases import Release
from installer.versions import has_patch, minor_of, parse

REDACTED = "<redacted>"


@dataclass(frozen=True)
class ClusterConfig:
    """Everything a run needs, validated; nothing downstream reads a user file again."""

    site: Path
    cluster: ClusterFile
    profile: Profile
    release: Release
    inventory: Inventory
    secrets: Secrets | None
    warnings: tuple[Problem, ...]
    state_dir: Path
    tls_material: TlsMaterial | None = None
    """The operator's certificate and key (spec.networking.tls.certFile/keyFile), checked; None otherwise."""

    @property
    def name(self) -> str:
        return self.cluster.metadata.name

    @property
    def spec(self) -> Spec:
        return self.cluster.spec

    @property
    def kubernetes_version(self) -> str:
        """The configured Kubernetes version, or the channel's default minor when none is set."""
        return self.spec.kubernetes.version or self.release.kubernetes.default_minor

    @property
    def kubernetes_minor(self) -> str:
        return minor_of(self.kubernetes_version)

    @property
    def kubernetes_package_version(self) -> str:
        """The apt version pattern the kubernetes role installs kubeadm, kubelet and kubectl at
        (kf_kubernetes_package_version): a given patch exactly (X.Y.Z-*, any package revision such as
        X.Y.Z-1.1), else the newest patch of the minor (X.Y.*). Plan shows this same value."""
        major, minor, patch = parse(self.kubernetes_version)  # numbers only: nothing else reaches apt
        return f"{major}.{minor}.{patch}-*" if has_patch(self.kubernetes_version) else f"{major}.{minor}.*"

    @property
    def kubernetes_version_defaulted(self) -> bool:
        """True when the version came from the channel (upgrades must never be triggered by it)."""
        return self.spec.kubernetes.version is None

    @property
    def nvidia_driver_branch(self) -> str:
        return self.spec.gpu.driver_branch or self.release.nvidia.driver_branch

    def ansible_vars(self) -> dict[str, Any]:
        """Cluster-wide extra vars for the playbooks (kf_* only; per-host facts stay in hosts.yml)."""
        spec, pins = self.spec, self.release
        storage = spec.storage
        return {
            "kf_cluster_name": self.name,
            "kf_channel": pins.channel,
            "kf_profile": spec.profile,
            "kf_state_dir": str(self.state_dir),
            "kf_kubernetes_minor": self.kubernetes_minor,
            "kf_kubernetes_version": self.kubernetes_version,
            "kf_kubernetes_package_version": self.kubernetes_package_version,
            "kf_kubernetes_package_source": spec.kubernetes.package_source,
            "kf_kubernetes_package_mirror": spec.kubernetes.package_mirror or "",
            "kf_kubernetes_packages_unreachable": spec.kubernetes.packages_unreachable,
            "kf_pod_subnet": spec.kubernetes.pod_subnet,
            "kf_service_subnet": spec.kubernetes.service_subnet,
            "kf_cni": spec.kubernetes.cni,
            "kf_calico_version": pins.kubernetes.cni["calico"],
            "kf_control_plane_endpoint": spec.kubernetes.control_plane_endpoint or "",
            "kf_kube_proxy_mode": spec.kubernetes.kube_proxy_mode,
            "kf_kube_vip_image": pins.kubernetes.kube_vip.ref,
            "kf_containerd_source": spec.containerd.source,
            "kf_containerd_version": pins.containerd.version,
            "kf_containerd_minimum_distro": pins.containerd.minimum_distro,
            "kf_gpu_enabled": spec.gpu.enabled,
            "kf_gpu_stack": spec.gpu.stack,
            "kf_nvidia_driver_branch": self.nvidia_driver_branch,
            "kf_nvidia_container_toolkit_version": pins.nvidia.container_toolkit,
            "kf_gpu_mig_strategy": spec.gpu.mig.strategy,
            "kf_nfs_enabled": storage.nfs.enabled,
            "kf_nfs_implementation": storage.nfs.implementation,
            "kf_nfs_export_path": storage.nfs.export_path,
            "kf_nfs_export_options": storage.nfs.export_options,
            "kf_nfs_allowed_clients": list(storage.nfs.allowed_clients),
            "kf_nfs_mount_options": list(storage.nfs.mount_options),
            "kf_gluster_enabled": storage.gluster.enabled,
            "kf_gluster_volume": storage.gluster.volume,
            "kf_gluster_replica": storage.gluster.replica,
            "kf_gluster_brick_path": storage.gluster.brick_path,
            "kf_gluster_brick_device": storage.gluster.brick_device or "",
            "kf_gluster_mount_path": storage.gluster.mount_path,
            "kf_gluster_allowed_clients": list(storage.gluster.allowed_clients),
        }

    def with_kubernetes_version(self, version: str) -> ClusterConfig:
        """The same config with spec.kubernetes.version set (e.g. kept at what is installed)."""
        kubernetes = self.spec.kubernetes.model_copy(update={"version": version})
        cluster = self.cluster.model_copy(update={"spec": self.spec.model_copy(update={"kubernetes": kubernetes})})
        return replace(self, cluster=cluster)

    def nfs_server_address(self) -> str | None:
        servers = self.inventory.in_role("nfs_server")
        return servers[0].address if servers else None

    def redacted(self) -> dict[str, Any]:
        """The resolved configuration for run records: the model plus secret key names, never values."""
        return {
            "cluster": self.cluster.model_dump(by_alias=True, mode="json"),
            "channel": self.release.channel,
            "kubernetesVersion": self.kubernetes_version,
            "hosts": [{"name": h.name, "address": h.address, "roles": list(h.roles)} for h in self.inventory.hosts],
            "secrets": {key: REDACTED for key in (self.secrets.model_dump() if self.secrets else {})},
        }
