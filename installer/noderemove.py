"""`kfinstall node remove HOST`: take one host out of a running site, in the order Kubernetes documents.

Order (kubeadm's "Remove the node": drain, then `kubeadm reset` on the node, then `kubectl delete
node`, so a kubelet still running cannot register the Node again):

1. cordon: no new pod lands on it;
2. drain: `--ignore-daemonsets` (their pods would come straight back), `--delete-emptydir-data`,
   `--force` (pods no controller owns, such as JupyterHub notebook servers, are deleted and not
   recreated: the user restarts the server from the hub; its files on the volume stay) and a grace
   period, so kernels get SIGTERM and that long to save before they are killed;
3. reset the host (installer.reset: kubeadm reset, which also removes a control plane's own etcd
   member, CNI and iptables state, kfinstall's files); skipped with --unreachable;
4. a control plane's etcd member is removed through a remaining control plane's etcd pod when it is
   still listed (always for an unreachable host, whose kubeadm reset cannot run);
5. delete the Node;
6. take the host out of hosts.yml (installer.config.hostsedit), or with --keep-inventory print the
   exact lines to delete.

Refused with exit 3 before anything changes, each with the safe path (decided from the inventory and
the config alone, plus which control planes are healthy when the cluster answers: Node Ready and etcd
pod not failing): the NFS server, the
last control plane, a control plane whose removal loses etcd quorum, a host whose removal leaves no
kube_node, a host serving a brick of the Gluster volume (its replica set would drop below the replica
count: replace-brick). Every step can be re-run: a failed run is finished by running the same command.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from installer.adapters.kube import ETCD_NAMESPACE, ETCD_SELECTOR, Kubectl, KubectlFailed, etcdctl_args
from installer.config.hostsedit import HostRemoval, write_host_removal
from installer.config.inventory import ROLE_GROUPS, Host
from installer.config.resolved import ClusterConfig
from installer.errors import ConfigError, Interrupted, KfinstallError, PhaseFailed, PreflightError

DEFAULT_GRACE_S = 120  # seconds a pod (a notebook kernel) gets between SIGTERM and SIGKILL
DRAIN_SLACK_S = 300  # drain's own --timeout beyond the grace period: evictions retried while a PDB blocks
NOTEBOOK_LABEL = ("component", "singleuser-server")  # KubeSpawner's label on JupyterHub user servers


# ---- refusals: from the inventory and the config ----------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    """Why the host may not be removed, and the safe way to get where the operator wants to go."""

    reason: str
    safe_path: str

    def text(self) -> str:
        return f"{self.reason}. Safe path: {self.safe_path}"

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "safePath": self.safe_path}


def quorum(members: int) -> int:
    """Members that must agree for etcd to commit anything, a membership change included: (n/2)+1."""
    return members // 2 + 1


def etcd_quorum_refusal(members: Sequence[str], removing: str, unhealthy: Collection[str]) -> Refusal | None:
    """Stacked etcd (kubeadm's default): one member per control plane. Removing `removing` must be
    committed by a quorum of today's members, and the members left must still form a quorum of the
    smaller cluster; `unhealthy` are the members that cannot vote (control planes not Ready)."""
    healthy = [m for m in members if m not in unhealthy]
    if len(healthy) < quorum(len(members)):
        return Refusal(
            f"etcd has no quorum now: {len(healthy)} of {len(members)} members healthy, {quorum(len(members))} "
            "needed, so no member can be removed",
            "bring the failed control planes back (or restore etcd from its snapshot: `kfinstall restore`) "
            "before changing membership")
    left = [m for m in healthy if m != removing]
    after = len(members) - 1
    if after and len(left) < quorum(after):
        down = ", ".join(sorted(set(members) & set(unhealthy))) or "none"
        return Refusal(
            f"removing {removing} leaves {after} etcd members of which {len(left)} healthy, but {quorum(after)} "
            f"are needed for quorum (unhealthy: {down}; a Node not Ready or its etcd pod failing)",
            f"remove the failed control plane first ({down}), or bring it back, then remove {removing}")
    return None


def inventory_refusals(cfg: ClusterConfig, host: Host, unreachable: bool = False) -> list[Refusal]:
    """What the inventory, the config and the state alone refuse (no cluster needed)."""
    refusals: list[Refusal] = [] if unreachable else never_converged(cfg, host)
    inv, storage = cfg.inventory, cfg.spec.storage
    if "nfs_server" in host.roles and storage.nfs.enabled:
        refusals.append(Refusal(
            f"{host.name} is the NFS server: it exports {storage.nfs.export_path}, which holds the platform's "
            "volumes (notebooks, models, metrics); every pod using them would lose its data",
            "kfinstall does not move an NFS server. To retire the whole site: `kfinstall backup --cluster`, "
            "`kfinstall down --purge-data`, `kfinstall reset`. To take the machine out for repair, "
            "`kubectl drain` it and keep it in hosts.yml"))
    control = inv.names("kube_control_plane")
    if "kube_control_plane" in host.roles and len(control) == 1:
        refusals.append(Refusal(
            f"{host.name} is the last control plane: the cluster's API server and etcd would be gone",
            "keep it; to retire the whole site: `kfinstall backup --cluster`, `kfinstall down --purge-data`, "
            "`kfinstall reset`"))
    workers = inv.names("kube_node")
    if "kube_node" in host.roles and workers == [host.name]:
        refusals.append(Refusal(
            f"{host.name} is the only kube_node: nothing would run the platform's workloads",
            "add the new worker first (hosts.yml, then `kfinstall up --limit NEW`), then remove this one"))
    if "gluster" in host.roles and storage.gluster.enabled:
        refusals.append(gluster_refusal(cfg, host))
    return refusals


def never_converged(cfg: ClusterConfig, host: Host) -> list[Refusal]:
    """A host kfinstall's host phase never ran to its end on (state.json, else the applied record; as `reset`
    refuses it): its kubelet was not set up by kfinstall, so the reset leaves it running and it registers
    the Node again right after the delete, back in the cluster though gone from hosts.yml."""
    from installer.reset import converged_hosts, reset_hosts

    if host.name in converged_hosts(cfg):
        return []
    if host.name in reset_hosts(cfg):
        # `kfinstall reset` (its worker warning names node remove) already ran there: the never-converged text
        # and its "up --limit first" would send the operator the wrong way.
        return [Refusal(
            f"{host.name} was reset by `kfinstall reset` since its last `kfinstall up`: no kubelet of kfinstall's "
            "is left there to drain or reset, only its Node object (NotReady) in the cluster",
            f"`kfinstall node remove {host.name} --unreachable` deletes the Node and takes {host.name} out of "
            "hosts.yml without reaching it (nothing is left on it to reset)")]
    return [Refusal(
        f"kfinstall never converged {host.name} (no `kfinstall up` of this site ran to its end on it; state in "
        f"{cfg.state_dir}): its reset would leave the kubelet someone else set up running, and the Node would "
        "come back right after it is deleted",
        f"run `kfinstall up --limit {host.name}` to its end first and then remove it, or take it out by hand: "
        f"`kubectl drain`, `kubeadm reset -f` on it, `kubectl delete node`, then delete it from hosts.yml; "
        "a machine that is gone: add --unreachable")]


def gluster_brick(cfg: ClusterConfig, address: str) -> str:
    """The brick the glusterfs role makes on a host (playbooks/roles/glusterfs/vars/main.yml:
    ADDRESS:BRICK_PATH, or ADDRESS:BRICK_PATH/brick when a brick device is mounted there)."""
    gluster = cfg.spec.storage.gluster
    folder = f"{gluster.brick_path}/brick" if gluster.brick_device else gluster.brick_path
    return f"{address}:{folder}"


def gluster_refusal(cfg: ClusterConfig, host: Host) -> Refusal:
    """Every gluster host holds one brick of a replica set of `replica` bricks: removing it leaves that
    set one copy short (below the replica count), and the host count off a multiple of it. The way out
    is gluster's replace-brick onto the new host (the only replace-brick form gluster accepts is
    `commit force`), then a full heal."""
    gluster = cfg.spec.storage.gluster
    members = cfg.inventory.names("gluster")
    address = gluster_address(cfg, host)
    volume = gluster.volume
    command = (f"gluster volume replace-brick {volume} {gluster_brick(cfg, address)} "
               f"{gluster_brick(cfg, 'NEW_ADDRESS')} commit force && gluster volume heal {volume} full")
    return Refusal(
        f"{host.name} serves a brick of the Gluster volume {volume} (replica {gluster.replica}, "
        f"{len(members)} gluster hosts): without it its replica set keeps {gluster.replica - 1} of "
        f"{gluster.replica} copies, below the volume's replica count",
        f"replace its brick first: in hosts.yml take {host.name} out of the gluster group and add the new host to "
        "it after the others (the first gluster host is where the pool is read), run `kfinstall up --limit NEW`, "
        f"then on a gluster host `{command}`, wait until "
        f"`gluster volume heal {volume} info` lists no entries, then `kfinstall node remove {host.name}`")


def gluster_address(cfg: ClusterConfig, host: Host) -> str:
    """The address the host's brick is named by: glusterfs_address when the inventory sets it, else
    the address ssh uses (the glusterfs role's host_address filter orders them so)."""
    manager = cfg.inventory.ansible
    if manager is not None:
        found = manager.get_host(host.name)
        value = found.get_vars().get("glusterfs_address") if found is not None else None
        if isinstance(value, str) and value:
            return value
    return host.address


# ---- what the cluster says ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PodFate:
    """One pod on the node and what the drain does to it (kubectl drain's filters)."""

    namespace: str
    name: str
    fate: str  # stays-daemonset | stays-static | deleted-finished | deleted-unmanaged | evicted
    owner: str | None
    empty_dir: bool
    notebook: bool

    def describe(self) -> str:
        texts = {
            "stays-daemonset": "stays (DaemonSet pod; gone with the node)",
            "stays-static": "stays (static pod; gone with kubeadm reset)",
            "deleted-finished": "deleted (finished)",
            "deleted-unmanaged": "deleted, not recreated (no controller)",
            "evicted": f"evicted, recreated elsewhere by {self.owner}",
        }
        text = texts[self.fate]
        if self.notebook:
            text += "; a notebook server: its kernel is stopped, the user starts it again from the hub"
        if self.empty_dir and self.fate.startswith(("evicted", "deleted")):
            text += "; its emptyDir data is lost"
        return f"{self.namespace}/{self.name}: {text}"

    def as_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "fate": self.fate, "owner": self.owner,
                "emptyDir": self.empty_dir, "notebook": self.notebook}


