"""A change to the GPU model server's Deployment must be able to finish when every GPU is in use.

Kubernetes' Deployment controller (kubernetes/kubernetes pkg/controller/deployment/rolling.go,
reconcileNewReplicaSet / reconcileOldReplicaSets) first adds up to maxSurge new pods and removes an old
pod only while at least replicas - maxUnavailable stay available. nvidia.com/gpu is an extended resource
the scheduler never overcommits (pkg/scheduler/framework/plugins/noderesources/fit.go), so with
maxUnavailable 0 and every GPU held by a serving replica the surge pod stays Pending and the rollout
never completes; pulumi-kubernetes awaits a Deployment's rollout (provider/pkg/await/deployment.go,
10 minutes by default) and `up` fails on any change to it (an image pin on upgrade, the lister script).
On gcp that is the normal case: replica_bounds caps the HPA at the GPU pool, whose node count is fixed.
"""

from __future__ import annotations

from typing import Any

import pytest
from stackhelpers import CHANNELS

from installer.render import evaluate, plain

GPU_SERVING = {
    "private-gpu": ("spec.components.serving.gpu=true", "spec.gpu.stack=device-plugin"),
    "gcp": ("spec.components.serving.gpu=true", "spec.gcp.gpuCount=1", "spec.gcp.gpuNodeCount=1"),
}
CASES = [(p, c) for p in GPU_SERVING for c in CHANNELS]


def _deployment(renders, profile: str, channel: str) -> dict[str, Any]:
    cfg = renders.config(profile, channel, GPU_SERVING[profile])
    for record in evaluate(cfg):
        obj = plain(record.inputs) if record.is_kubernetes_object else {}
        if obj.get("kind") == "Deployment" and obj["metadata"]["name"] == "tf-serving":
            return obj
    raise AssertionError(f"no tf-serving Deployment on {profile} {channel}")


@pytest.mark.parametrize(("profile", "channel"), CASES)
def test_gpu_serving_rollout_does_not_need_a_spare_gpu(renders, profile: str, channel: str) -> None:
    deployment = _deployment(renders, profile, channel)
    pod = deployment["spec"]["template"]["spec"]
    assert any("nvidia.com/gpu" in (c.get("resources") or {}).get("limits", {}) for c in pod["containers"])
    strategy = deployment["spec"].get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    if strategy.get("type") == "Recreate":
        return
    assert str(rolling.get("maxSurge")) == "0", f"a surge pod waits for a free GPU: {strategy}"
    assert str(rolling.get("maxUnavailable")) not in ("0", "0%"), strategy
