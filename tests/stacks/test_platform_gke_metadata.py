"""gcp: user pods cannot use the node's identity. z2jh's singleuser NetworkPolicy blocks 169.254.169.254
(test_platform_jupyterhub_network.py) only where something enforces NetworkPolicy; GKE's own metadata
server hides the node's credentials; node scopes stay below cloud-platform.

Input names are the installed pulumi_gcp's (checked below against its input types), recorded by the
mock engine in camelCase.
"""

from __future__ import annotations

import inspect

import pytest
from stackhelpers import CHANNELS

from installer.render import plain

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# GKE docs, "Access scopes in GKE" (cloud.google.com/kubernetes-engine/docs/how-to/access-scopes): the
# scopes GKE adds for nodes on the Compute Engine default service account when none are given.
GKE_DEFAULT_SCOPES = {f"https://www.googleapis.com/auth/{s}" for s in (
    "devstorage.read_only", "service.management.readonly", "servicecontrol", "trace.append", "logging.write",
    "monitoring")}


def _records(renders, channel: str, typ: str) -> list[dict]:
    return [plain(r.inputs) for r in renders.get("gcp", channel).records if r.typ == typ]


def test_the_input_names_exist_in_the_installed_pulumi_gcp() -> None:
    """The names sent below are pulumi_gcp's own (a misspelt key would be dropped without error)."""
    container = pytest.importorskip("pulumi_gcp.container")
    cluster_args = inspect.signature(container.Cluster._internal_init).parameters
    for name in ("network_policy", "addons_config", "workload_identity_config"):
        assert name in cluster_args, name
    from pulumi_gcp.container import _inputs

    def keys(typed: str) -> set[str]:
        return set(getattr(_inputs, typed).__annotations__)

    assert {"enabled", "provider"} <= keys("ClusterNetworkPolicyArgsDict")
    assert "network_policy_config" in keys("ClusterAddonsConfigArgsDict")
    assert "workload_pool" in keys("ClusterWorkloadIdentityConfigArgsDict")
    assert {"oauth_scopes", "workload_metadata_config"} <= keys("NodePoolNodeConfigArgsDict")
    assert "mode" in keys("NodePoolNodeConfigWorkloadMetadataConfigArgsDict")


@pytest.mark.parametrize("channel", CHANNELS)
def test_gke_enforces_network_policy(renders, channel: str) -> None:
    """GKE enforces Kubernetes NetworkPolicy only with network policy enforcement (a GKE-managed Calico,
    the addon plus networkPolicy.enabled) or Dataplane V2 (GKE docs, "Control communication between
    Pods and Services using network policies"; "GKE Dataplane V2"). Dataplane V2 is set through
    datapath_provider at creation only, so the addon is used: it updates an existing cluster in place."""
    (cluster,) = _records(renders, channel, "gcp:container/cluster:Cluster")
    assert cluster["networkPolicy"] == {"enabled": True, "provider": "CALICO"}
    assert cluster["addonsConfig"]["networkPolicyConfig"] == {"disabled": False}


@pytest.mark.parametrize("channel", CHANNELS)
def test_pods_see_the_gke_metadata_server_not_the_nodes(renders, channel: str) -> None:
    """With workload_metadata_config mode GKE_METADATA on a pool (and a workload pool on the cluster,
    which that mode requires), pods reach the GKE metadata server, which withholds the node's service
    account token and kube-env (GKE docs, "Use Workload Identity Federation for GKE" and "Protect
    cluster metadata"); the default GCE_METADATA exposes the node's own metadata server."""
    rendered = renders.get("gcp", channel)
    (cluster,) = _records(renders, channel, "gcp:container/cluster:Cluster")
    assert cluster["workloadIdentityConfig"] == {"workloadPool": f"{rendered.cfg.spec.gcp.project}.svc.id.goog"}
    pools = _records(renders, channel, "gcp:container/nodePool:NodePool")
    assert pools
    for pool in pools:
        assert pool["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}, pool["name"]


@pytest.mark.parametrize("channel", CHANNELS)
def test_node_scopes_are_narrower_than_cloud_platform(renders, channel: str) -> None:
    """Access scopes cap what the node's token can do. cloud-platform means every API the node's
    service account may use; GKE's own default set for the default service account is the six scopes
    above (GKE docs, "Access scopes in GKE"). Every pool asks for exactly that set."""
    for pool in _records(renders, channel, "gcp:container/nodePool:NodePool"):
        scopes = set(pool["nodeConfig"]["oauthScopes"])
        assert CLOUD_PLATFORM not in scopes, pool["name"]
        assert scopes == GKE_DEFAULT_SCOPES, pool["name"]
