"""The Pod Security evaluator itself (tests/stacks/podsecurity.py): for each rule, one pod admitted
and one refused, at the level and Kubernetes minor where upstream applies the rule.

Source of every rule: kubernetes/pod-security-admission, policy/check_<name>.go at tag v0.36.2
(kubernetes/kubernetes v1.36.2, staging/src/k8s.io/pod-security-admission/policy); each case names
its file. The admitted pod of each case differs from the refused one only in the field under test.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from podsecurity import evaluate, parse_version, pods_of

RESTRICTED_OK: dict[str, Any] = {
    "metadata": {"name": "ok"},
    "spec": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "image": "app:1", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    },
}


def pod(**changes: Any) -> dict[str, Any]:
    """RESTRICTED_OK changed at paths: spec__hostNetwork, c__securityContext__privileged (c = the container)."""
    out = copy.deepcopy(RESTRICTED_OK)
    for path, value in changes.items():
        keys = path.replace("__", ".").split(".")
        node = out["spec"]["containers"][0] if keys[0] == "c" else out
        keys = keys[1:] if keys[0] == "c" else keys
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return out


# (check file, level, minor, admitted pod, refused pod, check id the refusal names)
CASES = [
    ("check_windowsHostProcess.go", "baseline", "1.36",
     pod(c__securityContext__windowsOptions={"hostProcess": False}),
     pod(c__securityContext__windowsOptions={"hostProcess": True}), "windowsHostProcess"),
    ("check_windowsHostProcess.go (pod level)", "baseline", "1.36",
     pod(spec__securityContext__windowsOptions={"hostProcess": False}),
     pod(spec__securityContext__windowsOptions={"hostProcess": True}), "windowsHostProcess"),
    ("check_hostNamespaces.go hostNetwork", "baseline", "1.36", pod(spec__hostNetwork=False),
     pod(spec__hostNetwork=True), "hostNamespaces"),
    ("check_hostNamespaces.go hostPID", "baseline", "1.36", pod(spec__hostPID=False), pod(spec__hostPID=True),
     "hostNamespaces"),
    ("check_hostNamespaces.go hostIPC", "baseline", "1.36", pod(spec__hostIPC=False), pod(spec__hostIPC=True),
     "hostNamespaces"),
    ("check_privileged.go", "baseline", "1.36", pod(c__securityContext__privileged=False),
     pod(c__securityContext__privileged=True), "privileged"),
    ("check_capabilities_baseline.go", "baseline", "1.36",
     pod(c__securityContext__capabilities={"add": ["CHOWN", "NET_BIND_SERVICE", "SYS_CHROOT"]}),
     pod(c__securityContext__capabilities={"add": ["NET_ADMIN"]}), "capabilities_baseline"),
    ("check_capabilities_baseline.go NET_RAW", "baseline", "1.36",
     pod(c__securityContext__capabilities={"add": ["KILL"]}),
     pod(c__securityContext__capabilities={"add": ["NET_RAW"]}), "capabilities_baseline"),
    ("check_hostPathVolumes.go", "baseline", "1.36", pod(spec__volumes=[{"name": "v", "emptyDir": {}}]),
     pod(spec__volumes=[{"name": "v", "hostPath": {"path": "/"}}]), "hostPathVolumes"),
    ("check_hostPorts.go", "baseline", "1.36", pod(c__ports=[{"containerPort": 80, "hostPort": 0}]),
     pod(c__ports=[{"containerPort": 80, "hostPort": 8080}]), "hostPorts"),
    ("check_appArmorProfile.go field", "baseline", "1.36",
     pod(c__securityContext__appArmorProfile={"type": "Localhost", "localhostProfile": "p"}),
     pod(c__securityContext__appArmorProfile={"type": "Unconfined"}), "appArmorProfile"),
    ("check_appArmorProfile.go annotation", "baseline", "1.36",
     pod(**{"metadata.annotations": {"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}}),
     pod(**{"metadata.annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}),
     "appArmorProfile"),
    ("check_seLinuxOptions.go type", "baseline", "1.36",
     pod(c__securityContext__seLinuxOptions={"type": "container_init_t", "level": "s0:c1"}),
     pod(c__securityContext__seLinuxOptions={"type": "spc_t"}), "seLinuxOptions"),
    ("check_seLinuxOptions.go user", "baseline", "1.36", pod(spec__securityContext__seLinuxOptions={"user": ""}),
     pod(spec__securityContext__seLinuxOptions={"user": "system_u"}), "seLinuxOptions"),
    ("check_seLinuxOptions.go container_engine_t from 1.31", "baseline", "1.31",
     pod(c__securityContext__seLinuxOptions={"type": "container_engine_t"}),
     pod(c__securityContext__seLinuxOptions={"role": "sysadm_r"}), "seLinuxOptions"),
    ("check_procMount_baseline.go", "baseline", "1.34", pod(c__securityContext__procMount="Default"),
     pod(c__securityContext__procMount="Unmasked"), "procMount"),
    ("check_procMount_baseline.go user namespace from 1.35", "baseline", "1.35",
     pod(c__securityContext__procMount="Unmasked", spec__hostUsers=False),
     pod(c__securityContext__procMount="Unmasked", spec__hostUsers=True), "procMount"),
    ("check_seccompProfile_baseline.go", "baseline", "1.36",
     pod(spec__securityContext__seccompProfile={"type": "Localhost", "localhostProfile": "p.json"}),
     pod(c__securityContext__seccompProfile={"type": "Unconfined"}), "seccompProfile_baseline"),
    ("check_sysctls.go", "baseline", "1.36",
     pod(spec__securityContext__sysctls=[{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]),
     pod(spec__securityContext__sysctls=[{"name": "kernel.msgmax", "value": "65536"}]), "sysctls"),
    ("check_hostProbesAndhostLifecycle.go", "baseline", "1.34",
     pod(c__livenessProbe={"httpGet": {"port": 80, "host": ""}}),
     pod(c__livenessProbe={"httpGet": {"port": 80, "host": "169.254.169.254"}}), "hostProbesAndHostLifecycle"),
    ("check_hostProbesAndhostLifecycle.go lifecycle", "baseline", "1.36",
     pod(c__lifecycle={"preStop": {"httpGet": {"port": 80}}}),
     pod(c__lifecycle={"preStop": {"tcpSocket": {"port": 80, "host": "10.0.0.1"}}}), "hostProbesAndHostLifecycle"),
    ("check_restrictedVolumes.go", "restricted", "1.36",
     pod(spec__volumes=[{"name": "v", "projected": {"sources": []}}, {"name": "w", "csi": {"driver": "d"}}]),
     pod(spec__volumes=[{"name": "v", "nfs": {"server": "s", "path": "/"}}]), "restrictedVolumes"),
    ("check_allowPrivilegeEscalation.go", "restricted", "1.36", pod(),
     pod(c__securityContext__allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
    ("check_runAsNonRoot.go", "restricted", "1.36",
     pod(spec__securityContext__runAsNonRoot=None, c__securityContext__runAsNonRoot=True),
     pod(spec__securityContext__runAsNonRoot=None), "runAsNonRoot"),
    ("check_runAsNonRoot.go explicit false", "restricted", "1.36", pod(),
     pod(c__securityContext__runAsNonRoot=False), "runAsNonRoot"),
    ("check_runAsUser.go", "restricted", "1.36", pod(c__securityContext__runAsUser=1000),
     pod(c__securityContext__runAsUser=0), "runAsUser"),
    ("check_runAsUser.go user namespace from 1.35", "restricted", "1.35",
     pod(spec__securityContext__runAsUser=0, spec__hostUsers=False), pod(spec__securityContext__runAsUser=0),
     "runAsUser"),
    ("check_seccompProfile_restricted.go", "restricted", "1.36",
     pod(spec__securityContext__seccompProfile=None, c__securityContext__seccompProfile={"type": "RuntimeDefault"}),
     pod(spec__securityContext__seccompProfile=None), "seccompProfile_restricted"),
    ("check_seccompProfile_restricted.go Unconfined", "restricted", "1.36", pod(),
     pod(c__securityContext__seccompProfile={"type": "Unconfined"}), "seccompProfile_restricted"),
    ("check_capabilities_restricted.go drop", "restricted", "1.36",
     pod(c__securityContext__capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
     pod(c__securityContext__capabilities={"drop": ["NET_RAW"]}), "capabilities_restricted"),
    ("check_capabilities_restricted.go add", "restricted", "1.36", pod(),
     pod(c__securityContext__capabilities={"drop": ["ALL"], "add": ["CHOWN"]}), "capabilities_restricted"),
    ("check_procMount_restricted.go (1.35+, no user-namespace relief)", "restricted", "1.35",
     pod(c__securityContext__procMount="Default", spec__hostUsers=False),
     pod(c__securityContext__procMount="Unmasked", spec__hostUsers=False), "procMount"),
]


@pytest.mark.parametrize(("source", "level", "minor", "admitted", "refused", "check"), CASES,
                         ids=[c[0] for c in CASES])
def test_each_rule_admits_one_pod_and_refuses_the_other(source: str, level: str, minor: str, admitted: dict[str, Any],
                                                        refused: dict[str, Any], check: str) -> None:
    version = parse_version(minor)
    assert evaluate(admitted, level, version) == [], source
    found = evaluate(refused, level, version)
    assert found, f"{source}: the refused pod was admitted"
    assert {v.check for v in found} == {check}, f"{source}: {[str(v) for v in found]}"


def test_a_rule_before_its_first_version_does_not_apply() -> None:
    """check_hostProbesAndhostLifecycle.go starts at 1.34; check_sysctls.go added tcp_rmem in 1.32;
    check_seLinuxOptions.go allows container_engine_t from 1.31."""
    probe = pod(c__readinessProbe={"tcpSocket": {"port": 80, "host": "node"}})
    assert evaluate(probe, "baseline", (1, 33)) == []
    assert [v.check for v in evaluate(probe, "baseline", (1, 34))] == ["hostProbesAndHostLifecycle"]
    rmem = pod(spec__securityContext__sysctls=[{"name": "net.ipv4.tcp_rmem", "value": "1"}])
    assert [v.check for v in evaluate(rmem, "baseline", (1, 31))] == ["sysctls"]
    assert evaluate(rmem, "baseline", (1, 32)) == []
    engine = pod(c__securityContext__seLinuxOptions={"type": "container_engine_t"})
    assert [v.check for v in evaluate(engine, "baseline", (1, 30))] == ["seLinuxOptions"]


def test_restricted_includes_baseline_and_overrides_its_weaker_twin() -> None:
    """Restricted refuses what baseline refuses; where a restricted check overrides a baseline one
    (OverrideCheckIDs in check_restrictedVolumes.go, check_capabilities_restricted.go,
    check_seccompProfile_restricted.go) only the restricted check reports."""
    host = pod(spec__hostPID=True, spec__volumes=[{"name": "h", "hostPath": {"path": "/"}}],
               c__securityContext__capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]})
    assert {v.check for v in evaluate(host, "baseline")} == {"hostNamespaces", "hostPathVolumes",
                                                             "capabilities_baseline"}
    assert {v.check for v in evaluate(host, "restricted")} == {"hostNamespaces", "restrictedVolumes",
                                                               "capabilities_restricted"}


def test_baseline_admits_the_minimal_pod_restricted_does_not() -> None:
    """The standard's definition: baseline 'allows the default (minimally specified) Pod configuration'."""
    minimal = {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    assert evaluate(minimal, "baseline") == []
    assert {v.check for v in evaluate(minimal, "restricted")} == {
        "allowPrivilegeEscalation", "runAsNonRoot", "seccompProfile_restricted", "capabilities_restricted"}


def test_init_and_ephemeral_containers_are_checked_and_named() -> None:
    """policy/visitor.go visitContainers walks initContainers, containers and ephemeralContainers."""
    bad = {"spec": {"initContainers": [{"name": "block-cloud-metadata", "securityContext": {
        "runAsUser": 0, "privileged": True, "capabilities": {"add": ["NET_ADMIN"]}}}],
        "containers": [{"name": "app"}],
        "ephemeralContainers": [{"name": "debug", "securityContext": {"privileged": True}}]}}
    messages = [str(v) for v in evaluate(bad, "baseline")]
    assert messages == [
        "container 'block-cloud-metadata': securityContext.privileged=True (PSA check privileged)",
        "container 'debug': securityContext.privileged=True (PSA check privileged)",
        "container 'block-cloud-metadata': securityContext.capabilities.add=['NET_ADMIN'] "
        "(PSA check capabilities_baseline)"]


def test_windows_pods_are_exempt_from_the_linux_only_restricted_checks() -> None:
    """check_allowPrivilegeEscalation.go, check_seccompProfile_restricted.go, check_capabilities_restricted.go
    (1.25+): spec.os.name windows is admitted without those fields; runAsNonRoot still applies."""
    windows = {"spec": {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True},
                        "containers": [{"name": "app"}]}}
    assert evaluate(windows, "restricted") == []
    assert evaluate(dict(windows, spec=dict(windows["spec"], os={"name": "linux"})), "restricted")


def test_privileged_admits_anything_and_an_unknown_level_is_an_error() -> None:
    assert evaluate(pod(spec__hostNetwork=True, c__securityContext__privileged=True), "privileged") == []
    with pytest.raises(ValueError, match="unknown Pod Security level 'strict'"):
        evaluate(RESTRICTED_OK, "strict")


def test_pods_of_reads_every_pod_bearing_kind() -> None:
    template = {"metadata": {}, "spec": {"containers": [{"name": "c"}]}}
    assert pods_of({"kind": "Deployment", "spec": {"template": template}}) == [("", template)]
    assert pods_of({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": template}}}}) == [("", template)]
    assert pods_of({"kind": "Pod", **template}) == [("", {"kind": "Pod", **template})]
    tfjob = {"kind": "TFJob", "spec": {"tfReplicaSpecs": {"Worker": {"template": template},
                                                          "Chief": {"template": template}}}}
    assert [label for label, _ in pods_of(tfjob)] == ["replica Chief", "replica Worker"]
    assert pods_of({"kind": "ConfigMap", "data": {}}) == []
