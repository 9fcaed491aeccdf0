"""The upgrade preflight: pure checks of ClusterFacts against a route, each with its refusal message.

Every check returns the problems it found (one line each); `check_route` runs them all for every
hop and raises one PreflightError (exit 3) listing everything, so the operator fixes all at once.
Thresholds come from upgrade-rules.yml and the channel files (versions.md 8 and 10.1):
- health: every node Ready, no kube-system pod failing;
- skew: apiservers within the allowed minors of each other and at the hop's starting minor;
  kubelets never newer than the apiserver nor further behind the hop's target than allowed;
- runtime: from the Kubernetes minor a requirement names, containerd and cgroup version on every node;
- SystemdCgroup = true on every node before any upgrade;
- TFJob guard: training-operator v1 stays while TFJobs (or other guarded jobs) exist;
- z2jh major bump: explicit slug_scheme (stable PVC names) and an explicit allow config;
- GPU Operator: at most the allowed number of majors per hop, from what is running.
"""

from __future__ import annotations

from collections.abc import Iterable

from installer.errors import PreflightError
from installer.releases import Release, load_release
from installer.upgrade.facts import ClusterFacts
from installer.upgrade.migration_table import TRAINING_STANDALONE, Z2JH_CHART, chart_major, migrations_for
from installer.upgrade.route import Hop, Route
from installer.upgrade.rules import UpgradeRules, load_rules
from installer.versions import minor_of, minor_tuple, parse

GPU_OPERATOR_CHART = "gpu-operator"


def _minor_gap(newer: str, older: str) -> int:
    """How many minors `older` trails `newer` (negative when it leads); majors never differ here."""
    return minor_tuple(newer)[1] - minor_tuple(older)[1]


def check_health(facts: ClusterFacts) -> list[str]:
    problems = [f"cluster health: node {n.name} is not Ready" for n in facts.nodes if not n.ready]
    problems += [f"cluster health: {line}" for line in facts.unhealthy]
    if not facts.nodes:
        problems.append("cluster health: the cluster reports no nodes")
    return problems


def check_skew(facts: ClusterFacts, hop: Hop, rules: UpgradeRules) -> list[str]:
    """Skew before the hop, and for a Kubernetes hop also the skew the hop itself creates."""
    skew = rules.kubernetes
    problems: list[str] = []
    apis = sorted({minor_of(v) for v in facts.apiserver_versions}, key=minor_tuple)
    if not apis:
        return ["skew: no kube-apiserver version could be read"]
    if _minor_gap(apis[-1], apis[0]) > skew.apiserver_max_minors_apart:
        problems.append(
            f"skew: kube-apiservers run {', '.join(apis)}, more than {skew.apiserver_max_minors_apart} minor apart; "
            "finish the interrupted control-plane upgrade first"
        )
    # A Kubernetes hop that failed after the control plane moved is resumed, not refused.
    resumable = {minor_of(hop.kubernetes_from), minor_of(hop.kubernetes_to)} if hop.kind == "kubernetes" else set()
    if apis[-1] != minor_of(hop.kubernetes_from) and apis[-1] not in resumable:
        problems.append(
            f"skew: the apiserver runs {apis[-1]} but hop {hop.index} starts from {hop.kubernetes_from}; "
            "state.json does not match the cluster"
        )
    oldest_api = apis[0]
    for node in facts.nodes:
        if not node.kubelet_version:
            continue
        if _minor_gap(oldest_api, node.kubelet_version) < 0:
            problems.append(
                f"skew: kubelet {node.kubelet_version} on {node.name} is newer than the apiserver {oldest_api}"
            )
        target = hop.kubernetes_to if hop.kind == "kubernetes" else oldest_api
        if _minor_gap(target, node.kubelet_version) > skew.kubelet_max_minors_behind:
            problems.append(
                f"skew: kubelet {node.kubelet_version} on {node.name} would trail the apiserver {minor_of(target)} "
                f"by more than {skew.kubelet_max_minors_behind} minors; upgrade that node first"
            )
    return problems


def check_runtime(facts: ClusterFacts, hop: Hop, rules: UpgradeRules) -> list[str]:
    """containerd and cgroup versions every node needs before a Kubernetes hop reaches a threshold."""
    if hop.kind != "kubernetes":
        return []
    problems = []
    for requirement in rules.requirements_for(hop.kubernetes_to):
        for node in facts.nodes:
            containerd = node.containerd_version
            if containerd is None or not requirement.containerd_ok(containerd):
                problems.append(
                    f"runtime: {node.name} runs containerd {containerd or 'unknown'}; Kubernetes "
                    f"{hop.kubernetes_to} needs containerd >= {requirement.containerd_min} ({requirement.reason})"
                )
            if node.cgroup_version != requirement.cgroup_version:
                problems.append(
                    f"runtime: {node.name} uses cgroup v{node.cgroup_version or '?'}; Kubernetes {hop.kubernetes_to} "
                    f"needs cgroup v{requirement.cgroup_version} (boot with systemd.unified_cgroup_hierarchy=1)"
                )
    return problems


