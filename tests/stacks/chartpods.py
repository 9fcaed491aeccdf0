"""The pods each Helm release of the platform creates, modelled from upstream templates.

`kfinstall render` records a release's values only (the chart is never rendered), so what a chart
turns those values into is written here, from the chart's templates at the pinned tag, limited to
the fields Pod Security looks at (tests/stacks/podsecurity.py): host namespaces, security contexts,
volumes, ports, probes and lifecycle hosts, sysctls, annotations. Each model's docstring names the
upstream repository, template path and tag(s) it follows. Values are the chart's own defaults
(values.yaml at the pinned version, read in place from ../shared/schemas) with the recorded values
merged over them by Helm's rule; where ../shared/schemas has no copy of a chart (ingress-nginx), the
few defaults a model reads are written into it with their citation.

A release whose chart has no model, or whose values switch on a part no model covers, raises
NotModelled naming it: the class check then fails instead of passing unseen pods.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml
from stackhelpers import SHARED_SCHEMAS, helm_merge

# Folder of a chart in ../shared/schemas when it differs from the chart name (MANIFEST.md, "Tag naming").
_SCHEMA_FOLDER = {"jupyterhub": "jupyterhub-chart"}


class NotModelled(Exception):
    """A chart, or a part of it switched on by the values, that no model here covers."""


class MissingDefaults(Exception):
    """../shared/schemas has no values.yaml for a pinned chart version."""


@dataclass(frozen=True)
class ChartPod:
    """One pod a release creates: the workload that makes it, its namespace (None: the release's) and the pod."""

    workload: str
    pod: dict[str, Any]
    namespace: str | None = None


# ---- values -------------------------------------------------------------------------------------

@cache
def _defaults_text(chart: str, version: str) -> str:
    path = SHARED_SCHEMAS / _SCHEMA_FOLDER.get(chart, chart) / version / "values.yaml"
    if not path.is_file():
        raise MissingDefaults(f"{path} is absent: no upstream defaults for chart {chart} {version}")
    return path.read_text(encoding="utf-8")


def chart_defaults(chart: str, version: str) -> dict[str, Any]:
    return yaml.safe_load(_defaults_text(chart, version)) or {}


def merged_values(chart: str, version: str, values: dict[str, Any]) -> dict[str, Any]:
    base = EMBEDDED_DEFAULTS[chart] if chart in EMBEDDED_DEFAULTS else chart_defaults(chart, version)
    return helm_merge(base, values)


def dig(values: dict[str, Any], path: str, default: Any = None) -> Any:
    node: Any = values
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return default if node is None else node


def _pod(spec: dict[str, Any], annotations: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"annotations": dict(annotations or {})}, "spec": spec}


def _container(name: str, security_context: Any = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, **fields}
    if security_context:
        out["securityContext"] = copy.deepcopy(security_context)
    return out