def classify_pod(pod: dict[str, Any]) -> PodFate:
    """What `kubectl drain --ignore-daemonsets --delete-emptydir-data --force` does to `pod`."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    controller = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
    owner = f"{controller.get('kind')}/{controller.get('name')}" if controller else None
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        fate = "stays-static"
    elif controller is not None and controller.get("kind") == "DaemonSet":
        fate = "stays-daemonset"
    elif status.get("phase") in ("Succeeded", "Failed"):
        fate = "deleted-finished"
    elif controller is None:
        fate = "deleted-unmanaged"
    else:
        fate = "evicted"
    labels = meta.get("labels") or {}
    return PodFate(
        namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")), fate=fate, owner=owner,
        empty_dir=any("emptyDir" in (volume or {}) for volume in spec.get("volumes") or []),
        notebook=labels.get(NOTEBOOK_LABEL[0]) == NOTEBOOK_LABEL[1])


def find_node(nodes: list[dict[str, Any]], host: Host) -> dict[str, Any] | None:
    """The Node of an inventory host: kubeadm registers the machine's lower-cased hostname, which may
    differ from the inventory name, so a Node whose addresses hold the host's address counts too."""
    by_name = [n for n in nodes if (n.get("metadata") or {}).get("name") == host.name.lower()]
    if by_name:
        return by_name[0]
    for node in nodes:
        addresses = {a.get("address") for a in (node.get("status") or {}).get("addresses") or []}
        if host.address in addresses:
            return node
    return None


