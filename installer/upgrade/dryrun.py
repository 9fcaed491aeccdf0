"""`kfinstall upgrade --dry-run`, per host: the order, what each drain evicts, where each hop's backup goes
and its size, how long each hop takes, and how to roll it back (issue 15 item 8). Read-only.

- Order: the hosts of playbooks/upgrade.yml's plays, resolved by Ansible's own host patterns on the site's
  inventory (the play list below names the plays; their `hosts:` come from the playbook itself).
- Evictions: the pods on each node now, read from the cluster when it answers (kubectl through
  installer.adapters.kube), each with the fate `kubectl drain --ignore-daemonsets --delete-emptydir-data
  --force` gives it (installer.noderemove.classify_pod, shared with `node remove`); when the cluster does
  not answer, the reason is said and nothing is guessed.
- Backups: the folder each hop writes (installer.upgrade.run.backup_before) and its size: the site's config
  files and the Pulumi state measured now, the cluster parts (etcd snapshot, PKI, hub database) taken from
  the newest earlier backup's manifest, "unknown" when there is none.
- Duration: a rough planning figure from per-step costs (PER_STEP_S) and the drain's grace period, plus the
  upper bound every timeout allows. Real timings are in each run's record (STATE/runs/<id>/).
- Rollback: per hop kind. kubeadm does not downgrade (kubernetes.io "Upgrading kubeadm clusters",
  "Recovering from a failure state": `kubeadm upgrade` is idempotent and run again to finish a failed one),
  so a Kubernetes hop is finished forward or restored from its backup; a platform hop is rolled back by
  `kfinstall restore` of its backup and `kfinstall up --only platform` on the old channel.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from installer.config.resolved import ClusterConfig
from installer.errors import PreflightError
from installer.noderemove import DRAIN_SLACK_S, PodFate, classify_pod, find_node, node_name
from installer.upgrade.backup import CLUSTER_FILES, SITE_FOLDERS, hop_backup_folder, hub_db_skip_reason, pulumi_backend
from installer.upgrade.route import Hop, Route

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "upgrade.yml"
RUN_ID_SHOWN = "<run id>"  # the run's record folder is named when the run starts (installer.runs.RunRecord)
# playbooks/upgrade.yml's plays that change nodes, in run order, and what each does to a host.
KUBERNETES_PLAYS = (
    ("Upgrade the first control-plane host", "first control plane",
     "kubeadm upgrade plan and apply, drain, kubelet and kubectl, restart, wait Ready, uncordon"),
    ("Upgrade the other control-plane hosts", "control plane",
     "kubeadm upgrade node, drain, kubelet and kubectl, restart, wait Ready, uncordon"),
    ("Upgrade the workers one at a time", "worker",
     "kubeadm upgrade node, drain, kubelet and kubectl, restart, wait Ready, uncordon"),
)
RUNTIME_PLAY = "Change the node runtime one node at a time"
# Rough seconds per step, for planning a maintenance window (not a promise; the run record has the truth).
PER_STEP_S = {
    "facts-and-backup": 120,  # the facts play, the etcd snapshot and the copies before every hop
    "kubeadm-apply": 300,  # kubeadm upgrade plan + apply on the first control plane (static pods restart)
    "kubeadm-node": 60,  # kubeadm upgrade node
    "packages": 60,  # repository switch, kubeadm / kubelet / kubectl packages
    "drain-base": 30,  # a drain whose pods all leave at once
    "restart-ready": 60,  # kubelet restart until the node is Ready
    "containerd": 90,  # containerd package, configuration and restart
    "gpu-driver": 900,  # the driver branch and toolkit, then a reboot
    "platform": 300,  # the platform program (Pulumi) with its Helm releases
    "per-chart": 60,  # each chart the hop moves
}


@dataclass(frozen=True)
class HostStep:
    order: int
    host: str
    role: str
    does: str
    node: str | None = None
    pods: tuple[PodFate, ...] | None = None  # None: unknown (the cluster did not answer)

    def as_dict(self) -> dict[str, Any]:
        return {"order": self.order, "host": self.host, "role": self.role, "does": self.does, "node": self.node,
                "evictions": None if self.pods is None else [p.as_dict() for p in self.pods if _leaves(p)]}

    def evictions_text(self, grace: int) -> str:
        if self.pods is None:
            return "evictions unknown (see the cluster note)"
        leaving = [p for p in self.pods if _leaves(p)]
        if not leaving:
            return "nothing to evict"
        notebooks = [f"{p.namespace}/{p.name}" for p in leaving if p.notebook]
        unmanaged = [p for p in leaving if p.fate == "deleted-unmanaged" and not p.notebook]
        parts = [f"{len(leaving)} pod(s) leave"]
        if notebooks:
            parts.append(f"notebook server(s) stopped after {grace} s and not restarted: {', '.join(notebooks)}")
        if unmanaged:
            parts.append("deleted, no controller: " + ", ".join(f"{p.namespace}/{p.name}" for p in unmanaged))
        return "; ".join(parts)


def _leaves(pod: PodFate) -> bool:
    return not pod.fate.startswith("stays")


@dataclass(frozen=True)
class BackupPlan:
    folder: str
    items: dict[str, int | None]  # backup item -> bytes (None: unknown)
    sources: dict[str, str]  # item -> where the figure comes from
    skipped: dict[str, str]

    @property
    def known_bytes(self) -> int:
        return sum(v for v in self.items.values() if v is not None)

    def as_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "bytes": self.items, "knownBytes": self.known_bytes,
                "unknown": [k for k, v in self.items.items() if v is None], "sources": self.sources,
                "skipped": self.skipped}

    def text(self) -> str:
        unknown = [k for k, v in self.items.items() if v is None]
        size = f"about {_size(self.known_bytes)}" + (f" + {', '.join(unknown)} (unknown)" if unknown else "")
        skipped = f"; skipped: {', '.join(f'{k} ({v})' for k, v in self.skipped.items())}" if self.skipped else ""
        return f"{self.folder} ({size}{skipped})"


@dataclass(frozen=True)
class HopDetail:
    hop: Hop
    hosts: tuple[HostStep, ...]
    backup: BackupPlan
    estimate_s: int
    at_most_s: int
    rollback: tuple[str, ...]
    host_note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.hop.index, "key": self.hop.key, "hosts": [h.as_dict() for h in self.hosts],
                "hostNote": self.host_note, "backup": self.backup.as_dict(),
                "duration": {"estimateSeconds": self.estimate_s, "atMostSeconds": self.at_most_s},
                "rollback": list(self.rollback)}


@dataclass(frozen=True)
class ClusterView:
    """Nodes and the pods on each, or why they are unknown."""

    nodes: list[dict[str, Any]] | None
    pods_by_node: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    note: str | None = None


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _minutes(seconds: int) -> str:
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min" if seconds >= 3600 else f"{max(1, seconds // 60)} min"


# The cluster ---------------------------------------------------------------------------------------


def read_cluster(cfg: ClusterConfig) -> ClusterView:
    """Nodes and pods, read only; the reason when the cluster cannot be read (nothing is guessed)."""
    from installer.adapters.kube import KubectlFailed, site_kubectl

    try:
        kubectl = site_kubectl(cfg)
        nodes = list(kubectl.json("get", "nodes").get("items") or [])
        pods = list(kubectl.json("get", "pods", "--all-namespaces").get("items") or [])
    except PreflightError as exc:
        return ClusterView(None, note=exc.message)
    except (KubectlFailed, subprocess.TimeoutExpired, ValueError) as exc:
        return ClusterView(None, note=f"the cluster did not answer: {str(exc).splitlines()[0] if str(exc) else exc}")
    by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            by_node.setdefault(str(node), []).append(pod)
    return ClusterView(nodes, by_node)


# Order -----------------------------------------------------------------------------------------------


def play_hosts() -> dict[str, str]:
    """Play name -> its `hosts:` pattern, from playbooks/upgrade.yml itself."""
    plays = yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8"))
    return {str(play["name"]): str(play["hosts"]) for play in plays}


def _host_steps(cfg: ClusterConfig, hop: Hop, view: ClusterView, grace: int) -> tuple[HostStep, ...]:
    patterns = play_hosts()
    if hop.kind == "kubernetes":
        plays = [(patterns[name], role, does) for name, role, does in KUBERNETES_PLAYS]
    elif hop.node_changes:
        gpu = any(c.component == "nvidia-driver" for c in hop.node_changes)
        does = "drain, " + ", ".join(c.text() for c in hop.node_changes) + (
            " (GPU hosts reboot)" if gpu else "") + ", uncordon"
        plays = [(patterns[RUNTIME_PLAY], "node", does)]
    else:
        return ()
    steps: list[HostStep] = []
    by_name = {h.name: h for h in cfg.inventory.hosts}
    for pattern, role, does in plays:
        for name in cfg.inventory.pattern_hosts(pattern):
            if any(s.host == name for s in steps):
                continue
            node, pods = None, None
            if view.nodes is not None:
                found = find_node(view.nodes, by_name[name])
                node = node_name(found) if found is not None else None
                pods = tuple(classify_pod(p) for p in view.pods_by_node.get(node or "", []))
            steps.append(HostStep(len(steps) + 1, name, role, does, node, pods))
    return tuple(steps)


# Backups ---------------------------------------------------------------------------------------------


def _tree_bytes(path: Path) -> int:
    if path.is_file() and not path.is_symlink():
        return path.stat().st_size
    if not path.is_dir() or path.is_symlink():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _last_cluster_sizes(state_dir: Path) -> tuple[dict[str, int], str | None]:
    """Sizes of the cluster files in the newest earlier backup (by its manifest), and which one."""
    manifests = sorted((state_dir / "runs").glob("*/backup/*/manifest.json"), key=lambda p: p.stat().st_mtime)
    for manifest in reversed(manifests):
        try:
            files = json.loads(manifest.read_text(encoding="utf-8")).get("files") or []
            sizes = {str(f["path"]).removeprefix("cluster/"): int(f["size"]) for f in files
                     if isinstance(f, dict) and str(f.get("path", "")).startswith("cluster/")}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if sizes:
            return sizes, str(manifest.parent)
    return {}, None


def backup_plan(cfg: ClusterConfig, hop: Hop) -> BackupPlan:
    folder = str(hop_backup_folder(cfg.state_dir / "runs" / RUN_ID_SHOWN, hop.index, hop.kind))
    config = _tree_bytes(cfg.site / "kfinstall.yaml") + sum(_tree_bytes(cfg.site / f) for f in SITE_FOLDERS)
    config += _tree_bytes(cfg.inventory.path) if cfg.inventory.path else 0
    config += len(json.dumps(cfg.redacted(), indent=2).encode())
    items: dict[str, int | None] = {"resolved-config": config}
    sources = {"resolved-config": "measured now"}
    skipped: dict[str, str] = {}
    backend = pulumi_backend(cfg.state_dir)
    if backend.is_dir() and any(backend.iterdir()):
        items["pulumi-stack"] = _tree_bytes(backend)
        sources["pulumi-stack"] = "measured now (uncompressed; the archive is smaller)"
    else:
        skipped["pulumi-stack"] = "no Pulumi state yet"
    last, where = _last_cluster_sizes(cfg.state_dir)
    parts = {"etcd-snapshot": ("etcd-snapshot.db",), "pki-kubeadm-config": ("pki.tar.gz", "kubeadm-config.yaml"),
             "jupyterhub-db": ("jupyterhub.sqlite",)}
    assert {f for files in parts.values() for f in files} == set(CLUSTER_FILES)
    for item, files in parts.items():
        if item != "jupyterhub-db" and not cfg.profile.host_phase:
            skipped[item] = f"profile {cfg.spec.profile} has no hosts kfinstall manages"
            continue
        reason = hub_db_skip_reason(cfg) if item == "jupyterhub-db" else None
        if reason:
            skipped[item] = reason
            continue
        known = [last[f] for f in files if f in last]
        items[item] = sum(known) if len(known) == len(files) else None
        sources[item] = f"as in the last backup {where}" if items[item] is not None else "no earlier backup to go by"
    return BackupPlan(folder, items, sources, skipped)


# Duration ------------------------------------------------------------------------------------------------


def _drain_s(step: HostStep, grace: int) -> int:
    """A drain waits out the grace period when a pod that holds on to it (a notebook kernel) is there."""
    if step.pods is None:
        return PER_STEP_S["drain-base"] + grace
    slow = any(_leaves(p) for p in step.pods if p.fate != "deleted-finished")
    return PER_STEP_S["drain-base"] + (grace if slow else 0)


def duration(hop: Hop, hosts: tuple[HostStep, ...], grace: int, gpu_hosts: set[str]) -> tuple[int, int]:
    """(estimate, upper bound) in seconds for one hop."""
    cost = PER_STEP_S
    estimate = cost["facts-and-backup"]
    at_most = cost["facts-and-backup"]
    drain_timeout = max(600, grace + DRAIN_SLACK_S)  # the role's default (kube_upgrade_drain_timeout)
    ready_timeout = 300  # kube_upgrade_node_ready_timeout
    for step in hosts:
        drain = _drain_s(step, grace)
        if hop.kind == "kubernetes":
            upgrade = cost["kubeadm-apply"] if step.role == "first control plane" else cost["kubeadm-node"]
            work = cost["packages"] + upgrade
            estimate += work + drain + cost["restart-ready"]
            at_most += work + drain_timeout + ready_timeout
        else:
            work = cost["containerd"] + (cost["gpu-driver"] if step.host in gpu_hosts and "GPU" in step.does else 0)
            estimate += work + drain + cost["restart-ready"]
            at_most += work + drain_timeout + ready_timeout
    if hop.kind == "platform":
        charts = sum(1 for c in hop.changes if c.component.startswith("chart/"))
        estimate += cost["platform"] + charts * cost["per-chart"]
        at_most += 2 * (cost["platform"] + charts * cost["per-chart"])
    return estimate, at_most


# Rollback ------------------------------------------------------------------------------------------------


def rollback(cfg: ClusterConfig, hop: Hop, folder: str) -> tuple[str, ...]:
    site = str(cfg.site)
    if hop.kind == "kubernetes":
        return (
            "forward first: run the same `kfinstall upgrade` again; finished hops are skipped and kubeadm upgrade "
            "is idempotent (a failed `kubeadm upgrade apply` puts its static pod manifests back itself)",
            f"back to Kubernetes {hop.kubernetes_from}: kubeadm does not downgrade; restore the cluster from "
            f"{folder}/cluster/ (etcd-snapshot.db with `etcdutl snapshot restore` on each control plane, pki.tar.gz, "
            f"kubeadm-config.yaml) on hosts with the {hop.kubernetes_from} packages, then kfinstall's own state with "
            f"`kfinstall restore {folder} -i {site} --yes`",
        )
    steps = [
        f"`kfinstall restore {folder} -i {site} --yes` puts back kfinstall.yaml (channel {hop.from_channel}), the "
        f"inventory and the Pulumi state; then `kfinstall up -i {site} --only platform --yes` deploys channel "
        f"{hop.from_channel}'s charts again",
    ]
    if hop.migrations:
        steps.append(f"migrations ({', '.join(hop.migrations)}) are not undone by the restore: CRDs applied stay "
                     f"(they serve the old objects too); a JupyterHub database the new hub migrated comes back from "
                     f"{folder}/cluster/jupyterhub.sqlite (kubectl cp into the hub pod, stopped)")
    if hop.node_changes:
        steps.append("the node runtime (" + ", ".join(c.text() for c in hop.node_changes) + ") is not rolled back "
                     "by the restore: downgrade those packages by hand, one drained node at a time")
    return tuple(steps)


# The whole dry run -----------------------------------------------------------------------------------------


def hop_details(cfg: ClusterConfig, route: Route, grace: int,
                cluster: Callable[[ClusterConfig], ClusterView] | None = None) -> tuple[list[HopDetail], ClusterView]:
    view = (cluster or read_cluster)(cfg) if cfg.profile.host_phase else ClusterView(None, note=None)
    gpu_hosts = set(cfg.inventory.names("gpu")) if cfg.spec.gpu.enabled else set()
    details = []
    for hop in route.hops:
        hosts = _host_steps(cfg, hop, view, grace) if cfg.profile.host_phase else ()
        note = None if cfg.profile.host_phase else f"profile {cfg.spec.profile}: the provider upgrades the nodes"
        if cfg.profile.host_phase and not hosts:
            note = "no host changes: the platform program (Pulumi) only"
        plan = backup_plan(cfg, hop)
        estimate, at_most = duration(hop, hosts, grace, gpu_hosts)
        details.append(HopDetail(hop, hosts, plan, estimate, at_most, rollback(cfg, hop, plan.folder), note))
    return details, view


def detail_lines(detail: HopDetail, grace: int) -> list[str]:
    lines = []
    if detail.host_note:
        lines.append(f"    hosts: {detail.host_note}")
    for step in detail.hosts:
        node = f", node {step.node}" if step.node and step.node != step.host else ""
        lines.append(f"    host {step.order}. {step.host} ({step.role}{node}): {step.does}")
        lines.append(f"       evicts: {step.evictions_text(grace)}")
    lines.append(f"    backup to: {detail.backup.text()}")
    lines.append(f"    duration: about {_minutes(detail.estimate_s)} (at most {_minutes(detail.at_most_s)} "
                 "when every drain and wait runs to its timeout)")
    lines += [f"    rollback: {step}" for step in detail.rollback]
    return lines


def cluster_note(view: ClusterView) -> str | None:
    if view.note:
        return f"cluster not read, so evictions are unknown: {view.note}"
    return None
