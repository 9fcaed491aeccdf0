"""The upgrade preflight: every refusal with its message, on hand-built ClusterFacts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from installer.errors import PreflightError
from installer.releases import all_releases
from installer.upgrade.facts import (
    ClusterFacts,
    NodeFacts,
    Z2jhSettings,
    apiserver_versions_from_pods,
    collect_cluster_facts,
    kubectl_runner,
    merge_host_facts,
    nodes_from_json,
    read_host_facts,
    unhealthy_from_pods,
    z2jh_settings,
)
from installer.upgrade.preflight import hop_problems, refuse_if, route_problems
from installer.upgrade.route import Hop, plan_route
from installer.versions import parse


def _node(name: str, kubelet: str, *, cp: bool = False, **kw: object) -> NodeFacts:
    base: dict = {"ready": True, "containerd_version": "2.1.4", "cgroup_version": 2, "systemd_cgroup": True}
    base.update(kw)
    return NodeFacts(name=name, control_plane=cp, kubelet_version=kubelet, **base)


def _facts(version: str = "v1.34.2", **kw: object) -> ClusterFacts:
    nodes = (_node("cp1", version, cp=True), _node("n1", version), _node("n2", version))
    base: dict = {"nodes": nodes, "apiserver_versions": (version,), "crd_objects": {},
                  "z2jh": Z2jhSettings(slug_scheme="escape", allow_configured=True), "gpu_operator_version": None}
    base.update(kw)
    return ClusterFacts(**base)


def _hop(source: str, k8s: str, target: str, explicit: str | None = None, index: int = 0) -> Hop:
    return plan_route(source, k8s, target, explicit).hops[index]


K8S_HOP = _hop("26.03", "1.34", "26.03.1", "1.35", index=1)   # kubernetes 1.34 -> 1.35 on 26.03.1
TO_136 = _hop("26.03.1", "1.35", "26.03.1", "1.36")             # kubernetes 1.35 -> 1.36
PLATFORM_19 = _hop("1.9", "1.31", "1.10")                        # platform 1.9 -> 1.10 (z2jh 3 -> 4)
PLATFORM_111 = _hop("1.10", "1.32", "1.11")                      # platform 1.10 -> 1.11 (training standalone)


def test_a_healthy_cluster_passes_every_check() -> None:
    assert hop_problems(_facts(), K8S_HOP) == []
    assert hop_problems(_facts("v1.35.1"), TO_136) == []
    assert hop_problems(_facts("v1.31.4"), PLATFORM_19) == []


def test_health_refuses_not_ready_nodes_and_failing_system_pods() -> None:
    nodes = (_node("cp1", "v1.34.2", cp=True), _node("n1", "v1.34.2", ready=False))
    facts = _facts(nodes=nodes, unhealthy=("pod kube-system/etcd-cp1 is CrashLoopBackOff",))
    assert hop_problems(facts, K8S_HOP) == [
        "cluster health: node n1 is not Ready",
        "cluster health: pod kube-system/etcd-cp1 is CrashLoopBackOff",
    ]


def test_health_refuses_a_cluster_without_nodes() -> None:
    assert "cluster health: the cluster reports no nodes" in hop_problems(_facts(nodes=()), K8S_HOP)


def test_skew_refuses_apiservers_too_far_apart() -> None:
    facts = _facts(apiserver_versions=("v1.34.2", "v1.32.1"),
                   nodes=(_node("cp1", "v1.32.1", cp=True),))
    assert hop_problems(facts, K8S_HOP) == [
        "skew: kube-apiservers run 1.32, 1.34, more than 1 minor apart; finish the interrupted control-plane "
        "upgrade first"
    ]


def test_skew_refuses_when_state_and_cluster_disagree() -> None:
    assert hop_problems(_facts("v1.33.5"), K8S_HOP) == [
        "skew: the apiserver runs 1.33 but hop 2 starts from 1.34; state.json does not match the cluster"
    ]


def test_a_kubernetes_hop_interrupted_after_the_control_plane_resumes() -> None:
    nodes = (_node("cp1", "v1.35.0", cp=True), _node("n1", "v1.34.2"))
    assert hop_problems(_facts("v1.35.0", nodes=nodes), K8S_HOP) == []


def test_skew_refuses_a_kubelet_newer_than_the_apiserver() -> None:
    nodes = (_node("cp1", "v1.34.2", cp=True), _node("n1", "v1.35.0"))
    assert hop_problems(_facts(nodes=nodes), K8S_HOP) == [
        "skew: kubelet v1.35.0 on n1 is newer than the apiserver 1.34"
    ]


def test_skew_refuses_a_kubelet_that_would_trail_too_far() -> None:
    nodes = (_node("cp1", "v1.34.2", cp=True), _node("n1", "v1.31.9"))
    assert hop_problems(_facts(nodes=nodes), K8S_HOP) == [
        "skew: kubelet v1.31.9 on n1 would trail the apiserver 1.35 by more than 3 minors; upgrade that node first"
    ]


def test_runtime_refuses_containerd_1_before_the_threshold_minor() -> None:
    nodes = (_node("cp1", "v1.35.1", cp=True), _node("n1", "v1.35.1", containerd_version="1.7.27"))
    problems = hop_problems(_facts("v1.35.1", nodes=nodes), TO_136)
    assert problems == [
        "runtime: n1 runs containerd 1.7.27; Kubernetes 1.36 needs containerd >= 2.0 (Kubernetes 1.35 is the last "
        "minor that supports containerd 1.x, and the kubelet refuses cgroup v1)"
    ]


def test_runtime_refuses_cgroup_v1_before_the_threshold_minor() -> None:
    nodes = (_node("cp1", "v1.35.1", cp=True, cgroup_version=1),)
    assert hop_problems(_facts("v1.35.1", nodes=nodes), TO_136) == [
        "runtime: cp1 uses cgroup v1; Kubernetes 1.36 needs cgroup v2 (boot with systemd.unified_cgroup_hierarchy=1)"
    ]


def test_runtime_requirements_do_not_apply_below_the_threshold() -> None:
    nodes = (_node("cp1", "v1.34.2", cp=True, containerd_version="1.7.27", cgroup_version=1),)
    assert hop_problems(_facts(nodes=nodes), K8S_HOP) == []


def test_systemd_cgroup_is_required_on_every_node_before_any_upgrade() -> None:
    nodes = (_node("cp1", "v1.31.4", cp=True), _node("n2", "v1.31.4", systemd_cgroup=False),
             _node("n3", "v1.31.4", systemd_cgroup=None))
    problems = hop_problems(_facts("v1.31.4", nodes=nodes), PLATFORM_19)
    assert problems == [
        f"runtime: SystemdCgroup is not true in {name}'s containerd runc options; set it (the kubelet uses the "
        "systemd cgroup driver) before any upgrade" for name in ("n2", "n3")
    ]


def test_tfjob_guard_refuses_dropping_the_standalone_operator_while_jobs_exist() -> None:
    facts = _facts("v1.32.3", crd_objects={"tfjobs.kubeflow.org": 4, "pytorchjobs.kubeflow.org": 0})
    assert hop_problems(facts, PLATFORM_111, training_enabled=False) == [
        "TFJob guard: objects exist for tfjobs.kubeflow.org (4), but spec.components.training.enabled is false; "
        "keep the standalone training-operator enabled (TFJob has no Trainer v2 runtime) or delete those jobs first"
    ]
    assert hop_problems(facts, PLATFORM_111, training_enabled=True) == []


def test_tfjob_guard_lets_an_empty_crd_go() -> None:
    facts = _facts("v1.32.3", crd_objects={"tfjobs.kubeflow.org": 0})
    assert hop_problems(facts, PLATFORM_111, training_enabled=False) == []


def test_z2jh_major_bump_requires_slug_scheme_and_allow_config() -> None:
    facts = _facts("v1.31.4", z2jh=Z2jhSettings(slug_scheme=None, allow_configured=False))
    assert hop_problems(facts, PLATFORM_19) == [
        "z2jh 3 -> 4: set hub.config.KubeSpawner.slug_scheme: escape in spec.components.jupyterhub.values so pod "
        "and PVC names stay stable (the new default renames some users' volumes)",
        "z2jh 3 -> 4: JupyterHub now admits nobody unless told; set hub.config.Authenticator.allow_all: true or an "
        "allowed_users / allowed_groups list",
    ]


def test_z2jh_guard_ignores_hops_without_a_major_bump() -> None:
    facts = _facts("v1.32.3", z2jh=Z2jhSettings(slug_scheme=None, allow_configured=False))
    assert hop_problems(facts, PLATFORM_111) == []


def test_gpu_operator_refuses_two_majors_in_one_hop() -> None:
    facts = _facts("v1.31.4", gpu_operator_version="v23.9.1")
    assert hop_problems(facts, PLATFORM_19) == [
        "GPU Operator: v23.9.1 is running and hop 1 would install v25.3.4, 2 majors at once (at most 1 per hop)"
    ]
    assert hop_problems(replace(facts, gpu_operator_version="v24.6.2"), PLATFORM_19) == []


def test_channel_data_never_moves_the_gpu_operator_more_than_one_major() -> None:
    releases = all_releases()
    for old, new in zip(releases, releases[1:], strict=False):
        assert parse(new.charts["gpu-operator"].version)[0] - parse(old.charts["gpu-operator"].version)[0] <= 1


def test_route_problems_catch_cgroup_v1_for_a_later_hop_now() -> None:
    route = plan_route("26.03", "1.34", "26.03.1", "1.36")
    nodes = (_node("cp1", "v1.34.2", cp=True, cgroup_version=1),)
    problems = route_problems(_facts(nodes=nodes), route)
    assert problems == ["runtime: cp1 uses cgroup v1; Kubernetes 1.36 needs cgroup v2 (boot with "
                        "systemd.unified_cgroup_hierarchy=1)"]


def test_refuse_if_lists_every_problem_with_exit_3() -> None:
    with pytest.raises(PreflightError) as refused:
        refuse_if(["a", "b"], "hop 1")
    assert refused.value.message == "upgrade preflight refused hop 1:\n  - a\n  - b"
    assert refused.value.exit_code == 3
    refuse_if([], "hop 1")


# The collector: parsing recorded kubectl documents, and refusing clearly without a cluster ---------


NODES = {"items": [
    {"metadata": {"name": "cp1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
     "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.34.2", "containerRuntimeVersion": "containerd://2.1.4"}}},
    {"metadata": {"name": "n1", "labels": {}},
     "status": {"conditions": [{"type": "Ready", "status": "False"}],
                "nodeInfo": {"kubeletVersion": "v1.33.5", "containerRuntimeVersion": "cri-o://1.33.0"}}},
]}
APISERVERS = {"items": [{"spec": {"containers": [{"image": "registry.example/kube-apiserver:v1.34.2"}]}}]}
SYSTEM = {"items": [
    {"metadata": {"namespace": "kube-system", "name": "etcd-cp1"}, "status": {"phase": "Running"}},
    {"metadata": {"namespace": "kube-system", "name": "coredns-1"},
     "status": {"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}},
]}


def test_nodes_apiservers_and_health_are_parsed() -> None:
    nodes = nodes_from_json(NODES)
    assert nodes[0] == NodeFacts("cp1", True, True, "v1.34.2", "2.1.4")
    assert nodes[1].ready is False and nodes[1].containerd_version is None
    assert apiserver_versions_from_pods(APISERVERS) == ["v1.34.2"]
    assert unhealthy_from_pods(SYSTEM) == ["pod kube-system/coredns-1 is CrashLoopBackOff"]


def test_host_facts_files_are_merged_by_node_name(tmp_path: Path) -> None:
    (tmp_path / "cp1.json").write_text(json.dumps({"containerd_version": "2.1.4", "cgroup_fs": "cgroup2fs",
                                                   "systemd_cgroup": True}))
    (tmp_path / "n1.json").write_text(json.dumps({"containerd_version": "1.7.27", "cgroup_fs": "tmpfs",
                                                  "systemd_cgroup": False}))
    hosts = read_host_facts(tmp_path)
    merged = merge_host_facts(nodes_from_json(NODES), hosts)
    assert (merged[0].cgroup_version, merged[0].systemd_cgroup) == (2, True)
    assert (merged[1].cgroup_version, merged[1].containerd_version, merged[1].systemd_cgroup) == (1, "1.7.27", False)


def test_collect_cluster_facts_through_a_recorded_kubectl() -> None:
    answers = {
        "get nodes": NODES, "get pods -n kube-system -l": APISERVERS, "get pods -n kube-system -o": SYSTEM,
    }

    def run(args: list[str]) -> str:
        text = " ".join(args)
        if text.startswith("get crd"):
            return "customresourcedefinition.apiextensions.k8s.io/tfjobs.kubeflow.org\n"
        if text.startswith("get tfjobs.kubeflow.org"):
            return "tfjob.kubeflow.org/a\ntfjob.kubeflow.org/b\n"
        if text.startswith("get deployments"):
            return "v25.3.4"
        return json.dumps(next(v for k, v in answers.items() if text.startswith(k)))

    facts = collect_cluster_facts(run, ("tfjobs.kubeflow.org", "pytorchjobs.kubeflow.org"), {}, None)
    assert facts.crd_objects == {"tfjobs.kubeflow.org": 2}
    assert facts.gpu_operator_version == "v25.3.4"
    assert facts.apiserver_versions == ("v1.34.2",)
    assert facts.unhealthy == ("pod kube-system/coredns-1 is CrashLoopBackOff",)


def test_the_collector_refuses_clearly_without_a_cluster(make_site) -> None:
    from installer.config.load import load

    cfg = load(make_site(), need_secrets=False)
    with pytest.raises(PreflightError) as refused:
        kubectl_runner(cfg)
    assert refused.value.message.startswith("no cluster reachable:")
    assert (f"no kubeconfig at {cfg.state_dir / 'kubeconfig'}: run `kfinstall up -i {cfg.site}` (the hosts phase "
            "writes it") in refused.value.message


def test_z2jh_settings_read_from_values() -> None:
    values = {"hub": {"config": {"KubeSpawner": {"slug_scheme": "escape"}, "Authenticator": {"allow_all": True}}}}
    assert z2jh_settings(values) == Z2jhSettings("escape", True, "dynamic")
    assert z2jh_settings({}) == Z2jhSettings(None, False, "dynamic")