def node_ready(node: dict[str, Any] | None) -> bool:
    conditions = (node or {}).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def etcd_pod_failing(etcd_pods: list[dict[str, Any]], node: str | None) -> bool:
    """Whether the etcd pod on `node` is there and says it is not serving: not Running (Pending, Failed), or
    Running with its Ready condition False (kubeadm's etcd has liveness and startup probes on /health, so a
    crash-looping or unhealthy member shows so). A Ready Node only says the kubelet answers, not etcd."""
    for pod in etcd_pods:
        if node is None or (pod.get("spec") or {}).get("nodeName") != node:
            continue
        status = pod.get("status") or {}
        ready = [c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") == "Ready"]
        return status.get("phase") != "Running" or any(c.get("status") == "False" for c in ready)
    return False


def node_name(node: dict[str, Any]) -> str | None:
    return k8s_name((node.get("metadata") or {}).get("name"))


# ---- the plan ---------------------------------------------------------------------------------------------

@dataclass
class Step:
    name: str
    what: str
    status: str = "pending"  # pending | done | skipped | failed
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "what": self.what, "status": self.status, "note": self.note}


@dataclass
class RemovalPlan:
    host: Host
    node: str | None
    pods: list[PodFate]
    cluster_note: str | None
    refusals: list[Refusal]
    warnings: list[str]
    steps: list[Step]
    inventory: HostRemoval
    keep_inventory: bool
    unreachable: bool
    grace_period: int
    result: str = "planned"
    follow_up: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host.name, "roles": list(self.host.roles), "node": self.node,
            "unreachable": self.unreachable, "gracePeriodSeconds": self.grace_period,
            "pods": [p.as_dict() for p in self.pods], "clusterNote": self.cluster_note,
            "refusals": [r.as_dict() for r in self.refusals], "warnings": list(self.warnings),
            "followUp": list(self.follow_up),
            "steps": [s.as_dict() for s in self.steps],
            "inventory": {**self.inventory.as_dict(), "keep": self.keep_inventory},
            "result": self.result,
        }

    def lines(self) -> list[str]:
        out = [f"node remove {self.host.name} (roles: {', '.join(self.host.roles) or 'none'}; "
               f"Node: {self.node or 'not in the cluster'})"]
        if self.cluster_note:
            out.append(f"  cluster: {self.cluster_note}")
        if self.pods:
            out.append(f"  pods on {self.node} ({len(self.pods)}):")
            out += [f"    {pod.describe()}" for pod in self.pods]
        out.append("  steps:")
        out += [f"    {n}. {s.what}" + (f" [{s.status}{': ' + s.note if s.note else ''}]" if s.status != "pending"
                                         else "") for n, s in enumerate(self.steps, start=1)]
        out += [f"  warning: {w}" for w in self.warnings]
        out += [f"  then: {f}" for f in self.follow_up]
        out += [f"  refused: {r.text()}" for r in self.refusals]
        return out


