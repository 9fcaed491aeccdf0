"""Pod Security Standards (baseline, restricted) evaluated on a pod, as Pod Security Admission does.

No maintained Python library evaluates the standards with admission's exact rules (PyPI has
general manifest linters, e.g. checkov, whose Kubernetes checks are best practices, not PSA's
versioned rules), so this is a compact transcription of the reference implementation:
kubernetes/pod-security-admission `policy/check_*.go` at tag v0.36.2 (the staging copy of
kubernetes/kubernetes v1.36.2, staging/src/k8s.io/pod-security-admission/policy), the code behind
https://kubernetes.io/docs/concepts/security/pod-security-standards/. Each check below names its
file. Checks are versioned as upstream: a namespace labelled `enforce-version: latest` is judged by
the API server's own minor, so `evaluate` takes that minor; at `restricted`, a restricted check
replaces the baseline check it overrides (OverrideCheckIDs), as admission does.

A pod is a dict shaped like the API object: {"metadata": {...}, "spec": {...}} (camelCase keys).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

LEVELS = ("privileged", "baseline", "restricted")
LATEST = (1, 36)

# check_capabilities_baseline.go: capabilities_allowed_1_0
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
# check_sysctls.go: sysctlsAllowedV1Dot0 .. V1Dot32, keyed by the minor they start at
_SYSCTLS = (
    ((1, 0), ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
              "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start")),
    ((1, 27), ("net.ipv4.ip_local_reserved_ports",)),
    ((1, 29), ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
               "net.ipv4.tcp_keepalive_probes")),
    ((1, 32), ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem")),
)
# check_restrictedVolumes.go: the inline volume sources restricted allows
RESTRICTED_VOLUME_SOURCES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim", "projected",
    "secret"})
_VOLUME_META_KEYS = frozenset({"name"})


@dataclass(frozen=True)
class Violation:
    """One refused field: the upstream check id, who set it (a container or the pod), the field and value."""

    check: str
    where: str
    field: str
    value: Any

    def __str__(self) -> str:
        return f"{self.where}: {self.field}={self.value!r} (PSA check {self.check})"


def parse_version(text: str) -> tuple[int, int]:
    """'1.34' or '1.34.2' or 'v1.34' -> (1, 34)."""
    major, minor = text.lstrip("v").split(".")[:2]
    return int(major), int(minor)


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """policy/visitor.go visitContainers: init containers, containers, then ephemeral containers."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def _ctx(c: dict[str, Any]) -> dict[str, Any]:
    return c.get("securityContext") or {}


def _name(c: dict[str, Any]) -> str:
    return f"container {c.get('name')!r}"


def _windows(spec: dict[str, Any]) -> bool:
    return (spec.get("os") or {}).get("name") == "windows"


def _user_namespace(spec: dict[str, Any]) -> bool:
    """policy/helpers.go relaxPolicyForUserNamespacePod: hostUsers explicitly false."""
    return spec.get("hostUsers") is False


Check = Callable[[dict[str, Any], dict[str, Any], tuple[int, int]], list[Violation]]


# ---- baseline ----------------------------------------------------------------------------------

def _host_process(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_windowsHostProcess.go"""
    out = []
    field = "securityContext.windowsOptions.hostProcess"
    if ((spec.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess") is True:
        out.append(Violation("windowsHostProcess", "pod", field, True))
    out += [Violation("windowsHostProcess", _name(c), field, True)
            for c in containers(spec) if (_ctx(c).get("windowsOptions") or {}).get("hostProcess") is True]
    return out


def _host_namespaces(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_hostNamespaces.go"""
    return [Violation("hostNamespaces", "pod", key, True)
            for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key) is True]


