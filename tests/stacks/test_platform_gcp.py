"""The gcp profile: GKE with a GKE-managed GPU driver, Filestore for RWX, platform on top of it."""

from __future__ import annotations

from stackhelpers import CHANNELS

from installer.render import plain


def _by_type(rendered, typ: str) -> list[dict]:
    return [plain(r.inputs) for r in rendered.records if r.typ == typ]


def test_gke_cluster_pools_and_filestore(renders) -> None:
    rendered = renders.get("gcp", CHANNELS[-1])
    gcp = rendered.cfg.spec.gcp
    (cluster,) = _by_type(rendered, "gcp:container/cluster:Cluster")
    assert cluster["minMasterVersion"] == rendered.cfg.kubernetes_minor
    assert cluster["removeDefaultNodePool"] is True
    pools = {p["name"]: p for p in _by_type(rendered, "gcp:container/nodePool:NodePool")}
    accelerator = pools["gpu-pool"]["nodeConfig"]["guestAccelerators"][0]
    assert accelerator["type"] == gcp.gpu_type and accelerator["count"] == gcp.gpu_count
    assert accelerator["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "LATEST"
    assert "guestAccelerators" not in pools["cpu-pool"]["nodeConfig"]
    (filestore,) = _by_type(rendered, "gcp:filestore/instance:Instance")
    assert filestore["tier"] == gcp.filestore_tier
    assert filestore["fileShares"]["capacityGb"] == gcp.filestore_capacity_gb


def test_platform_objects_go_through_the_gke_provider(renders) -> None:
    rendered = renders.get("gcp", CHANNELS[-1])
    providers = [r for r in rendered.records if r.typ == "pulumi:providers:kubernetes"]
    assert len(providers) == 1 and "GkeCluster" in providers[0].urn
    pool_urns = {r.urn for r in rendered.records if r.typ == "gcp:container/nodePool:NodePool"}
    assert pool_urns <= set(providers[0].dependencies), "objects must not be applied before the node pools exist"
    kubeconfig = plain(providers[0].inputs)["kubeconfig"]
    assert "server: https://203.0.113.10" in kubeconfig and "gke-gcloud-auth-plugin" in kubeconfig


def test_filestore_backs_the_shared_volumes_without_being_the_default_class(renders) -> None:
    """GKE ships its own default class (GKE docs, "Persistent volumes and dynamic provisioning"), so the
    Filestore class is named by the claims that need ReadWriteMany and is never a second default."""
    rendered = renders.get("gcp", CHANNELS[-1])
    classes = {r.inputs["metadata"]["name"]: plain(r.inputs) for r in rendered.kubernetes_objects()
               if r.inputs["kind"] == "StorageClass"}
    filestore = classes["filestore"]
    assert filestore["parameters"]["server"] == "10.0.0.2"  # the mock's Filestore address, read from its output
    assert filestore["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "false"
    claims = [plain(r.inputs) for r in rendered.kubernetes_objects() if r.inputs["kind"] == "PersistentVolumeClaim"]
    assert {c["metadata"]["name"] for c in claims if c["spec"]["storageClassName"] == "filestore"} >= {
        "models", "training-logs"}
    assert "nfsvers=3" in filestore["mountOptions"]  # basic tiers serve NFSv3 only