def drain_args(node: str, grace_period: int) -> list[str]:
    """kubectl drain as the upstream "Remove the node" runbook gives it, with a grace period and a timeout."""
    return ["drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
            f"--grace-period={grace_period}", f"--timeout={grace_period + DRAIN_SLACK_S}s"]


def plan_removal(cfg: ClusterConfig, host: Host, inventory_edit: HostRemoval, *, nodes: list[dict[str, Any]] | None,
                 pods: list[dict[str, Any]] | None, cluster_note: str | None = None, unreachable: bool = False,
                 keep_inventory: bool = False, grace_period: int = DEFAULT_GRACE_S,
                 etcd_pods: list[dict[str, Any]] | None = None) -> RemovalPlan:
    """The removal of `host` from what the inventory and (when it answered: `nodes`, `pods`) the cluster say."""
    refusals = inventory_refusals(cfg, host, unreachable)
    warnings: list[str] = []
    node = find_node(nodes or [], host) if nodes is not None else None
    control = cfg.inventory.in_role("kube_control_plane")
    is_control = "kube_control_plane" in host.roles
    if is_control and len(control) > 1:
        unhealthy = {h.name for h in control if nodes is not None and not node_ready(find_node(nodes, h))}
        unhealthy |= {h.name for h in control if nodes is not None and etcd_pod_failing(
            etcd_pods or [], node_name(find_node(nodes, h) or {}))}
        if unreachable:
            unhealthy.add(host.name)
        refusal = etcd_quorum_refusal([h.name for h in control], host.name, unhealthy)
        if refusal is not None:
            refusals.append(refusal)
        if (len(control) - 1) % 2 == 0:
            warnings.append(f"{len(control) - 1} control planes are left: etcd tolerates no failure until the "
                            "replacement joins, and `kfinstall plan`/`up` refuse an even number until you add it "
                            "to kube_control_plane in hosts.yml and run `kfinstall up --limit NEW`")
    if inventory_edit.host_vars:
        warnings.append(f"{', '.join(inventory_edit.host_vars)} stay (kfinstall leaves them alone)")
    if "gpu" in host.roles:
        warnings.append(f"{host.name} is a GPU host: its GPUs leave the cluster's capacity")
    warnings += _former_brick_warning(cfg, host)
    name = node_name(node) if node else None
    steps = _steps(host, name, is_control, unreachable, keep_inventory, inventory_edit, grace_period)
    return RemovalPlan(host=host, node=name, pods=[classify_pod(p) for p in pods or []], cluster_note=cluster_note,
                       refusals=refusals, warnings=warnings, steps=steps, inventory=inventory_edit,
                       keep_inventory=keep_inventory, unreachable=unreachable, grace_period=grace_period,
                       follow_up=storage_follow_up(cfg, host, keep_inventory) + _peer_detach(cfg, host))


