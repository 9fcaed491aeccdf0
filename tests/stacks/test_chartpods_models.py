"""The chart models of tests/stacks/chartpods.py behave as the upstream code they transcribe: Helm's value
merge, z2jh's jupyterhub_config.py and KubeSpawner's overrides and make_pod (sources cited per test).
The models feed the Pod Security class check (test_class_podsecurity.py)."""

from __future__ import annotations

from typing import Any

import pytest
from chartpods import MissingDefaults, NotModelled, chart_pods, helm_merge, local_path_helper_pods
from podsecurity import evaluate


def _z2jh_user_pods(values: dict[str, Any]) -> dict[str, list[str]]:
    version = "4.4.0"
    try:
        pods = chart_pods("jupyterhub", version, values)
    except MissingDefaults as exc:
        pytest.skip(str(exc))
    return {p.workload: [f"{v.where} {v.check}" for v in evaluate(p.pod, "baseline")]
            for p in pods if p.workload.startswith("user pod")}


def test_helm_merge_lets_a_null_delete_a_default_and_lists_replace() -> None:
    """Helm's value coalescing (helm/helm pkg/chartutil/coalesce.go): a null removes the key; lists replace."""
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 2}
    assert helm_merge(base, {"a": {"b": None, "c": [3]}}) == {"a": {"c": [3]}, "d": 2}


def test_z2jh_block_cloud_metadata_follows_blockwithiptables() -> None:
    """jupyterhub_config.py appends block-cloud-metadata only when blockWithIptables is true (default true)."""
    assert _z2jh_user_pods({}) == {"user pod (profile default)": [
        "container 'block-cloud-metadata' privileged", "container 'block-cloud-metadata' capabilities_baseline"]}
    assert _z2jh_user_pods({"singleuser": {"cloudMetadata": {"blockWithIptables": False}}}) == {
        "user pod (profile default)": []}


def test_z2jh_profile_overrides_follow_kubespawner() -> None:
    """kubespawner _apply_overrides: a list trait is replaced (init_containers: [] drops the block
    container), a dict trait is merged (extra_pod_config adds hostNetwork, hostPID stays)."""
    values = {"singleuser": {"extraPodConfig": {"hostPID": True}, "profileList": [
        {"slug": "no-init", "kubespawner_override": {"init_containers": []}},
        {"slug": "host-net", "kubespawner_override": {"extra_pod_config": {"hostNetwork": True}}}]}}
    pods = _z2jh_user_pods(values)
    assert pods["user pod (profile no-init)"] == ["pod hostNamespaces"]
    assert pods["user pod (profile host-net)"] == ["pod hostNamespaces", "pod hostNamespaces",
                                                   "container 'block-cloud-metadata' privileged",
                                                   "container 'block-cloud-metadata' capabilities_baseline"]


def test_z2jh_hub_config_kubespawner_replaces_the_chart_traits() -> None:
    """jupyterhub_config.py loads hub.config last with c[section].update(cfg): a KubeSpawner trait given there
    replaces what the chart set, including the appended block-cloud-metadata container."""
    values = {"hub": {"config": {"KubeSpawner": {"init_containers": [], "privileged": True}}}}
    assert _z2jh_user_pods(values) == {"user pod (profile default)": ["container 'notebook' privileged"]}


def test_unmodelled_charts_and_hub_extra_config_are_reported_not_passed() -> None:
    with pytest.raises(NotModelled, match="no model of the pods chart unknown-chart"):
        chart_pods("unknown-chart", "1.0.0", {})
    with pytest.raises(NotModelled, match=r"hub\.extraConfig"):
        _z2jh_user_pods({"hub": {"extraConfig": {"x": "c.KubeSpawner.privileged = True"}}})


def test_local_path_helper_pod_gets_the_hostpath_the_provisioner_adds() -> None:
    """rancher/local-path-provisioner provisioner.go createHelperPod (v0.0.28 .. v0.0.32) adds a hostPath
    volume for the volume's parent directory and runs the pod in the provisioner's namespace."""
    config = {"kind": "ConfigMap", "metadata": {"name": "local-path-config", "namespace": "kfinstall-storage"},
              "data": {"helperPod.yaml": '{"spec": {"containers": [{"name": "helper-pod"}]}}'}}
    (helper,) = local_path_helper_pods([config, {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}])
    assert helper.namespace == "kfinstall-storage"
    assert [v.check for v in evaluate(helper.pod, "baseline")] == ["hostPathVolumes"]
    assert evaluate(helper.pod, "privileged") == []