def check_systemd_cgroup(facts: ClusterFacts) -> list[str]:
    return [
        f"runtime: SystemdCgroup is not true in {n.name}'s containerd runc options; set it (the kubelet uses the "
        "systemd cgroup driver) before any upgrade"
        for n in facts.nodes
        if n.systemd_cgroup is not True
    ]


def check_tfjobs(facts: ClusterFacts, hop: Hop, training_enabled: bool, rules: UpgradeRules) -> list[str]:
    """While TFJobs (or other guarded jobs) exist, the target must keep training-operator v1."""
    # The channel boundary, not hop.migrations: a site with training off has that migration set aside
    # (installer.upgrade.site), and jobs that still exist must refuse the hop all the same.
    boundary = migrations_for(load_release(hop.from_channel), load_release(hop.to_channel), rules)
    if hop.kind != "platform" or TRAINING_STANDALONE not in boundary:
        return []
    in_use = {name: count for name, count in facts.crd_objects.items() if count > 0}
    if in_use and not training_enabled:
        listed = ", ".join(f"{name} ({count})" for name, count in sorted(in_use.items()))
        return [
            f"TFJob guard: objects exist for {listed}, but spec.components.training.enabled is false; keep the "
            "standalone training-operator enabled (TFJob has no Trainer v2 runtime) or delete those jobs first"
        ]
    return []


def check_z2jh(facts: ClusterFacts, hop: Hop, old: Release, new: Release) -> list[str]:
    """A JupyterHub chart major bump needs explicit name-stability and allow settings."""
    if hop.kind != "platform" or facts.z2jh is None:
        return []
    before, after = chart_major(old, Z2JH_CHART), chart_major(new, Z2JH_CHART)
    if before is None or after is None or before == after:
        return []
    problems = []
    if facts.z2jh.slug_scheme is None:
        problems.append(
            f"z2jh {before} -> {after}: set hub.config.KubeSpawner.slug_scheme: escape in "
            "spec.components.jupyterhub.values so pod and PVC names stay stable (the new default renames some "
            "users' volumes)"
        )
    if not facts.z2jh.allow_configured:
        problems.append(
            f"z2jh {before} -> {after}: JupyterHub now admits nobody unless told; set "
            "hub.config.Authenticator.allow_all: true or an allowed_users / allowed_groups list"
        )
    return problems


def check_gpu_operator(facts: ClusterFacts, hop: Hop, new: Release, rules: UpgradeRules) -> list[str]:
    if hop.kind != "platform" or facts.gpu_operator_version is None or GPU_OPERATOR_CHART not in new.charts:
        return []
    running = parse(facts.gpu_operator_version)[0]
    target = parse(new.charts[GPU_OPERATOR_CHART].version)[0]
    allowed = rules.gpu_operator.max_majors_per_hop
    if target - running > allowed:
        return [
            f"GPU Operator: {facts.gpu_operator_version} is running and hop {hop.index} would install "
            f"{new.charts[GPU_OPERATOR_CHART].version}, {target - running} majors at once (at most {allowed} per hop)"
        ]
    return []


def hop_problems(
    facts: ClusterFacts, hop: Hop, *, training_enabled: bool = True, rules: UpgradeRules | None = None
) -> list[str]:
    """Every problem for one hop, judged on facts gathered just before it."""
    rules = rules or load_rules()
    old, new = load_release(hop.from_channel), load_release(hop.to_channel)
    return [
        *check_health(facts),
        *check_skew(facts, hop, rules),
        *check_systemd_cgroup(facts),
        *check_runtime(facts, hop, rules),
        *check_tfjobs(facts, hop, training_enabled, rules),
        *check_z2jh(facts, hop, old, new),
        *check_gpu_operator(facts, hop, new, rules),
    ]


def route_problems(facts: ClusterFacts, route: Route, *, training_enabled: bool = True) -> list[str]:
    """Problems visible now for the whole route: the first hop fully, later hops for what cannot change.

    Later hops are judged again on fresh facts just before they run; here they only catch what no
    hop fixes (cgroup v1 hosts, the z2jh settings, TFJobs with training disabled).
    """
    if not route.hops:
        return []
    problems = hop_problems(facts, route.hops[0], training_enabled=training_enabled)
    rules = load_rules()
    for hop in route.hops[1:]:
        later = [
            *(p for p in check_runtime(facts, hop, rules) if "cgroup" in p),
            *check_tfjobs(facts, hop, training_enabled, rules),
            *check_z2jh(facts, hop, load_release(hop.from_channel), load_release(hop.to_channel)),
        ]
        problems += [p for p in later if p not in problems]
    return problems


def refuse_if(problems: Iterable[str], what: str) -> None:
    found = list(problems)
    if found:
        raise PreflightError(f"upgrade preflight refused {what}:\n" + "\n".join(f"  - {p}" for p in found))