def _former_brick_warning(cfg: ClusterConfig, host: Host) -> list[str]:
    """A host out of the gluster group now but one of its hosts at the last recorded host-phase run: the refusal
    (decided from hosts.yml) no longer applies, which is right only once its brick was replaced; kfinstall cannot
    see the volume's bricks without a host run, so the operator is told what to check."""
    from installer.limited import converged_roles

    gluster = cfg.spec.storage.gluster
    if not gluster.enabled or "gluster" in host.roles or host.name not in (
            (converged_roles(cfg) or {}).get("gluster") or []):
        return []
    brick = gluster_brick(cfg, gluster_address(cfg, host))
    return [f"{host.name} served the brick {brick} of the Gluster volume {gluster.volume} at the last recorded run: "
            f"go on only if `gluster volume info {gluster.volume}` no longer lists it (moved with `gluster volume "
            f"replace-brick` and healed); otherwise its replica set loses a copy"]


def _peer_detach(cfg: ClusterConfig, host: Host) -> list[str]:
    """A former brick host stays a (disconnected) peer of the trusted pool after its reset: the command that
    takes it out, run on a Gluster host that stays."""
    servers = cfg.inventory.names("gluster")
    if not _former_brick_warning(cfg, host) or not servers:
        return []
    return [f"on {servers[0]}: `gluster peer detach {gluster_address(cfg, host)}` (the trusted pool still lists "
            f"{host.name} as a peer; kfinstall never detaches peers)"]


def storage_follow_up(cfg: ClusterConfig, host: Host, keep_inventory: bool) -> list[str]:
    """The storage servers admit every cluster host's address (the NFS export's clients, where root is
    root on the export, and the Gluster volume's auth.allow): until they are converged again without the
    removed host, its address keeps that access. That run is the operator's next command, shown here."""
    storage = cfg.spec.storage
    servers = [h for h in cfg.inventory.names("nfs_server") if storage.nfs.enabled]
    servers += [h for h in cfg.inventory.names("gluster") if storage.gluster.enabled and h not in servers]
    servers = [h for h in servers if h != host.name]
    if not servers:
        return []
    file = cfg.inventory.path.name if cfg.inventory.path else "hosts.yml"
    first = f"after deleting {host.name}'s lines from {file}, " if keep_inventory else ""
    what = " and ".join(name for name, on in (("the NFS export", storage.nfs.enabled),
                                              ("the Gluster volume", storage.gluster.enabled)) if on)
    command = f"kfinstall up -i {shlex.quote(str(cfg.site))} --only hosts --limit {','.join(servers)} --yes"
    verb = "stop" if " and " in what else "stops"
    return [f"{first}`{command}`: {what} {verb} admitting {host.name}'s address {host.address} "
            "(until then it still may mount them)"]


