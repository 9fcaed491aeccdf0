"""ClusterFacts: what the upgrade preflight judges, and the collector that gathers it from a live site.

The checks in installer.upgrade.preflight are pure functions over these objects, so every refusal
is tested without a cluster. The collector reads the cluster through kubectl with the site's
kubeconfig (installer.adapters.kube), and the hosts through playbooks/upgrade.yml's facts
play (cgroup version, containerd version, SystemdCgroup); when neither is reachable it refuses
with a PreflightError that says what is missing, and never guesses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer.adapters.kube import KubectlFailed, site_kubectl
from installer.config.resolved import ClusterConfig
from installer.errors import PreflightError
from installer.upgrade.migrations import z2jh_allow_configured

Runner = Callable[[list[str]], str]


@dataclass(frozen=True)
class NodeFacts:
    name: str
    control_plane: bool
    ready: bool
    kubelet_version: str
    containerd_version: str | None = None
    cgroup_version: int | None = None
    systemd_cgroup: bool | None = None


@dataclass(frozen=True)
class Z2jhSettings:
    """The JupyterHub settings the major-bump guard reads (from the values the hop will deploy)."""

    slug_scheme: str | None
    allow_configured: bool
    storage_type: str = "dynamic"


@dataclass(frozen=True)
class ClusterFacts:
    nodes: tuple[NodeFacts, ...]
    apiserver_versions: tuple[str, ...]
    crd_objects: Mapping[str, int] = field(default_factory=dict)
    """Guarded CRD name -> number of objects on the cluster (absent: the CRD does not exist)."""
    z2jh: Z2jhSettings | None = None
    gpu_operator_version: str | None = None
    unhealthy: tuple[str, ...] = ()
    """Control-plane or system pods that are not running, one line each."""


def z2jh_settings(values: Mapping[str, Any]) -> Z2jhSettings:
    """The guard's view of chart values (spec.components.jupyterhub.values merged over kfinstall's)."""
    config = (values.get("hub") or {}).get("config") or {}
    spawner = config.get("KubeSpawner") or {}
    storage = (values.get("singleuser") or {}).get("storage") or {}
    return Z2jhSettings(
        slug_scheme=spawner.get("slug_scheme"),
        allow_configured=z2jh_allow_configured(values),
        storage_type=str(storage.get("type") or "dynamic"),
    )


# Parsing kubectl's JSON (pure, tested with recorded documents) ---------------------------------------


def nodes_from_json(doc: Mapping[str, Any]) -> list[NodeFacts]:
    nodes = []
    for item in doc.get("items", []):
        meta, status = item.get("metadata", {}), item.get("status", {})
        labels = meta.get("labels") or {}
        info = status.get("nodeInfo") or {}
        runtime = str(info.get("containerRuntimeVersion") or "")
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
        nodes.append(
            NodeFacts(
                name=meta.get("name", "?"),
                control_plane="node-role.kubernetes.io/control-plane" in labels,
                ready=ready,
                kubelet_version=str(info.get("kubeletVersion") or ""),
                containerd_version=runtime.removeprefix("containerd://")
                if runtime.startswith("containerd://")
                else None,
            )
        )
    return nodes


def apiserver_versions_from_pods(doc: Mapping[str, Any]) -> list[str]:
    """The kube-apiserver static pods' image tags (one per control-plane host)."""
    versions = []
    for item in doc.get("items", []):
        for container in item.get("spec", {}).get("containers", []):
            image = str(container.get("image", ""))
            if "kube-apiserver" in image and ":" in image:
                versions.append(image.rsplit(":", 1)[1])
    return versions


def unhealthy_from_pods(doc: Mapping[str, Any]) -> list[str]:
    bad = []
    for item in doc.get("items", []):
        meta, status = item.get("metadata", {}), item.get("status", {})
        phase = status.get("phase")
        waiting = [
            s.get("state", {}).get("waiting", {}).get("reason")
            for s in status.get("containerStatuses", [])
            if s.get("state", {}).get("waiting")
        ]
        if phase not in ("Running", "Succeeded") or waiting:
            reason = waiting[0] if waiting else phase
            bad.append(f"pod {meta.get('namespace')}/{meta.get('name')} is {reason}")
    return bad


def merge_host_facts(nodes: list[NodeFacts], hosts: Mapping[str, Mapping[str, Any]]) -> list[NodeFacts]:
    """Add what only the host knows (cgroup, SystemdCgroup, containerd binary) to each node by name."""
    out = []
    for node in nodes:
        host = hosts.get(node.name) or {}
        out.append(
            NodeFacts(
                name=node.name,
                control_plane=node.control_plane,
                ready=node.ready,
                kubelet_version=node.kubelet_version,
                containerd_version=host.get("containerd_version") or node.containerd_version,
                cgroup_version=host.get("cgroup_version"),
                systemd_cgroup=host.get("systemd_cgroup"),
            )
        )
    return out


# The collector --------------------------------------------------------------------------------------


def kubectl_runner(cfg: ClusterConfig) -> Runner:
    """kubectl against the site's cluster (installer.adapters.kube); PreflightError naming the command
    when it fails, and before any call when kubectl or the site's kubeconfig is missing."""
    kubectl = site_kubectl(cfg)

    def run(args: list[str]) -> str:
        try:
            return kubectl.run(*args)  # argv list, no shell, timeouts; a stop ends it
        except KubectlFailed as exc:
            raise PreflightError(f"no cluster reachable: {exc.command} failed: {exc.said}") from None

    return run


def collect_cluster_facts(
    run: Runner,
    guarded_crds: tuple[str, ...],
    host_facts: Mapping[str, Mapping[str, Any]],
    z2jh: Z2jhSettings | None,
) -> ClusterFacts:
    """Read nodes, apiservers, system pods, guarded CRDs and the GPU Operator through `run` (kubectl)."""
    nodes = nodes_from_json(json.loads(run(["get", "nodes", "-o", "json"])))
    apiservers = apiserver_versions_from_pods(
        json.loads(run(["get", "pods", "-n", "kube-system", "-l", "component=kube-apiserver", "-o", "json"]))
    )
    system = json.loads(run(["get", "pods", "-n", "kube-system", "-o", "json"]))
    existing = set(run(["get", "crd", "-o", "name"]).split())
    crd_objects: dict[str, int] = {}
    for crd in guarded_crds:
        if f"customresourcedefinition.apiextensions.k8s.io/{crd}" in existing:
            crd_objects[crd] = len(run(["get", crd, "-A", "-o", "name"]).split())
    return ClusterFacts(
        nodes=tuple(merge_host_facts(nodes, host_facts)),
        apiserver_versions=tuple(apiservers),
        crd_objects=crd_objects,
        z2jh=z2jh,
        gpu_operator_version=_gpu_operator_version(run),
        unhealthy=tuple(unhealthy_from_pods(system)),
    )


def _gpu_operator_version(run: Runner) -> str | None:
    out = run(
        [
            "get",
            "deployments",
            "-A",
            "-l",
            "app=gpu-operator",
            "-o",
            "jsonpath={.items[*].metadata.labels.app\\.kubernetes\\.io/version}",
        ]
    ).split()
    return out[0] if out else None


def read_host_facts(folder: Path) -> dict[str, dict[str, Any]]:
    """The per-host JSON files playbooks/upgrade.yml's facts play writes (host name -> facts)."""
    facts: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        facts[path.stem] = {
            "containerd_version": data.get("containerd_version") or None,
            "cgroup_version": 2 if data.get("cgroup_fs") == "cgroup2fs" else 1,
            "systemd_cgroup": bool(data.get("systemd_cgroup")),
        }
    return facts