def _privileged(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_privileged.go"""
    return [Violation("privileged", _name(c), "securityContext.privileged", True)
            for c in containers(spec) if _ctx(c).get("privileged") is True]


def _capabilities_baseline(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_capabilities_baseline.go"""
    out = []
    for c in containers(spec):
        added = (_ctx(c).get("capabilities") or {}).get("add") or []
        bad = [cap for cap in added if cap not in BASELINE_CAPABILITIES]
        if bad:
            out.append(Violation("capabilities_baseline", _name(c), "securityContext.capabilities.add", bad))
    return out


def _host_path_volumes(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_hostPathVolumes.go"""
    return [Violation("hostPathVolumes", f"volume {vol.get('name')!r}", "hostPath", vol["hostPath"])
            for vol in spec.get("volumes") or [] if vol.get("hostPath") is not None]


def _host_ports(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_hostPorts.go"""
    out = []
    for c in containers(spec):
        ports = [p["hostPort"] for p in c.get("ports") or [] if p.get("hostPort") not in (None, 0)]
        if ports:
            out.append(Violation("hostPorts", _name(c), "ports[*].hostPort", ports))
    return out


def _apparmor(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_appArmorProfile.go: type RuntimeDefault/Localhost; annotations runtime/default, localhost/*, empty."""
    out = []
    field = "securityContext.appArmorProfile.type"
    allowed = {"RuntimeDefault", "Localhost"}
    pod_profile = (spec.get("securityContext") or {}).get("appArmorProfile")
    if pod_profile is not None and pod_profile.get("type") not in allowed:
        out.append(Violation("appArmorProfile", "pod", field, pod_profile.get("type")))
    for c in containers(spec):
        profile = _ctx(c).get("appArmorProfile")
        if profile is not None and profile.get("type") not in allowed:
            out.append(Violation("appArmorProfile", _name(c), field, profile.get("type")))
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    for key, value in sorted((meta.get("annotations") or {}).items()):
        if key.startswith(prefix) and not (value in ("", "runtime/default") or value.startswith("localhost/")):
            out.append(Violation("appArmorProfile", "pod", f"metadata.annotations[{key}]", value))
    return out


def _selinux(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_seLinuxOptions.go: type in the allowed set (container_engine_t from 1.31), no user, no role."""
    types = {"", "container_t", "container_init_t", "container_kvm_t"}
    if v >= (1, 31):
        types.add("container_engine_t")

    def bad(where: str, opts: dict[str, Any] | None) -> list[Violation]:
        if opts is None:
            return []
        found = []
        if opts.get("type", "") not in types:
            found.append(Violation("seLinuxOptions", where, "securityContext.seLinuxOptions.type", opts.get("type")))
        found += [Violation("seLinuxOptions", where, f"securityContext.seLinuxOptions.{key}", opts[key])
                  for key in ("user", "role") if opts.get(key)]
        return found

    out = bad("pod", (spec.get("securityContext") or {}).get("seLinuxOptions"))
    for c in containers(spec):
        out += bad(_name(c), _ctx(c).get("seLinuxOptions"))
    return out


def _proc_mount(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_procMount_baseline.go (from 1.35 any value in a user namespace, hostUsers: false)"""
    if v >= (1, 35) and _user_namespace(spec):
        return []
    return _proc_mount_any(meta, spec, v)


def _proc_mount_any(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_procMount_restricted.go (1.35+): Default or unset, user namespace or not."""
    return [Violation("procMount", _name(c), "securityContext.procMount", _ctx(c)["procMount"])
            for c in containers(spec) if _ctx(c).get("procMount") not in (None, "Default")]


def _seccomp_baseline(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_seccompProfile_baseline.go (1.19+): if set, RuntimeDefault or Localhost."""
    out = []
    field = "securityContext.seccompProfile.type"
    pod_profile = (spec.get("securityContext") or {}).get("seccompProfile")
    if pod_profile is not None and pod_profile.get("type") not in ("RuntimeDefault", "Localhost"):
        out.append(Violation("seccompProfile_baseline", "pod", field, pod_profile.get("type")))
    for c in containers(spec):
        profile = _ctx(c).get("seccompProfile")
        if profile is not None and profile.get("type") not in ("RuntimeDefault", "Localhost"):
            out.append(Violation("seccompProfile_baseline", _name(c), field, profile.get("type")))
    return out


def _sysctls(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_sysctls.go: only the safe set of the version."""
    safe = {name for since, names in _SYSCTLS if v >= since for name in names}
    return [Violation("sysctls", "pod", "securityContext.sysctls[*].name", s.get("name"))
            for s in (spec.get("securityContext") or {}).get("sysctls") or [] if s.get("name") not in safe]


def _host_probes(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_hostProbesAndhostLifecycle.go (1.34+): no host in httpGet/tcpSocket of probes and lifecycle."""
    out = []
    for c in containers(spec):
        handlers = {probe: c.get(probe) for probe in ("livenessProbe", "readinessProbe", "startupProbe")}
        hooks = c.get("lifecycle") or {}
        handlers.update({f"lifecycle.{hook}": hooks.get(hook) for hook in ("postStart", "preStop")})
        for path, handler in handlers.items():
            for kind in ("httpGet", "tcpSocket"):
                host = ((handler or {}).get(kind) or {}).get("host")
                if host:
                    out.append(Violation("hostProbesAndHostLifecycle", _name(c), f"{path}.{kind}.host", host))
    return out


# ---- restricted --------------------------------------------------------------------------------

def _restricted_volumes(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_restrictedVolumes.go: only the sources in RESTRICTED_VOLUME_SOURCES."""
    out = []
    for vol in spec.get("volumes") or []:
        sources = [key for key in vol if key not in _VOLUME_META_KEYS]
        if not any(key in RESTRICTED_VOLUME_SOURCES for key in sources):
            out.append(Violation("restrictedVolumes", f"volume {vol.get('name')!r}", "volume type",
                                 sources[0] if sources else "unknown"))
    return out


def _allow_privilege_escalation(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_allowPrivilegeEscalation.go: must be explicitly false (windows pods exempt from 1.25)."""
    if _windows(spec):
        return []
    return [Violation("allowPrivilegeEscalation", _name(c), "securityContext.allowPrivilegeEscalation",
                      _ctx(c).get("allowPrivilegeEscalation"))
            for c in containers(spec) if _ctx(c).get("allowPrivilegeEscalation") is not False]


def _run_as_non_root(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_runAsNonRoot.go: true on the pod or on every container, never false (user namespaces exempt from 1.35)."""
    if v >= (1, 35) and _user_namespace(spec):
        return []
    field = "securityContext.runAsNonRoot"
    pod_value = (spec.get("securityContext") or {}).get("runAsNonRoot")
    out = [Violation("runAsNonRoot", "pod", field, False)] if pod_value is False else []
    for c in containers(spec):
        value = _ctx(c).get("runAsNonRoot")
        if value is False or (value is None and pod_value is not True):
            out.append(Violation("runAsNonRoot", _name(c), field, value))
    return out


def _run_as_user(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_runAsUser.go (1.23+): runAsUser must not be 0 (user namespaces exempt from 1.35)."""
    if v >= (1, 35) and _user_namespace(spec):
        return []
    out = [Violation("runAsUser", "pod", "securityContext.runAsUser", 0)
           ] if (spec.get("securityContext") or {}).get("runAsUser") == 0 else []
    out += [Violation("runAsUser", _name(c), "securityContext.runAsUser", 0)
            for c in containers(spec) if _ctx(c).get("runAsUser") == 0]
    return out


def _seccomp_restricted(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_seccompProfile_restricted.go: RuntimeDefault/Localhost on the pod or each container (windows exempt)."""
    if _windows(spec):
        return []
    out = _seccomp_baseline(meta, spec, v)
    pod_set = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type") in ("RuntimeDefault",
                                                                                                 "Localhost")
    out += [Violation("seccompProfile_restricted", _name(c), "securityContext.seccompProfile.type", None)
            for c in containers(spec) if _ctx(c).get("seccompProfile") is None and not pod_set]
    return [Violation("seccompProfile_restricted", x.where, x.field, x.value) for x in out]


def _capabilities_restricted(meta: dict[str, Any], spec: dict[str, Any], v: tuple[int, int]) -> list[Violation]:
    """check_capabilities_restricted.go: drop must include ALL; add only NET_BIND_SERVICE (windows exempt)."""
    if _windows(spec):
        return []
    out = []
    for c in containers(spec):
        caps = _ctx(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(Violation("capabilities_restricted", _name(c), "securityContext.capabilities.drop",
                                 caps.get("drop")))
        bad = [cap for cap in caps.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if bad:
            out.append(Violation("capabilities_restricted", _name(c), "securityContext.capabilities.add", bad))
    return out


@dataclass(frozen=True)
class _Versioned:
    check: str
    level: str
    since: tuple[int, int]
    fn: Check
    overrides: tuple[str, ...] = ()


# The registry of policy/check_*.go: (id, level, MinimumVersion, function, OverrideCheckIDs). A check's
# newest version at or below the evaluated minor applies; a check whose first version is newer does not.
_CHECKS = (
    _Versioned("windowsHostProcess", "baseline", (1, 0), _host_process),
    _Versioned("hostNamespaces", "baseline", (1, 0), _host_namespaces),
    _Versioned("privileged", "baseline", (1, 0), _privileged),
    _Versioned("capabilities_baseline", "baseline", (1, 0), _capabilities_baseline),
    _Versioned("hostPathVolumes", "baseline", (1, 0), _host_path_volumes),
    _Versioned("hostPorts", "baseline", (1, 0), _host_ports),
    _Versioned("appArmorProfile", "baseline", (1, 0), _apparmor),
    _Versioned("seLinuxOptions", "baseline", (1, 0), _selinux),
    _Versioned("procMount", "baseline", (1, 0), _proc_mount),
    _Versioned("seccompProfile_baseline", "baseline", (1, 19), _seccomp_baseline),
    _Versioned("sysctls", "baseline", (1, 0), _sysctls),
    _Versioned("hostProbesAndHostLifecycle", "baseline", (1, 34), _host_probes),
    _Versioned("restrictedVolumes", "restricted", (1, 0), _restricted_volumes, ("hostPathVolumes",)),
    _Versioned("allowPrivilegeEscalation", "restricted", (1, 8), _allow_privilege_escalation),
    _Versioned("runAsNonRoot", "restricted", (1, 0), _run_as_non_root),
    _Versioned("runAsUser", "restricted", (1, 23), _run_as_user),
    _Versioned("seccompProfile_restricted", "restricted", (1, 19), _seccomp_restricted, ("seccompProfile_baseline",)),
    _Versioned("capabilities_restricted", "restricted", (1, 22), _capabilities_restricted, ("capabilities_baseline",)),
    _Versioned("procMount_restricted", "restricted", (1, 35), _proc_mount_any, ("procMount",)),
)


def evaluate(pod: dict[str, Any], level: str, version: tuple[int, int] = LATEST) -> list[Violation]:
    """Every violation of `pod` at `level` ('privileged', 'baseline', 'restricted') for Kubernetes `version`.

    An empty list means admission lets the pod in. An unknown level is an error, not a pass.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r}; expected one of {', '.join(LEVELS)}")
    if level == "privileged":
        return []
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    active = [c for c in _CHECKS if c.since <= version and (level == "restricted" or c.level == "baseline")]
    overridden = {o for c in active for o in c.overrides}
    return [v for c in active if c.check not in overridden for v in c.fn(meta, spec, version)]


def pods_of(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The pods a rendered object makes, as (label, pod): workload templates and TFJob/PyTorchJob replicas."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return [("", obj)]
    if kind in ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "ReplicationController"):
        return [("", spec["template"])] if spec.get("template") else []
    if kind == "CronJob":
        return [("", spec["jobTemplate"]["spec"]["template"])]
    replicas = spec.get("tfReplicaSpecs") or spec.get("pytorchReplicaSpecs") or {}
    return [(f"replica {role}", r["template"]) for role, r in sorted(replicas.items()) if r.get("template")]