def _steps(host: Host, node: str | None, is_control: bool, unreachable: bool, keep_inventory: bool,
           inventory_edit: HostRemoval, grace_period: int) -> list[Step]:
    missing = "(no Node in the cluster: skipped)"
    steps = [
        Step("cordon", f"kubectl cordon {node}" if node else f"cordon {missing}"),
        Step("drain", f"kubectl {' '.join(drain_args(node, grace_period))}" if node and not unreachable
             else "drain (skipped: " + ("host unreachable; its pods go when the Node is deleted)" if unreachable
                                        else "no Node)")),
        Step("reset", f"kfinstall reset of {host.name} (kubeadm reset, CNI and iptables state, kfinstall's files)"
             if not unreachable else f"reset of {host.name} (skipped: unreachable; run `kubeadm reset -f` on it "
             "before the machine is used again)"),
    ]
    if is_control:
        steps.append(Step("etcd-member", f"etcd member remove of {node or host.name} through a remaining control "
                          "plane's etcd pod, when it is still listed"))
    steps.append(Step("delete-node", f"kubectl delete node {node}" if node else f"delete the Node {missing}"))
    file = inventory_edit.path.name
    steps.append(Step("inventory", f"remove {host.name} from {file} ({len(inventory_edit.entries)} entr"
                      f"{'y' if len(inventory_edit.entries) == 1 else 'ies'}, comments kept)" if not keep_inventory
                      else f"print the lines of {file} to delete (--keep-inventory)"))
    return steps


# ---- running it ----------------------------------------------------------------------------------------------

ResetHost = Callable[[ClusterConfig, str], Any]


@dataclass
class Runner:
    """Runs a plan's steps in order; kubectl through `kubectl`, the host reset through `reset_host`."""

    cfg: ClusterConfig
    kubectl: Kubectl | None
    reset_host: ResetHost
    say: Callable[[str], None]
    done: list[str] = field(default_factory=list)

    def run(self, plan: RemovalPlan) -> RemovalPlan:
        actions = {"cordon": self._cordon, "drain": self._drain, "reset": self._reset,
                   "etcd-member": self._etcd_member, "delete-node": self._delete_node, "inventory": self._inventory}
        for step in plan.steps:
            self.say(f"{step.name}: {step.what}")
            try:
                note = actions[step.name](plan)
            except (KubectlFailed, KfinstallError, subprocess.TimeoutExpired, OSError) as exc:
                step.status, step.note = "failed", _said(exc)
                plan.result = "failed"
                error = PhaseFailed(
                    f"node remove {plan.host.name} stopped at '{step.name}': {step.note}. Done before it: "
                    f"{', '.join(self.done) or 'nothing'}. Fix the cause and run the same command again: "
                    "every step is safe to repeat")
                if isinstance(exc, Interrupted):  # stopped by a signal: its own exit code, the plan so far
                    exc.report = plan
                    raise
                error.report = plan
                raise error from None
            step.status, step.note = ("skipped", note) if note and note.startswith("skipped") else ("done", note or "")
            self.done.append(step.name)
        _forget_converged(self.cfg, plan.host.name)
        plan.result = "removed"
        return plan

    def _kubectl(self) -> Kubectl:
        if self.kubectl is None:
            raise PreflightError("no cluster reachable")
        return self.kubectl

    def _cordon(self, plan: RemovalPlan) -> str | None:
        if plan.node is None:
            return "skipped: no Node"
        self._kubectl().run("cordon", plan.node)
        return None

    def _drain(self, plan: RemovalPlan) -> str | None:
        if plan.node is None or plan.unreachable:
            return "skipped"
        kubectl = replace(self._kubectl(), timeout_s=float(plan.grace_period + DRAIN_SLACK_S + 60))
        kubectl.run(*drain_args(plan.node, plan.grace_period))
        return None

    def _reset(self, plan: RemovalPlan) -> str | None:
        if plan.unreachable:
            return "skipped: unreachable"
        self.reset_host(self.cfg, plan.host.name)
        return None

    def _etcd_member(self, plan: RemovalPlan) -> str | None:
        kubectl = self._kubectl()
        member_name = plan.node or plan.host.name.lower()
        pod = etcd_pod_elsewhere(kubectl.json("get", "pods", "-n", ETCD_NAMESPACE, "-l", ETCD_SELECTOR), member_name)
        if pod is None:
            raise PreflightError("no running etcd pod on another control plane to remove the member through")
        # etcdctl's own -w json (kubectl's -o json would be taken by kubectl exec itself).
        listed = _json(kubectl.run(*etcdctl_args(pod, "member", "list", "-w", "json")))
        member = etcd_member_id(listed, member_name, plan.host.address)
        if member is None:
            return "skipped: not an etcd member (kubeadm reset removed it)"
        kubectl.run(*etcdctl_args(pod, "member", "remove", member))
        return f"removed member {member} through {pod}"

    def _delete_node(self, plan: RemovalPlan) -> str | None:
        if plan.node is None:
            return "skipped: no Node"
        self._kubectl().run("delete", "node", plan.node, "--ignore-not-found")
        return None

    def _inventory(self, plan: RemovalPlan) -> str | None:
        if plan.keep_inventory:
            return "skipped: --keep-inventory; delete by hand: " + "; ".join(plan.inventory.instructions())
        backup = write_host_removal(plan.inventory, self.cfg.state_dir)
        return f"the file as it was is kept in {backup}" if backup else None