def _with_extra_pod_spec(spec: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """z2jh `{{- with .Values.X.extraPodSpec }}{{ toYaml }}`: keys appended to the pod spec (the later key wins)."""
    return {**spec, **copy.deepcopy(extra or {})}


# ---- zero-to-jupyterhub -------------------------------------------------------------------------

def z2jh_hub(values: dict[str, Any]) -> list[ChartPod]:
    """Hub Deployment: jupyterhub/zero-to-jupyterhub-k8s jupyterhub/templates/hub/deployment.yaml
    (tags 3.3.8, 4.2.0, 4.3.5, 4.4.0: the security-relevant lines are the same): hub.podSecurityContext,
    hub.initContainers, container `hub` with hub.containerSecurityContext and hub.lifecycle,
    hub.extraContainers, volumes config/secret (+ files, existing-secret, sqlite-pvc PVC, hub.extraVolumes),
    then hub.extraPodSpec."""
    hub = values["hub"]
    volumes = [{"name": "config", "configMap": {"name": "hub"}}, {"name": "secret", "secret": {"secretName": "hub"}}]
    if hub.get("existingSecret"):
        volumes.append({"name": "existing-secret", "secret": {"secretName": hub["existingSecret"]}})
    if hub.get("extraFiles"):
        volumes.append({"name": "files", "secret": {"secretName": "hub"}})
    volumes += copy.deepcopy(hub.get("extraVolumes") or [])
    if dig(values, "hub.db.type") == "sqlite-pvc":
        volumes.append({"name": "pvc", "persistentVolumeClaim": {"claimName": "hub-db-dir"}})
    main = _container("hub", hub.get("containerSecurityContext"), ports=[{"name": "http", "containerPort": 8081}],
                      lifecycle=hub.get("lifecycle") or {})
    spec = {"securityContext": copy.deepcopy(hub.get("podSecurityContext") or {}),
            "initContainers": copy.deepcopy(hub.get("initContainers") or []),
            "containers": [main, *copy.deepcopy(hub.get("extraContainers") or [])], "volumes": volumes}
    return [ChartPod("Deployment/hub", _pod(_with_extra_pod_spec(spec, hub.get("extraPodSpec")),
                                             hub.get("annotations")))]


def z2jh_proxy(values: dict[str, Any]) -> list[ChartPod]:
    """Proxy Deployment: jupyterhub/templates/proxy/deployment.yaml (3.3.8 .. 4.4.0): container `chp` with
    proxy.chp.containerSecurityContext, no pod securityContext, a tls-secret Secret volume for manual
    HTTPS, then proxy.chp.extraPodSpec. autohttps (proxy.https.type letsencrypt) is not modelled."""
    https = dig(values, "proxy.https", {})
    if https.get("enabled") and https.get("type", "letsencrypt") == "letsencrypt":
        raise NotModelled("z2jh proxy.https letsencrypt (autohttps Deployment, proxy/autohttps/deployment.yaml)")
    chp = dig(values, "proxy.chp", {})
    spec: dict[str, Any] = {"containers": [_container("chp", chp.get("containerSecurityContext"),
                                                      ports=[{"name": "http", "containerPort": 8000},
                                                             {"name": "api", "containerPort": 8001}])]}
    if https.get("enabled") and https.get("type") in ("manual", "secret"):
        spec["volumes"] = [{"name": "tls-secret", "secret": {"secretName": "proxy-manual-tls"}}]
    return [ChartPod("Deployment/proxy", _pod(_with_extra_pod_spec(spec, chp.get("extraPodSpec")),
                                               dig(values, "proxy.annotations")))]


def z2jh_scheduling(values: dict[str, Any]) -> list[ChartPod]:
    """user-scheduler Deployment and user-placeholder StatefulSet, when enabled:
    jupyterhub/templates/scheduling/user-scheduler/deployment.yaml (container kube-scheduler,
    scheduling.userScheduler.containerSecurityContext, a ConfigMap volume, extraPodSpec) and
    scheduling/user-placeholder/statefulset.yaml (container pause, scheduling.userPlaceholder.
    containerSecurityContext, extraPodSpec), 3.3.8 .. 4.4.0. The placeholder exists at replicas 0 too."""
    out = []
    scheduler = dig(values, "scheduling.userScheduler", {})
    if scheduler.get("enabled"):
        spec = {"containers": [_container("kube-scheduler", scheduler.get("containerSecurityContext"))],
                "volumes": [{"name": "config", "configMap": {"name": "user-scheduler"}}]}
        spec = _with_extra_pod_spec(spec, scheduler.get("extraPodSpec"))
        out.append(ChartPod("Deployment/user-scheduler", _pod(spec)))
    placeholder = dig(values, "scheduling.userPlaceholder", {})
    if placeholder.get("enabled"):
        spec = {"containers": [_container("pause", placeholder.get("containerSecurityContext"))]}
        out.append(ChartPod("StatefulSet/user-placeholder",
                            _pod(_with_extra_pod_spec(spec, placeholder.get("extraPodSpec")))))
    return out


def _block_cloud_metadata(values: dict[str, Any]) -> bool:
    """image-puller/_helpers-daemonset.tpl: a legacy cloudMetadata.enabled wins (inverted), else blockWithIptables."""
    cloud = dig(values, "singleuser.cloudMetadata", {})
    return (not cloud["enabled"]) if "enabled" in cloud else cloud.get("blockWithIptables") is True


def z2jh_image_pullers(values: dict[str, Any]) -> list[ChartPod]:
    """hook-image-puller and continuous-image-puller DaemonSets and the hook-image-awaiter Job:
    jupyterhub/templates/image-puller/_helpers-daemonset.tpl, daemonset-hook.yaml, daemonset-continuous.yaml
    and job.yaml (3.3.8 .. 4.4.0). Every init container (image-pull-metadata-block, image-pull-singleuser,
    one per singleuser init/extra container, per profileList image, per prePuller.extraImages) takes
    prePuller.containerSecurityContext; container pause takes prePuller.pause.containerSecurityContext;
    no pod securityContext. The awaiter takes prePuller.hook.containerSecurityContext."""
    puller = values.get("prePuller") or {}
    csc = puller.get("containerSecurityContext")
    inits = []
    if _block_cloud_metadata(values):
        inits.append(_container("image-pull-metadata-block", csc))
    inits.append(_container("image-pull-singleuser", csc))
    extra = list(dig(values, "singleuser.initContainers", [])) + list(dig(values, "singleuser.extraContainers", []))
    inits += [_container(f"image-pull-singleuser-init-and-extra-containers-{k}", csc) for k in range(len(extra))]
    if puller.get("pullProfileListImages"):
        for k, profile in enumerate(dig(values, "singleuser.profileList", [])):
            if (profile.get("kubespawner_override") or {}).get("image"):
                inits.append(_container(f"image-pull-singleuser-profilelist-{k}", csc))
            for option, option_spec in (profile.get("profile_options") or {}).items():
                for choice, choice_spec in (option_spec.get("choices") or {}).items():
                    if (choice_spec.get("kubespawner_override") or {}).get("image"):
                        inits.append(_container(f"image-pull-profile-{k}-option-{option}-{choice}", csc))
    inits += [_container(f"image-pull-{k}", csc) for k in sorted(puller.get("extraImages") or {})]
    pause = _container("pause", dig(puller, "pause.containerSecurityContext"))
    daemonset = {"automountServiceAccountToken": False, "initContainers": inits, "containers": [pause]}
    out = []
    if dig(puller, "hook.enabled"):
        out.append(ChartPod("DaemonSet/hook-image-puller", _pod(copy.deepcopy(daemonset), puller.get("annotations"))))
        awaiter = _container("hook-image-awaiter", dig(puller, "hook.containerSecurityContext"))
        out.append(ChartPod("Job/hook-image-awaiter", _pod({"restartPolicy": "Never", "containers": [awaiter]})))
    if dig(puller, "continuous.enabled"):
        out.append(ChartPod("DaemonSet/continuous-image-puller", _pod(daemonset, puller.get("annotations"))))
    return out


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _recursive_update(target: dict[str, Any], new: dict[str, Any]) -> None:
    """kubespawner/utils.py recursive_update (6.2.0, 7.0.0): dicts merge, None deletes, the rest replaces."""
    for key, value in new.items():
        if isinstance(value, dict):
            target.setdefault(key, {})
            _recursive_update(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


def _as_list(value: Any) -> list[Any]:
    """KubeSpawner 7 accepts a dict for init_containers/extra_containers: its values sorted by key."""
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]
    return list(value or [])


def _spawner_traits(values: dict[str, Any]) -> dict[str, Any]:
    """The KubeSpawner traits jupyterhub_config.py sets that reach the pod's security-relevant fields:
    jupyterhub/files/hub/jupyterhub_config.py (3.3.8 .. 4.4.0): singleuser.uid, fsGid, lifecycleHooks,
    initContainers, extraContainers, extraPodConfig, extraAnnotations (set when not null),
    allowPrivilegeEscalation (always), the storage volumes, the block-cloud-metadata init container when
    singleuser.cloudMetadata.blockWithIptables is true (privileged, runAsUser 0, NET_ADMIN), and last
    hub.config.KubeSpawner, which replaces any trait it names. hub.extraConfig is Python: not modelled."""
    su = values.get("singleuser") or {}
    if any(dig(values, "hub.extraConfig", {}).values()):
        raise NotModelled("z2jh hub.extraConfig (Python run by the hub can change every spawned pod)")
    traits: dict[str, Any] = {"uid": None, "gid": None, "fs_gid": None, "supplemental_gids": None,
                              "privileged": False, "allow_privilege_escalation": False,
                              "container_security_context": {}, "pod_security_context": {},
                              "lifecycle_hooks": {}, "init_containers": [], "extra_containers": [],
                              "extra_container_config": {}, "extra_pod_config": {}, "extra_annotations": {}}
    for trait, key in (("uid", "uid"), ("fs_gid", "fsGid"), ("lifecycle_hooks", "lifecycleHooks"),
                       ("init_containers", "initContainers"), ("extra_containers", "extraContainers"),
                       ("extra_pod_config", "extraPodConfig"), ("extra_annotations", "extraAnnotations")):
        if su.get(key) is not None:
            traits[trait] = copy.deepcopy(su[key])
    traits["allow_privilege_escalation"] = su.get("allowPrivilegeEscalation")
    traits["volumes"] = _user_volumes(values)
    if (su.get("cloudMetadata") or {}).get("blockWithIptables") is True:
        traits["init_containers"] = [*_as_list(traits["init_containers"]), {
            "name": "block-cloud-metadata",
            "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}}}]
    traits.update(copy.deepcopy(dig(values, "hub.config.KubeSpawner", {})))
    return traits


def _user_volumes(values: dict[str, Any]) -> list[dict[str, Any]]:
    storage = dig(values, "singleuser.storage", {})
    volumes: dict[str, dict[str, Any]] = {}
    if storage.get("type") == "dynamic":
        name = dig(storage, "dynamic.volumeNameTemplate", "volume-{user_server}")
        volumes[name] = {"name": name, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
    elif storage.get("type") == "static":
        volumes["home"] = {"name": "home", "persistentVolumeClaim": {"claimName": dig(storage, "static.pvcName")}}
    if dig(values, "singleuser.extraFiles"):
        volumes["files"] = {"name": "files", "secret": {"secretName": "singleuser"}}
    extra = storage.get("extraVolumes") or {}
    volumes.update(extra if isinstance(extra, dict) else {v["name"]: v for v in extra})
    return copy.deepcopy(list(volumes.values()))


def _apply_override(traits: dict[str, Any], override: dict[str, Any]) -> None:
    """kubespawner/spawner.py _apply_overrides (6.2.0, 7.0.0): a dict merges into a dict trait, else replaces."""
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(traits.get(key), dict):
            _recursive_update(traits[key], value)
        else:
            traits[key] = copy.deepcopy(value)


def _update_model(target: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """kubespawner/objects.py update_k8s_model: each key (snake or camel case) replaces that field."""
    return {**target, **{_camel(k): copy.deepcopy(v) for k, v in changes.items()}}


def make_user_pod(traits: dict[str, Any]) -> dict[str, Any]:
    """kubespawner/objects.py make_pod (jupyterhub-kubespawner 6.2.0 in z2jh 3.3.8, 7.0.0 in 4.x; the
    security parts are the same): pod securityContext = fsGroup(fs_gid), supplementalGroups, then
    pod_security_context; container `notebook` securityContext = runAsUser(uid), runAsGroup(gid),
    privileged if true, allowPrivilegeEscalation if not None, then container_security_context;
    extra_container_config updates the notebook container; extra_containers follow it; init_containers;
    volumes; extra_pod_config updates the pod spec last."""
    psc: dict[str, Any] = {}
    if traits.get("fs_gid") is not None:
        psc["fsGroup"] = int(traits["fs_gid"])
    if traits.get("supplemental_gids"):
        psc["supplementalGroups"] = [int(g) for g in traits["supplemental_gids"]]
    psc.update(traits.get("pod_security_context") or {})
    csc: dict[str, Any] = {}
    if traits.get("uid") is not None:
        csc["runAsUser"] = int(traits["uid"])
    if traits.get("gid") is not None:
        csc["runAsGroup"] = int(traits["gid"])
    if traits.get("privileged"):
        csc["privileged"] = True
    if traits.get("allow_privilege_escalation") is not None:
        csc["allowPrivilegeEscalation"] = traits["allow_privilege_escalation"]
    csc.update(traits.get("container_security_context") or {})
    notebook = {"name": "notebook", "ports": [{"name": "notebook-port", "containerPort": 8888}],
                "lifecycle": copy.deepcopy(traits.get("lifecycle_hooks") or {}), "securityContext": csc}
    notebook = _update_model(notebook, traits.get("extra_container_config") or {})
    spec: dict[str, Any] = {"securityContext": psc, "containers": [notebook, *_as_list(traits.get("extra_containers"))],
                            "initContainers": _as_list(traits.get("init_containers")),
                            "volumes": list(traits.get("volumes") or [])}
    spec = _update_model(spec, traits.get("extra_pod_config") or {})
    return _pod(copy.deepcopy(spec), traits.get("extra_annotations"))


def z2jh_user_pods(values: dict[str, Any]) -> list[ChartPod]:
    """One user pod per singleuser.profileList entry (and per profile_options choice), or one without
    profiles: the traits of _spawner_traits with the profile's kubespawner_override applied, then make_pod."""
    base = _spawner_traits(values)
    profiles = dig(values, "singleuser.profileList", []) or [{"slug": "default", "kubespawner_override": {}}]
    out = []
    for profile in profiles:
        slug = profile.get("slug") or profile.get("display_name")
        variants = [("", {})]
        for option, option_spec in (profile.get("profile_options") or {}).items():
            variants += [(f" option {option}={choice}", c.get("kubespawner_override") or {})
                         for choice, c in (option_spec.get("choices") or {}).items()]
        for suffix, choice_override in variants:
            traits = copy.deepcopy(base)
            _apply_override(traits, profile.get("kubespawner_override") or {})
            _apply_override(traits, choice_override)
            out.append(ChartPod(f"user pod (profile {slug}{suffix})", make_user_pod(traits)))
    return out


def jupyterhub(values: dict[str, Any], version: str) -> list[ChartPod]:
    return [*z2jh_hub(values), *z2jh_proxy(values), *z2jh_scheduling(values), *z2jh_image_pullers(values),
            *z2jh_user_pods(values)]


# ---- GPU: device plugin, dcgm-exporter, GPU Operator --------------------------------------------

def _host_path(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path}}


def nvidia_device_plugin(values: dict[str, Any], version: str) -> list[ChartPod]:
    """NVIDIA/k8s-device-plugin deployments/helm/nvidia-device-plugin (tags v0.16.2 .. v0.19.3):
    templates/daemonset-device-plugin.yml (podSecurityContext; container nvidia-device-plugin-ctr, plus
    the config init/sidecar containers when a config map is named, all with the securityContext of
    _helpers.tpl `nvidia-device-plugin.securityContext`: .Values.securityContext if set, else privileged
    with compatWithCPUManager, else SYS_ADMIN when a MIG strategy is not none, else drop ALL; hostPath
    volumes device-plugin, mps-root, mps-shm, cdi-root, driver-root) and templates/daemonset-gfd.yml
    (gfd.enabled; hostPath features.d, /sys, driver root). node-feature-discovery (nfd.enabled) is a
    subchart whose worker mounts host paths (kubernetes-sigs/node-feature-discovery
    deployment/helm/node-feature-discovery/templates/worker.yaml)."""
    if values.get("securityContext"):
        csc = values["securityContext"]
    elif values.get("compatWithCPUManager"):
        csc = {"privileged": True}
    elif values.get("migStrategy") not in (None, "none"):
        csc = {"capabilities": {"add": ["SYS_ADMIN"]}}
    else:
        csc = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    has_config = bool(dig(values, "config.name") or dig(values, "config.map"))
    config_containers = [_container("nvidia-device-plugin-sidecar", csc)] if has_config else []
    volumes = [_host_path("device-plugin", "/var/lib/kubelet/device-plugins"),
               _host_path("mps-root", dig(values, "mps.root", "/run/nvidia/mps")),
               _host_path("mps-shm", f"{dig(values, 'mps.root', '/run/nvidia/mps')}/shm"),
               _host_path("cdi-root", "/var/run/cdi")]
    spec = {"securityContext": copy.deepcopy(values.get("podSecurityContext") or {}),
            "initContainers": [_container("nvidia-device-plugin-init")] if has_config else [],
            "containers": [*config_containers, _container("nvidia-device-plugin-ctr", csc)], "volumes": volumes}
    out = [ChartPod("DaemonSet/nvidia-device-plugin", _pod(spec))]
    if dig(values, "gfd.enabled"):
        gfd = {"containers": [_container("gpu-feature-discovery-ctr", dig(values, "gfd.securityContext") or csc)],
               "volumes": [_host_path("output-dir", "/etc/kubernetes/node-feature-discovery/features.d"),
                           _host_path("host-sys", "/sys")]}
        out.append(ChartPod("DaemonSet/gpu-feature-discovery", _pod(gfd)))
    if dig(values, "nfd.enabled"):
        out += _nfd_pods()
    return out


def _nfd_pods() -> list[ChartPod]:
    """node-feature-discovery subchart: the worker DaemonSet mounts /boot, /etc/os-release, /sys,
    /usr/lib, /lib and the features.d directory read-only from the host (templates/worker.yaml); the
    master runs without host access (templates/master.yaml)."""
    worker = {"containers": [_container("worker", {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                                   "capabilities": {"drop": ["ALL"]}})],
              "volumes": [_host_path("host-boot", "/boot"), _host_path("host-sys", "/sys"),
                          _host_path("features-d", "/etc/kubernetes/node-feature-discovery/features.d")]}
    master = {"containers": [_container("master", {"allowPrivilegeEscalation": False,
                                                   "capabilities": {"drop": ["ALL"]}})]}
    return [ChartPod("DaemonSet/node-feature-discovery-worker", _pod(worker)),
            ChartPod("Deployment/node-feature-discovery-master", _pod(master))]


def dcgm_exporter(values: dict[str, Any], version: str) -> list[ChartPod]:
    """NVIDIA/dcgm-exporter deployment/templates/daemonset.yaml (tags 3.3.7-3.5.0 .. 4.5.3-4.8.2):
    hostNetwork from values, podSecurityContext, container exporter with .Values.securityContext (default
    runAsUser 0, SYS_ADMIN), hostPath pod-gpu-resources at .Values.kubeletPath, extraHostVolumes as hostPath,
    initContainers and extraVolumes as given."""
    volumes = [_host_path("pod-gpu-resources", values.get("kubeletPath", "/var/lib/kubelet/pod-resources"))]
    volumes += [_host_path(v["name"], v["hostPath"]) for v in values.get("extraHostVolumes") or []]
    volumes += copy.deepcopy(values.get("extraVolumes") or [])
    spec = {"hostNetwork": bool(values.get("hostNetwork")),
            "securityContext": copy.deepcopy(values.get("podSecurityContext") or {}),
            "initContainers": copy.deepcopy(values.get("initContainers") or []),
            "containers": [_container("exporter", values.get("securityContext"))], "volumes": volumes}
    return [ChartPod("DaemonSet/dcgm-exporter", _pod(spec))]


# GPU Operator operands (NVIDIA/gpu-operator assets/<state>/*_daemonset.yaml at v24.6.2 .. v26.3.3): the
# values key that enables each, and whether its DaemonSet shares the host PID namespace. Every one of
# them runs a privileged container and mounts host paths.
_GPU_OPERANDS = (("driver", "nvidia-driver-daemonset", True), ("toolkit", "nvidia-container-toolkit-daemonset", True),
                 ("devicePlugin", "nvidia-device-plugin-daemonset", False),
                 ("dcgmExporter", "nvidia-dcgm-exporter", False), ("dcgm", "nvidia-dcgm", False),
                 ("gfd", "gpu-feature-discovery", False), ("migManager", "nvidia-mig-manager", True),
                 ("nodeStatusExporter", "nvidia-node-status-exporter", False))


def gpu_operator(values: dict[str, Any], version: str) -> list[ChartPod]:
    """NVIDIA/gpu-operator: the operator Deployment (deployments/gpu-operator/templates/operator.yaml, no
    host access) and the operands the operator itself creates from assets/ (state-driver,
    state-container-toolkit, state-device-plugin, state-dcgm-exporter, gpu-feature-discovery,
    state-mig-manager, state-node-status-exporter, and the always-present state-operator-validation),
    each a DaemonSet with privileged containers and hostPath volumes; node-feature-discovery subchart when
    nfd.enabled. Sandbox (VM passthrough) operands are not modelled. All of this runs in the operator's
    namespace, which must be privileged."""
    if dig(values, "sandboxWorkloads.enabled"):
        raise NotModelled("gpu-operator sandboxWorkloads (state-sandbox-*, vfio/vgpu managers)")
    operator = {"containers": [_container("gpu-operator", {"allowPrivilegeEscalation": False,
                                                           "capabilities": {"drop": ["ALL"]}})]}
    out = [ChartPod("Deployment/gpu-operator", _pod(operator))]
    operands = [(name, host_pid) for key, name, host_pid in _GPU_OPERANDS if dig(values, f"{key}.enabled")]
    operands.append(("nvidia-operator-validator", False))
    for name, host_pid in operands:
        spec = {"hostPID": host_pid, "containers": [_container(name, {"privileged": True})],
                "volumes": [_host_path("run-nvidia", "/run/nvidia")]}
        out.append(ChartPod(f"DaemonSet/{name}", _pod(spec)))
    if dig(values, "nfd.enabled"):
        out += _nfd_pods()
    return out


# ---- storage, networking, metrics ---------------------------------------------------------------

def csi_driver_nfs(values: dict[str, Any], version: str) -> list[ChartPod]:
    """kubernetes-csi/csi-driver-nfs charts/<tag>/csi-driver-nfs/templates/csi-nfs-controller.yaml and
    csi-nfs-node.yaml (v4.8.0, v4.11.0, v4.12.1, v4.13.0): both set hostNetwork: true ("nfs connection
    would be broken without hostNetwork"), their `nfs` container is privileged with SYS_ADMIN and
    allowPrivilegeEscalation, and they mount kubelet directories by hostPath."""
    nfs = _container("nfs", {"privileged": True, "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
                             "allowPrivilegeEscalation": True})
    controller = {"hostNetwork": True, "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                  "containers": [_container("csi-provisioner", {"capabilities": {"drop": ["ALL"]}}), nfs],
                  "volumes": [_host_path("pods-mount-dir", f"{values.get('kubeletDir', '/var/lib/kubelet')}/pods")]}
    node = {"hostNetwork": True, "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [_container("node-driver-registrar", {"capabilities": {"drop": ["ALL"]}}),
                           copy.deepcopy(nfs)],
            "volumes": [_host_path("socket-dir", "/var/lib/kubelet/plugins/csi-nfsplugin"),
                        _host_path("registration-dir", "/var/lib/kubelet/plugins_registry")]}
    return [ChartPod("Deployment/csi-nfs-controller", _pod(controller)), ChartPod("DaemonSet/csi-nfs-node", _pod(node))]


def metallb(values: dict[str, Any], version: str) -> list[ChartPod]:
    """metallb/metallb charts/metallb/templates/controller.yaml and speaker.yaml (v0.14.8, v0.14.9, v0.15.3):
    the controller takes controller.securityContext on the pod and drops ALL without escalation; the
    speaker has hostNetwork: true and its container adds NET_RAW. The FRR mode's containers
    (speaker.frr.enabled) are not modelled."""
    if dig(values, "speaker.frr.enabled"):
        raise NotModelled("metallb speaker.frr.enabled (frr, reloader and metrics containers)")
    controller = {"securityContext": copy.deepcopy(dig(values, "controller.securityContext", {})),
                  "containers": [_container("controller", {"allowPrivilegeEscalation": False,
                                                           "readOnlyRootFilesystem": True,
                                                           "capabilities": {"drop": ["ALL"]}})]}
    out = [ChartPod("Deployment/metallb-controller", _pod(controller))]
    if dig(values, "speaker.enabled", True):
        speaker = {"hostNetwork": True, "securityContext": copy.deepcopy(dig(values, "speaker.securityContext", {})),
                   "containers": [_container("speaker", {
                       "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                       "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}})]}
        out.append(ChartPod("DaemonSet/metallb-speaker", _pod(speaker)))
    return out


def metrics_server(values: dict[str, Any], version: str) -> list[ChartPod]:
    """kubernetes-sigs/metrics-server charts/metrics-server/templates/deployment.yaml (metrics-server-helm-chart
    3.12.1 .. 3.13.0): podSecurityContext, hostNetwork.enabled, container metrics-server with securityContext,
    an emptyDir tmp volume, extraVolumes, initContainers and extraContainers as given."""
    spec = {"hostNetwork": bool(dig(values, "hostNetwork.enabled")),
            "securityContext": copy.deepcopy(values.get("podSecurityContext") or {}),
            "initContainers": copy.deepcopy(values.get("initContainers") or []),
            "containers": [_container("metrics-server", values.get("securityContext")),
                           *copy.deepcopy(values.get("extraContainers") or [])],
            "volumes": [{"name": "tmp", "emptyDir": {}}, *copy.deepcopy(values.get("extraVolumes") or [])]}
    return [ChartPod("Deployment/metrics-server", _pod(spec))]


def kube_prometheus_stack(values: dict[str, Any], version: str) -> list[ChartPod]:
    """prometheus-community/helm-charts charts/kube-prometheus-stack (61.9.0 .. 82.18.0) and its subcharts:
    prometheus-node-exporter templates/daemonset.yaml (hostNetwork, hostPID from values, hostPath /proc,
    /sys and / when hostRootFsMount.enabled, pod securityContext, containerSecurityContext);
    prometheus-operator deployment.yaml (prometheusOperator.securityContext / containerSecurityContext);
    the operator-created Prometheus and Alertmanager pods (prometheusSpec / alertmanagerSpec
    securityContext on the pod); kube-state-metrics and grafana deployments (their securityContext and
    containerSecurityContext)."""
    out = []
    ne = values.get("prometheus-node-exporter") or {}
    if values.get("nodeExporter", {}).get("enabled", True):
        volumes = [_host_path("proc", "/proc"), _host_path("sys", "/sys")]
        if dig(ne, "hostRootFsMount.enabled", True):
            volumes.append(_host_path("root", "/"))
        spec = {"hostNetwork": ne.get("hostNetwork", True), "hostPID": ne.get("hostPID", True),
                "securityContext": copy.deepcopy(ne.get("securityContext") or {}),
                "containers": [_container("node-exporter", ne.get("containerSecurityContext"))], "volumes": volumes}
        out.append(ChartPod("DaemonSet/prometheus-node-exporter", _pod(spec)))
    po = values.get("prometheusOperator") or {}
    if po.get("enabled", True):
        spec = {"securityContext": copy.deepcopy(po.get("securityContext") or {}),
                "containers": [_container("kube-prometheus-stack", po.get("containerSecurityContext"))]}
        out.append(ChartPod("Deployment/prometheus-operator", _pod(spec)))
    for key, name in (("prometheus", "prometheusSpec"), ("alertmanager", "alertmanagerSpec")):
        if dig(values, f"{key}.enabled", True):
            spec = {"securityContext": copy.deepcopy(dig(values, f"{key}.{name}.securityContext", {})),
                    "containers": [_container(key, {"allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}})]}
            out.append(ChartPod(f"StatefulSet/{key}", _pod(spec)))
    for key in ("kube-state-metrics", "grafana"):
        sub = values.get(key) or {}
        if key == "kube-state-metrics" and not values.get("kubeStateMetrics", {}).get("enabled", True):
            continue
        if key == "grafana" and not sub.get("enabled", True):
            continue
        spec = {"securityContext": copy.deepcopy(sub.get("securityContext") or {}),
                "containers": [_container(key, sub.get("containerSecurityContext"))]}
        out.append(ChartPod(f"Deployment/{key}", _pod(spec)))
    return out


# ingress-nginx is not in ../shared/schemas: the defaults its model reads, identical at kubernetes/ingress-nginx
# charts/ingress-nginx/values.yaml tags helm-chart-4.11.3, 4.12.1, 4.14.0 and 4.14.1 (runAsGroup from 4.12).
_INGRESS_NGINX_DEFAULTS: dict[str, Any] = {"controller": {
    "kind": "Deployment", "hostNetwork": False, "hostPort": {"enabled": False, "ports": {"http": 80, "https": 443}},
    "containerSecurityContext": {}, "podSecurityContext": {}, "sysctls": {},
    "image": {"chroot": False, "runAsNonRoot": True, "runAsUser": 101, "allowPrivilegeEscalation": False,
              "seccompProfile": {"type": "RuntimeDefault"}, "readOnlyRootFilesystem": False},
    "admissionWebhooks": {"enabled": True, "patch": {"enabled": True, "securityContext": {}},
                          "certManager": {"enabled": False},
                          "createSecretJob": {"securityContext": {
                              "runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                              "seccompProfile": {"type": "RuntimeDefault"}, "capabilities": {"drop": ["ALL"]},
                              "readOnlyRootFilesystem": True}},
                          "patchWebhookJob": {"securityContext": {
                              "runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                              "seccompProfile": {"type": "RuntimeDefault"}, "capabilities": {"drop": ["ALL"]},
                              "readOnlyRootFilesystem": True}}},
    "extraInitContainers": [], "extraContainers": [], "extraVolumes": [], "extraModules": []},
    "defaultBackend": {"enabled": False}}


def ingress_nginx(values: dict[str, Any], version: str) -> list[ChartPod]:
    """kubernetes/ingress-nginx charts/ingress-nginx (helm-chart-4.11.3 .. 4.14.1): templates/controller-deployment.yaml
    (or controller-daemonset.yaml for kind DaemonSet): podSecurityContext and sysctls, hostNetwork,
    hostPort per port when controller.hostPort.enabled, the controller container with _helpers.tpl
    `ingress-nginx.controller.containerSecurityContext` (containerSecurityContext if set, else built from
    controller.image.*: drop ALL, add NET_BIND_SERVICE, + SYS_CHROOT and SYS_ADMIN with chroot),
    extraContainers, extraInitContainers, extraVolumes; admission-webhooks/job-patch/job-createSecret.yaml
    and job-patchWebhook.yaml (pod: patch.securityContext; containers: createSecretJob/patchWebhookJob
    .securityContext). The default backend and extraModules are not modelled."""
    c = values["controller"]
    if dig(values, "defaultBackend.enabled") or c.get("extraModules") or dig(c, "opentelemetry.enabled"):
        raise NotModelled("ingress-nginx defaultBackend / extraModules / opentelemetry")
    image = c.get("image") or {}
    csc = c.get("containerSecurityContext") or {
        "runAsNonRoot": image.get("runAsNonRoot"), "runAsUser": image.get("runAsUser"),
        "allowPrivilegeEscalation": bool(image.get("allowPrivilegeEscalation") or image.get("chroot")),
        **({"seccompProfile": image["seccompProfile"]} if image.get("seccompProfile") else {}),
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", *(
            (["SYS_ADMIN"] if image.get("seccompProfile") else []) + ["SYS_CHROOT"] if image.get("chroot") else [])]},
        "readOnlyRootFilesystem": image.get("readOnlyRootFilesystem")}
    ports = [{"name": name, "containerPort": port, **({"hostPort": dig(c, f"hostPort.ports.{name}", port)}
                                                      if dig(c, "hostPort.enabled") else {})}
             for name, port in (("http", 80), ("https", 443))]
    psc = copy.deepcopy(c.get("podSecurityContext") or {})
    if c.get("sysctls"):
        psc["sysctls"] = [{"name": k, "value": str(v)} for k, v in c["sysctls"].items()]
    spec = {"hostNetwork": bool(c.get("hostNetwork")), "securityContext": psc,
            "initContainers": copy.deepcopy(c.get("extraInitContainers") or []),
            "containers": [_container("controller", csc, ports=ports), *copy.deepcopy(c.get("extraContainers") or [])],
            "volumes": copy.deepcopy(c.get("extraVolumes") or [])}
    out = [ChartPod(f"{c.get('kind', 'Deployment')}/ingress-nginx-controller", _pod(spec))]
    hooks = c.get("admissionWebhooks") or {}
    if hooks.get("enabled") and dig(hooks, "patch.enabled") and not dig(hooks, "certManager.enabled"):
        for job, key in (("admission-create", "createSecretJob"), ("admission-patch", "patchWebhookJob")):
            spec = {"securityContext": copy.deepcopy(dig(hooks, "patch.securityContext", {})),
                    "containers": [_container(job.split("-")[1], dig(hooks, f"{key}.securityContext"))]}
            out.append(ChartPod(f"Job/ingress-nginx-{job}", _pod(spec)))
    return out


# ---- TLS and the maintained ingress controller (channels 26.03 on) -------------------------------

_CM_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
_CM_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True}
# ../shared/schemas lacks cert-manager v1.14.5, v1.16.1 and v1.19.4, which channels pin: the defaults the model
# reads, identical in cert-manager/cert-manager deploy/charts/cert-manager/values.yaml at v1.14.5, v1.16.1,
# v1.19.4 and v1.20.3 (securityContext, containerSecurityContext and their webhook/cainjector/startupapicheck twins).
_CERT_MANAGER_DEFAULTS: dict[str, Any] = {
    "securityContext": _CM_POD, "containerSecurityContext": _CM_CONTAINER, "volumes": [],
    **{part: {"enabled": True, "securityContext": _CM_POD, "containerSecurityContext": _CM_CONTAINER,
              "volumes": []} for part in ("webhook", "cainjector", "startupapicheck")}}
_CERT_MANAGER_DEFAULTS["webhook"]["hostNetwork"] = False


def cert_manager(values: dict[str, Any], version: str) -> list[ChartPod]:
    """cert-manager/cert-manager deploy/charts/cert-manager/templates/deployment.yaml, webhook-deployment.yaml
    (webhook.hostNetwork), cainjector-deployment.yaml (cainjector.enabled) and startupapicheck-job.yaml
    (startupapicheck.enabled), v1.14.5 .. v1.20.3: each pod takes <part>.securityContext and its one
    container <part>.containerSecurityContext, volumes as given. ACME HTTP-01 solver pods (created per
    challenge in the Certificate's namespace) do not arise: kfinstall's issuers are CA issuers."""
    out = [ChartPod("Deployment/cert-manager", _pod({
        "securityContext": copy.deepcopy(values.get("securityContext") or {}),
        "containers": [_container("cert-manager-controller", values.get("containerSecurityContext"))],
        "volumes": copy.deepcopy(values.get("volumes") or [])}))]
    for part, kind in (("webhook", "Deployment"), ("cainjector", "Deployment"), ("startupapicheck", "Job")):
        sub = values.get(part) or {}
        if part != "webhook" and not sub.get("enabled", True):
            continue
        spec = {"hostNetwork": bool(sub.get("hostNetwork")),
                "securityContext": copy.deepcopy(sub.get("securityContext") or {}),
                "containers": [_container(f"cert-manager-{part}", sub.get("containerSecurityContext"))],
                "volumes": copy.deepcopy(sub.get("volumes") or [])}
        out.append(ChartPod(f"{kind}/cert-manager-{part}", _pod(spec)))
    return out


def traefik(values: dict[str, Any], version: str) -> list[ChartPod]:
    """traefik/traefik-helm-chart traefik/templates/_podtemplate.tpl (v41.2.0, v41.3.0): hostNetwork, the pod
    securityContext podSecurityContext, container traefik with securityContext and a hostPort for every
    ports.<name>.hostPort, deployment.initContainers, deployment.additionalContainers, additionalVolumes;
    hostPath volumes for experimental local plugins of type hostPath."""
    ports = [{"name": name, "containerPort": port.get("port"), **({"hostPort": port["hostPort"]}
                                                                 if port.get("hostPort") else {})}
             for name, port in (values.get("ports") or {}).items() if isinstance(port, dict)]
    volumes = copy.deepcopy(values.get("additionalVolumes") or [])
    for name, plugin in (dig(values, "experimental.localPlugins", {}) or {}).items():
        if isinstance(plugin, dict) and (plugin.get("type") == "hostPath" or plugin.get("hostPath")):
            volumes.append(_host_path(name, plugin.get("hostPath") or plugin.get("moduleName", "")))
    spec = {"hostNetwork": bool(values.get("hostNetwork")),
            "securityContext": copy.deepcopy(values.get("podSecurityContext") or {}),
            "initContainers": copy.deepcopy(dig(values, "deployment.initContainers", [])),
            "containers": [_container("traefik", values.get("securityContext"), ports=ports),
                           *copy.deepcopy(dig(values, "deployment.additionalContainers", []))],
            "volumes": volumes}
    return [ChartPod(f"{dig(values, 'deployment.kind', 'Deployment')}/traefik", _pod(spec))]


# ---- pods a controller of the platform creates from a rendered object ---------------------------

def local_path_helper_pods(objects: list[dict[str, Any]]) -> list[ChartPod]:
    """local-path-provisioner's helper pod, one per volume create/delete: rancher/local-path-provisioner
    provisioner.go createHelperPod (v0.0.28, v0.0.31, v0.0.32) takes the ConfigMap's helperPod.yaml, adds
    a hostPath volume `data` (the volume's parent directory, DirectoryOrCreate) and a ConfigMap `script`
    volume, and creates it in the provisioner's own namespace (p.namespace, from POD_NAMESPACE)."""
    out = []
    for obj in objects:
        data = obj.get("data") or {}
        if obj.get("kind") != "ConfigMap" or "helperPod.yaml" not in data:
            continue
        pod = copy.deepcopy(yaml.safe_load(data["helperPod.yaml"]))
        spec = pod.setdefault("spec", {})
        spec["volumes"] = [*spec.get("volumes", []), {"name": "data", "hostPath": {"path": "<volume parent dir>",
                                                                                   "type": "DirectoryOrCreate"}},
                           {"name": "script", "configMap": {"name": obj["metadata"]["name"]}}]
        out.append(ChartPod(f"helper pod of ConfigMap/{obj['metadata']['name']}", pod,
                            obj["metadata"].get("namespace")))
    return out


# ---- registry -----------------------------------------------------------------------------------

EMBEDDED_DEFAULTS: dict[str, dict[str, Any]] = {"ingress-nginx": _INGRESS_NGINX_DEFAULTS,
                                                 "cert-manager": _CERT_MANAGER_DEFAULTS}
MODELS: dict[str, Callable[[dict[str, Any], str], list[ChartPod]]] = {
    "jupyterhub": jupyterhub,
    "nvidia-device-plugin": nvidia_device_plugin,
    "dcgm-exporter": dcgm_exporter,
    "gpu-operator": gpu_operator,
    "csi-driver-nfs": csi_driver_nfs,
    "metallb": metallb,
    "metrics-server": metrics_server,
    "kube-prometheus-stack": kube_prometheus_stack,
    "ingress-nginx": ingress_nginx,
    "cert-manager": cert_manager,
    "traefik": traefik,
}


def chart_pods(chart: str, version: str, values: dict[str, Any]) -> list[ChartPod]:
    """The pods `chart` at `version` creates with `values` (the release's recorded values)."""
    if chart not in MODELS:
        raise NotModelled(f"no model of the pods chart {chart} creates (tests/stacks/chartpods.py MODELS)")
    return MODELS[chart](merged_values(chart, version, values), version)
