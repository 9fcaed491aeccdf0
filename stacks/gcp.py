"""The gcp profile's cluster: GKE with a GPU node pool (GKE installs driver and device plugin) and
a Filestore share for ReadWriteMany volumes. Platform components then deploy onto it through a
Kubernetes provider built from the cluster's endpoint; there is no host phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from installer.config.resolved import ClusterConfig
from stacks.base import k

FILESTORE_SHARE = "kfinstall"
# GKE picks the driver matching its node image; LATEST tracks the newest branch GKE supports.
GPU_DRIVER_VERSION = "LATEST"
# The access scopes GKE itself gives nodes that run as the Compute Engine default service account when
# no scopes are asked for (GKE docs, "Access scopes in GKE"): image pulls, logging, monitoring, service
# control, traces. Not cloud-platform: a pod that reached the node's token would act on the whole project.
NODE_OAUTH_SCOPES = tuple(f"https://www.googleapis.com/auth/{scope}" for scope in (
    "devstorage.read_only", "logging.write", "monitoring", "service.management.readonly", "servicecontrol",
    "trace.append"))
# Pods see the GKE metadata server instead of the node's: no node credentials, no kube-env.
NODE_METADATA_MODE = "GKE_METADATA"
# NetworkPolicy enforcement on the legacy dataplane (z2jh's singleuser egress policy blocks the
# metadata address only where something enforces it). Dataplane V2 would need datapath_provider,
# which the provider can only set by replacing the cluster.
NETWORK_POLICY_PROVIDER = "CALICO"
_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: gke
  cluster:
    server: https://{endpoint}
    certificate-authority-data: {ca}
contexts:
- name: gke
  context: {{cluster: gke, user: gke}}
current-context: gke
users:
- name: gke
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      provideClusterInfo: true
      installHint: Install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)
"""


@dataclass(frozen=True, kw_only=True)
class GkeArgs:
    cfg: ClusterConfig


class GkeCluster(pulumi.ComponentResource):
    """GKE cluster, CPU and GPU node pools, Filestore; exposes a Kubernetes provider and the share."""

    provider: k8s.Provider
    filestore_ip: pulumi.Output[str]

    def __init__(self, name: str, args: GkeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:GkeCluster", name, None, opts)
        self._name, self._cfg = name, args.cfg
        gspec = args.cfg.spec.gcp
        self.gcp_provider = gcp.Provider(f"{name}-gcp", project=gspec.project, region=gspec.region,
                                         opts=pulumi.ResourceOptions(parent=self))
        self.cluster = self._cluster()
        pools = [self._pool("cpu", gspec.machine_type, gspec.node_count, None)]
        if args.cfg.spec.gpu.enabled and gspec.gpu_node_count:
            accelerator = {"type": gspec.gpu_type, "count": gspec.gpu_count,
                           "gpu_driver_installation_config": {"gpu_driver_version": GPU_DRIVER_VERSION}}
            pools.append(self._pool("gpu", gspec.gpu_machine_type, gspec.gpu_node_count, accelerator))
        self.filestore = self._filestore()
        self.filestore_ip = self.filestore.networks.apply(_first_address)
        # Waiting for the pools keeps every platform object from being applied to a node-less cluster.
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self._kubeconfig(), enable_server_side_apply=True,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=pools))
        self.register_outputs({"endpoint": self.cluster.endpoint, "filestore_ip": self.filestore_ip})

    def _opts(self, depends_on: list[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self.gcp_provider, depends_on=depends_on or [])

    def _cluster(self) -> gcp.container.Cluster:
        gspec = self._cfg.spec.gcp
        # The default pool is replaced by our own pools so their machine types come from the model.
        return gcp.container.Cluster(
            f"{self._name}-cluster", name=self._cfg.name, location=gspec.region, node_locations=[gspec.zone],
            min_master_version=self._cfg.kubernetes_minor, remove_default_node_pool=True, initial_node_count=1,
            release_channel={"channel": "UNSPECIFIED"}, networking_mode="VPC_NATIVE", ip_allocation_policy={},
            network_policy={"enabled": True, "provider": NETWORK_POLICY_PROVIDER},
            addons_config={"network_policy_config": {"disabled": False}},
            workload_identity_config={"workload_pool": f"{gspec.project}.svc.id.goog"},
            # kfinstall destroy must be able to remove what kfinstall up made; the state file guards it.
            deletion_protection=False, opts=self._opts())

    def _pool(self, suffix: str, machine_type: str, count: int,
              accelerator: dict[str, Any] | None) -> gcp.container.NodePool:
        node_config: dict[str, Any] = {"machine_type": machine_type, "oauth_scopes": list(NODE_OAUTH_SCOPES),
                                       "workload_metadata_config": {"mode": NODE_METADATA_MODE},
                                       "labels": {"kfinstall.io/pool": suffix}}
        if accelerator:
            node_config["guest_accelerators"] = [accelerator]
        return gcp.container.NodePool(
            f"{self._name}-{suffix}-pool", name=f"{suffix}-pool", cluster=self.cluster.name,
            location=self._cfg.spec.gcp.region, node_locations=[self._cfg.spec.gcp.zone], node_count=count,
            node_config=k(node_config), management={"auto_repair": True, "auto_upgrade": True},
            # Scopes cannot change on a pool (GKE replaces it), and a pool keeps its fixed name, so the
            # old pool must go before its replacement is created; GKE reschedules the pods.
            opts=pulumi.ResourceOptions.merge(self._opts([self.cluster]),
                                              pulumi.ResourceOptions(delete_before_replace=True)))

    def _filestore(self) -> gcp.filestore.Instance:
        gspec = self._cfg.spec.gcp
        # Basic tiers are zonal; one instance backs every volume (csi-driver-nfs subdirectories), since
        # a Filestore instance per PVC would cost a 1 TiB minimum per user home.
        location = gspec.region if gspec.filestore_tier == "REGIONAL" else gspec.zone
        return gcp.filestore.Instance(
            f"{self._name}-filestore", name=f"{self._cfg.name}-rwx", location=location, tier=gspec.filestore_tier,
            file_shares={"name": FILESTORE_SHARE, "capacity_gb": gspec.filestore_capacity_gb},
            networks=[{"network": "default", "modes": ["MODE_IPV4"]}], opts=self._opts())

    def _kubeconfig(self) -> pulumi.Output[str]:
        auth = self.cluster.master_auth
        return pulumi.Output.all(self.cluster.endpoint, auth.cluster_ca_certificate).apply(
            lambda parts: _KUBECONFIG.format(endpoint=parts[0], ca=parts[1]))


def _first_address(networks: Any) -> str:
    """The instance's IP (Filestore reports one address on the first network)."""
    return str(networks[0].ip_addresses[0])