def _forget_converged(cfg: ClusterConfig, host: str) -> None:
    """The host left the site: state.json's converged hosts (installer.limited.converged_roles) drop it, as
    reset does for the hosts it resets (here also with --unreachable, where no reset ran), so a machine later
    added under the same name is a new host to `plan`/`up --limit`, to reset's refusal and to the NFS check."""
    from installer.limited import converged_roles
    from installer.state import State, read_state, write_state

    state = read_state(cfg.state_dir) or State(cluster=cfg.name)
    # A state older than host_roles has the converged hosts only in the applied record, which stays: start from it.
    before = converged_roles(cfg) or {}
    if not any(host in hosts for hosts in before.values()):
        return
    state.host_roles = {role: [h for h in hosts if h != host] for role, hosts in before.items()}
    write_state(cfg.state_dir, state)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise PreflightError("etcdctl printed no JSON member list") from None


def _said(exc: BaseException) -> str:
    if isinstance(exc, KubectlFailed):
        return f"{exc.command}: {exc.said}"
    if isinstance(exc, KfinstallError):
        return exc.message
    return str(exc) or exc.__class__.__name__


def etcd_pod_elsewhere(pods: Any, member_name: str) -> str | None:
    """A Running etcd pod that is not on the node being removed."""
    for pod in items(pods):
        if (pod.get("spec") or {}).get("nodeName") == member_name:
            continue
        name = k8s_name((pod.get("metadata") or {}).get("name"))
        if name and (pod.get("status") or {}).get("phase") == "Running":
            return name
    return None


def etcd_member_id(listed: Any, name: str, address: str) -> str | None:
    """The hex ID `etcdctl member remove` takes, of the member named `name` (kubeadm names members
    after their node) or peering from `address`. `member list -w json` prints IDs as decimal numbers."""
    for member in items(listed, "members"):
        peers = member.get("peerURLs")
        peering = isinstance(peers, list) and any(isinstance(p, str) and f"//{address}:" in p for p in peers)
        ident = member.get("ID")
        if (member.get("name") == name or peering) and isinstance(ident, int) and ident > 0:
            return format(ident, "x")
    return None


def items(document: Any, key: str = "items") -> list[dict[str, Any]]:
    """The objects of a list answer (`kubectl get -o json`, `etcdctl -w json`); anything else is none."""
    found = document.get(key) if isinstance(document, dict) else None
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def k8s_name(value: Any) -> str | None:
    """`value` when it is an object name as Kubernetes allows them (a DNS subdomain), else None: names the
    API returns reach kubectl's argv, where one starting with '-' would be read as an option."""
    return value if isinstance(value, str) and _K8S_NAME.fullmatch(value) else None


def check_host(cfg: ClusterConfig, name: str) -> Host:
    """The inventory host called `name`; ConfigError (exit 2) naming the hosts there are."""
    if not cfg.profile.host_phase:
        raise ConfigError(f"profile {cfg.spec.profile} has no hosts of kfinstall's: its nodes are the cloud's "
                          "(change the node pool there)")
    for host in cfg.inventory.hosts:
        if host.name == name and not set(host.roles) & set(ROLE_GROUPS):
            # A bastion or another tool's host (left alone): nothing of kfinstall's to drain or reset there.
            raise ConfigError(f"{name} is in none of kfinstall's role groups ({', '.join(ROLE_GROUPS)}; its groups: "
                              f"{', '.join(host.groups) or 'none'}), so kfinstall never managed it: delete it from "
                              f"{cfg.inventory.path} yourself if it should go")
        if host.name == name:
            return host
    names = ", ".join(h.name for h in cfg.inventory.hosts) or "(none)"
    raise ConfigError(f"no host {name!r} in {cfg.inventory.path}; its hosts are: {names}")


