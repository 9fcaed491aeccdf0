"""Class check of issue 12: every pod the platform creates is admitted by Pod Security at the enforce
level of its namespace, on every profile x channel.

Pods checked: every pod-bearing object the stacks render (Deployment, DaemonSet, StatefulSet, Job,
CronJob, Pod, ReplicaSet), the pods each Helm release's chart creates with its recorded values
(tests/stacks/chartpods.py, each model citing its upstream template), the demo's TFJob/PyTorchJob
replicas and other objects (installer.verify.demo_objects, applied to namespace kubeflow-user), and
local-path-provisioner's helper pod (its ConfigMap's helperPod.yaml plus what the provisioner adds).
Rules: tests/stacks/podsecurity.py, a transcription of kubernetes/pod-security-admission
policy/check_*.go (v0.36.2), evaluated at the namespace's `enforce-version` (`latest` = the
cluster's own minor, cfg.kubernetes_minor).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from chartpods import ChartPod, MissingDefaults, NotModelled, chart_pods, local_path_helper_pods
from podsecurity import evaluate, parse_version, pods_of
from stackhelpers import CHANNELS, PROFILES

from installer.render import HELM_RELEASE, Recorded, plain
from installer.render import evaluate as evaluate_program
from installer.verify import DEMO_NAMESPACE, demo_objects

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
# Namespaces the platform uses but does not create, and the level Pod Security enforces there. With no
# `enforce` label a namespace gets the admission plugin's configured default, and with no
# AdmissionConfiguration that default is `privileged` (kubernetes/pod-security-admission
# admission/api/v1/defaults.go SetDefaults_PodSecurityDefaults, v0.36.2: Enforce = privileged,
# EnforceVersion = latest). kfinstall's kubeadm configuration passes no admission configuration
# (nothing under playbooks/ sets --admission-control-config-file or a PodSecurity plugin config), and
# GKE Standard offers none (CIS GKE Benchmark v1.4.0: pod security is enabled per namespace by label),
# so kube-system and default enforce `privileged` on every profile.
UNLABELLED_LEVELS = {"kube-system": "privileged", "default": "privileged"}


def _namespace_levels(objects: list[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """namespace -> (enforce level, enforce-version label) from the rendered Namespace objects."""
    out = {}
    for obj in objects:
        if obj.get("kind") == "Namespace":
            labels = obj["metadata"].get("labels") or {}
            out[obj["metadata"]["name"]] = (labels.get(ENFORCE, "privileged"), labels.get(ENFORCE_VERSION))
    return out


def _pods(cfg: Any, records: list[Recorded]) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str]]:
    """(source, namespace, pod) for every pod the platform creates; and what could not be modelled."""
    objects = [plain(r.inputs) for r in records if r.is_kubernetes_object]
    found: list[tuple[str, str, dict[str, Any]]] = []
    problems: list[str] = []
    for obj in objects:
        for label, pod in pods_of(obj):
            source = f"{obj['kind']}/{obj['metadata']['name']}" + (f" {label}" if label else "")
            found.append((source, obj["metadata"].get("namespace", "default"), pod))
    for release in (r for r in records if r.typ == HELM_RELEASE):
        inputs = plain(release.inputs)
        try:
            modelled: list[ChartPod] = chart_pods(inputs["chart"], inputs["version"], inputs.get("values") or {})
        except (NotModelled, MissingDefaults) as exc:
            problems.append(f"release {inputs['name']} (chart {inputs['chart']} {inputs['version']}): {exc}")
            continue
        for chart_pod in modelled:
            found.append((f"release {inputs['name']} {chart_pod.workload}",
                          chart_pod.namespace or inputs["namespace"], chart_pod.pod))
    for demo in demo_objects(cfg):
        for label, pod in pods_of(demo):
            source = f"demo {demo['kind']}/{demo['metadata']['name']}" + (f" {label}" if label else "")
            found.append((source, demo["metadata"].get("namespace", DEMO_NAMESPACE), pod))
    for helper in local_path_helper_pods(objects):
        found.append((helper.workload, helper.namespace or "default", helper.pod))
    return found, problems


def _refusals(cfg: Any, records: list[Recorded], profile: str, channel: str) -> list[str]:
    levels = _namespace_levels([plain(r.inputs) for r in records if r.is_kubernetes_object])
    cluster_minor = parse_version(cfg.kubernetes_minor)
    pods, problems = _pods(cfg, records)
    out = [f"{profile}/{channel}: {p}" for p in problems]
    for source, ns, pod in pods:
        if ns in levels:
            level, pinned = levels[ns]
        elif ns in UNLABELLED_LEVELS:
            level, pinned = UNLABELLED_LEVELS[ns], None
        else:
            out.append(f"{profile}/{channel}: {source}: namespace {ns} is neither created by the platform nor "
                       f"listed in UNLABELLED_LEVELS")
            continue
        version = cluster_minor if pinned in (None, "latest") else parse_version(pinned)
        out += [f"{profile}/{channel}: {source} in namespace {ns} (enforce {level}, Kubernetes "
                f"{version[0]}.{version[1]}) refused: {violation}" for violation in evaluate(pod, level, version)]
    return out


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_every_pod_is_admitted_at_its_namespace_level(renders, profile: str, channel: str) -> None:
    """Each refusal names profile, channel, the object (or release and workload), the container and the
    violated rule (the PSA check id of kubernetes/pod-security-admission policy/check_*.go)."""
    rendered = renders.get(profile, channel)
    refusals = _refusals(rendered.cfg, rendered.records, profile, channel)
    assert not refusals, "\n".join(refusals)


@pytest.mark.parametrize("channel", CHANNELS)
def test_the_device_plugin_gpu_stack_is_admitted_too(renders, channel: str) -> None:
    """No sample uses spec.gpu.stack: device-plugin, so private-gpu is rendered with it here: the
    nvidia-device-plugin and dcgm-exporter DaemonSets (models in chartpods.py) join every other pod."""
    cfg = renders.config("private-gpu", channel, ("spec.gpu.stack=device-plugin",))
    records = evaluate_program(cfg)
    charts = {plain(r.inputs)["chart"] for r in records if r.typ == HELM_RELEASE}
    assert {"nvidia-device-plugin", "dcgm-exporter"} <= charts
    refusals = _refusals(cfg, records, "private-gpu+device-plugin", channel)
    assert not refusals, "\n".join(refusals)


def test_the_check_refuses_z2jh_block_cloud_metadata_in_a_baseline_namespace(renders) -> None:
    """z2jh jupyterhub/files/hub/jupyterhub_config.py (3.3.8 .. 4.4.0) appends the init container
    block-cloud-metadata (privileged, runAsUser 0, NET_ADMIN) to every user pod when
    singleuser.cloudMetadata.blockWithIptables is true, the chart default at every pinned tag
    (values.yaml); namespace jupyterhub enforces baseline, which refuses privileged
    (check_privileged.go) and NET_ADMIN (check_capabilities_baseline.go). Whatever the stacks set,
    the check must see this when the values ask for it."""
    rendered = renders.get("private-gpu", CHANNELS[-1])
    release = next(plain(r.inputs) for r in rendered.helm() if plain(r.inputs)["chart"] == "jupyterhub")
    values = release["values"]
    values.setdefault("singleuser", {})["cloudMetadata"] = {"blockWithIptables": True, "ip": "169.254.169.254"}
    level, _ = _namespace_levels([plain(r.inputs) for r in rendered.kubernetes_objects()])[release["namespace"]]
    user_pods = [p for p in chart_pods("jupyterhub", release["version"], values) if p.workload.startswith("user pod")]
    assert level == "baseline" and user_pods
    minor = parse_version(rendered.cfg.kubernetes_minor)
    for user_pod in user_pods:
        found = {(v.where, v.check) for v in evaluate(user_pod.pod, level, minor)}
        assert {("container 'block-cloud-metadata'", "privileged"),
                ("container 'block-cloud-metadata'", "capabilities_baseline")} <= found, (user_pod.workload, found)



def test_the_check_names_a_refused_stack_object_and_an_unknown_namespace(renders) -> None:
    """The rendered-object path of the check can fail: a rendered Deployment given hostNetwork in a
    restricted namespace is refused (check_hostNamespaces.go), and a pod in a namespace nobody labels
    or lists in UNLABELLED_LEVELS is named instead of passing."""
    rendered = renders.get("lab", CHANNELS[-1])
    records = []
    for record in rendered.records:
        inputs = plain(record.inputs)
        if record.is_kubernetes_object and inputs["metadata"].get("name") == "training-operator" \
                and inputs["kind"] == "Deployment":
            inputs["spec"]["template"]["spec"]["hostNetwork"] = True
            records.append(replace(record, inputs=inputs))
            moved = copy.deepcopy(inputs)
            moved["metadata"]["namespace"] = "somewhere-else"
            records.append(replace(record, inputs=moved))
        else:
            records.append(record)
    refusals = _refusals(rendered.cfg, records, "lab", CHANNELS[-1])
    assert any("Deployment/training-operator in namespace kubeflow (enforce restricted" in r
               and "pod: hostNetwork=True (PSA check hostNamespaces)" in r for r in refusals), refusals
    assert any("namespace somewhere-else is neither created by the platform" in r for r in refusals), refusals