# ---- the command ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterFacts:
    kubectl: Kubectl | None
    nodes: list[dict[str, Any]] | None
    pods: list[dict[str, Any]] | None
    note: str | None  # why nodes/pods are unknown
    etcd_pods: list[dict[str, Any]] | None = None  # kubeadm's etcd static pods (read for a control plane)


def read_cluster(cfg: ClusterConfig, host: Host) -> ClusterFacts:
    """Nodes and the host's pods, read only; what is unknown and why when the cluster does not answer."""
    from installer.adapters.kube import site_kubectl

    try:
        kubectl = site_kubectl(cfg)
        nodes = items(kubectl.json("get", "nodes"))
        node = find_node(nodes, host)
        name = node_name(node) if node is not None else None
        pods = items(kubectl.json("get", "pods", "--all-namespaces", "--field-selector", f"spec.nodeName={name}")
                     ) if name else []
        etcd = items(kubectl.json("get", "pods", "-n", ETCD_NAMESPACE, "-l", ETCD_SELECTOR)
                     ) if "kube_control_plane" in host.roles else None
    except PreflightError as exc:
        return ClusterFacts(None, None, None, exc.message)
    except (KubectlFailed, subprocess.TimeoutExpired, ValueError) as exc:
        return ClusterFacts(None, None, None, f"the cluster did not answer ({_said(exc)})")
    return ClusterFacts(kubectl, nodes, pods, None, etcd)


def remove_node(cfg: ClusterConfig, name: str, *, keep_inventory: bool, unreachable: bool, grace_period: int,
                dry_run: bool, confirm: Callable[[str], bool] | None, say: Callable[[str], None],
                reset_host: ResetHost, cluster: Callable[[ClusterConfig, Host], ClusterFacts] = read_cluster,
                ) -> RemovalPlan:
    """Plan the removal, refuse (exit 3) or ask, then run it. Bad input is exit 2 before any host is touched."""
    from installer.config.hostsedit import plan_host_removal
    from installer.lock import run_lock

    if grace_period < 0:
        raise ConfigError(f"--grace-period {grace_period}: give the seconds a pod gets to stop (0 or more)")
    host = check_host(cfg, name)
    assert cfg.inventory.path is not None  # a host was found, so there is an inventory file
    edit = plan_host_removal(cfg.inventory.path, host.name)
    if not keep_inventory and not edit.editable:
        raise ConfigError(f"kfinstall cannot edit {cfg.inventory.path}: {edit.reason}. Fix: pass --keep-inventory "
                          "and delete these by hand afterwards: " + "; ".join(edit.instructions()))
    early = inventory_refusals(cfg, host, unreachable)
    facts = cluster(cfg, host) if not early else ClusterFacts(None, None, None, "not read (refused first)")
    plan = plan_removal(cfg, host, edit, nodes=facts.nodes, pods=facts.pods, cluster_note=facts.note,
                        unreachable=unreachable, keep_inventory=keep_inventory, grace_period=grace_period,
                        etcd_pods=facts.etcd_pods)
    if plan.refusals:
        plan.result = "refused"
        error = PreflightError(f"node remove {host.name} refused, nothing was changed: "
                               + " | ".join(r.text() for r in plan.refusals))
        error.report = plan
        raise error
    if dry_run:
        plan.result = "dry-run"
        return plan
    if facts.kubectl is None or facts.nodes is None:
        error = PreflightError(f"node remove {host.name} needs the cluster and it did not answer: {facts.note}. "
                               "Nothing was changed. If the cluster itself is gone, delete the host from hosts.yml "
                               f"and run `kfinstall reset --limit {host.name}`")
        error.report = plan
        raise error
    for line in plan.lines():
        say(line)
    if confirm is not None and not confirm(f"Remove {host.name} from {cfg.name} (steps above)?"):
        plan.result = "not-confirmed"
        error = PreflightError("not confirmed; nothing was changed")
        error.report = plan
        raise error
    with run_lock(cfg.state_dir, f"node remove {host.name}"):
        return Runner(cfg, facts.kubectl, reset_host, say).run(plan)
