"""`kfinstall reset`: return hosts to their state before kfinstall (playbooks/reset.yml).

What is undone is derived, never listed a second time: the files from the record kfinstall.hosts.files
keeps on each host (/var/lib/kfinstall/record.json: every file it wrote, what a file held before, the
directories it created, the packages installed before kfinstall's first apt transaction), the services
and packages from the package table (roles/kf_defaults), and each role's own steps in its tasks/reset.yml
(kubeadm reset, the Gluster mount, the NFS export). Packages stay unless purge_packages, data directories
(the NFS export, the Gluster brick) unless purge_data.

Refused with exit 3 before any host is touched, unless no host kfinstall converged stays (the whole site
goes, so no one is left depending on it; a host already reset or not converged yet depends on nothing),
each with the safe path:
  * a control plane while other cluster hosts stay: kubeadm reset takes its API server and stacked etcd
    member away from them (`kfinstall node remove` removes the etcd member first);
  * the NFS server while Kubernetes nodes stay: they mount its export;
  * Gluster hosts when fewer than a majority of the replica would stay (the volume's client quorum,
    cluster.quorum-type auto, needs more than half of the replica set up; on a volume of several replica
    sets, whose sets the group's order stops showing once a brick is replaced, at most one set's spare may
    be down at a time), and any Gluster host with purge_data while the volume stays in use (that deletes
    one of its copies: use replace-brick).
A worker is reset with a warning: its Node object stays in the cluster until `kfinstall node remove`.

Other verbs call `reset_host` (`node remove` resets the host it removes, under its own lock and after
its own refusals and the cluster-side steps).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from installer.config.inventory import ROLE_GROUPS
from installer.config.resolved import ClusterConfig
from installer.errors import Interrupted, KfinstallError, PhaseFailed, PreflightError

RESET_PLAYBOOK = "reset.yml"


@dataclass(frozen=True)
class HostReset:
    """What reset does on one host: the plays of reset.yml that reach it and what it keeps."""

    host: str
    roles: tuple[str, ...]
    steps: tuple[str, ...]
    keeps: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "roles": list(self.roles), "steps": list(self.steps), "keeps": list(self.keeps)}


@dataclass(frozen=True)
class ResetPlan:
    """`kfinstall reset`'s dry run: per host what happens, what is refused and why. No SSH."""

    cluster: str
    hosts: tuple[str, ...]
    whole_site: bool
    purge_packages: bool
    purge_data: bool
    per_host: tuple[HostReset, ...]
    refusals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    already_reset: tuple[str, ...] = ()  # chosen, but reset since their last converge: left out

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "hosts": list(self.hosts),
            "wholeSite": self.whole_site,
            "purgePackages": self.purge_packages,
            "purgeData": self.purge_data,
            "perHost": [h.as_dict() for h in self.per_host],
            "refusals": list(self.refusals),
            "warnings": list(self.warnings),
            "alreadyReset": list(self.already_reset),
        }

    def lines(self) -> list[str]:
        scope = (f"the whole site ({len(self.hosts)} host(s); no converged host stays)" if self.whole_site
                 else f"{len(self.hosts)} host(s)")
        lines = [f"Reset of {self.cluster}: {scope}, back to their state before kfinstall"]
        for host in self.per_host:
            lines.append(f"  {host.host} ({', '.join(host.roles) or 'no role'}):")
            lines += [f"    - {step}" for step in host.steps]
            lines += [f"    keeps {keep}" for keep in host.keeps]
        if self.already_reset:
            lines.append(f"  already reset, nothing of kfinstall's to undo but the packages and data directories it "
                         f"keeps (--purge-packages, --purge-data) (left out): {', '.join(self.already_reset)}")
        if not self.hosts and not self.refusals:
            lines.append("nothing to do")
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"refused: {r}" for r in self.refusals]
        return lines


@dataclass
class ResetReport:
    """What a reset run did: per-host task counts, what each host kept, the run record."""

    run_id: str
    record: str
    plan: ResetPlan
    result: str = "ok"
    duration_s: float = 0.0
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"runId": self.run_id, "record": self.record, "result": self.result,
                "duration_s": round(self.duration_s, 2), "hosts": self.hosts, "skipped": self.skipped,
                "failures": self.failures, "plan": self.plan.as_dict()}

    def lines(self) -> list[str]:
        lines = [f"reset: {self.result} ({self.duration_s:.1f} s)"]
        for host, stats in sorted(self.hosts.items()):
            lines.append(f"  {host}: " + " ".join(f"{k}={v}" for k, v in stats.items()))
        lines += [f"  SKIPPED on {s['host']}: {s['step']}: {s['reason']}" for s in self.skipped]
        lines += [f"  FAILED on {f['host']}: task '{f['task']}': {f['message']}" for f in self.failures]
        lines.append(f"run record: {self.record}")
        return lines


# ---- the plan -------------------------------------------------------------------------------------------


def managed_hosts(cfg: ClusterConfig) -> tuple[str, ...]:
    return tuple(h.name for h in cfg.inventory.hosts if set(h.roles) & set(ROLE_GROUPS))


def plan_reset(cfg: ClusterConfig, limit: str | None = None, *, purge_packages: bool = False,
               purge_data: bool = False, leaving: bool = False) -> ResetPlan:
    """The hosts `limit` (an Ansible host pattern; None: every managed host) selects and what reset does
    on each. Bad input (a pattern matching no host, a profile without hosts) raises ConfigError (exit 2).

    `leaving`: the caller has already taken these hosts out of the cluster and the storage (node remove
    and its own refusals), so the refusals that protect the hosts staying are not applied here.
    """
    from installer.errors import ConfigError

    if not cfg.profile.host_phase:
        raise ConfigError(f"profile {cfg.spec.profile} has no hosts of kfinstall's to reset; "
                          "`kfinstall down` removes its platform")
    managed = managed_hosts(cfg)
    if limit is None:
        chosen = managed
    else:
        from installer.limit import resolve_limit

        chosen = resolve_limit(cfg.inventory, limit)
    known = converged_hosts(cfg)
    # Reset since their last converge: only the packages and data directories a reset keeps are left there (the
    # host's record still lists them), so a reset run twice (or the whole site after some hosts) leaves them out,
    # unless it purges those now. A caller taking a host out of the site (leaving) resets it all the same.
    reset_before = set() if leaving else (reset_hosts(cfg) & set(chosen)) - known
    already = () if purge_packages or purge_data else tuple(h for h in chosen if h in reset_before)
    chosen = tuple(h for h in chosen if h not in already)
    # The hosts that stay in the site: converged and not reset now. A host already reset (or added to hosts.yml
    # and not converged yet) is in no cluster and mounts nothing: it neither blocks a reset nor keeps the site.
    staying = {h for h in managed if h not in chosen and h in known}
    whole = not staying
    refusals: list[str] = []
    warnings: list[str] = []
    if not leaving:
        refusals = _never_converged(cfg, chosen, known | reset_before)  # a host kfinstall reset was kfinstall's
    if not whole and not leaving:
        refusals += _refusals(cfg, chosen, staying, purge_data)
        warnings = _warnings(cfg, chosen)
    per_host = tuple(_host_plan(cfg, host, purge_packages, purge_data) for host in chosen)
    return ResetPlan(cfg.name, tuple(chosen), whole, purge_packages, purge_data, per_host,
                     tuple(refusals), tuple(warnings), already)


def reset_hosts(cfg: ClusterConfig) -> set[str]:
    """The hosts a `kfinstall reset` finished on that no host phase has run on since (state.json)."""
    from installer.state import read_state

    state = read_state(cfg.state_dir)
    return set(state.reset_hosts) if state is not None else set()


def converged_hosts(cfg: ClusterConfig) -> set[str]:
    """The hosts kfinstall's host phase last ran to its end on and no reset undid since (state.json, else the
    applied record: installer.limited.converged_roles)."""
    from installer.limited import converged_roles

    return {h for names in (converged_roles(cfg) or {}).values() for h in names}


def _never_converged(cfg: ClusterConfig, chosen: Sequence[str], known: set[str]) -> list[str]:
    """The chosen hosts kfinstall's host phase never ran to its end on (state.json, else the applied record):
    an inventory brought from elsewhere (a running Kubespray cluster) must not be kubeadm-reset by kfinstall."""
    from installer.limit import ansible_limit

    never = [h for h in chosen if h not in known]
    if not never:
        return []
    rest = [h for h in chosen if h in known]
    return [f"kfinstall never converged {', '.join(never)} (no `kfinstall up` of this site ran to its end on "
            f"{'it' if len(never) == 1 else 'them'} since the last reset; state in {cfg.state_dir}): reset undoes "
            "only kfinstall's own work and would take down a cluster someone else built. Safe path: leave them "
            "out of --limit" + (f" (`kfinstall reset --limit '{ansible_limit(rest)}'`)" if rest else "")
            + "; for a host whose `up` failed halfway, run `kfinstall up --limit HOST` to its end first, then "
            "reset it"]


def _remaining(cfg: ClusterConfig, staying: set[str], role: str) -> list[str]:
    return [h for h in cfg.inventory.names(role) if h in staying]


def _refusals(cfg: ClusterConfig, chosen: Sequence[str], staying: set[str], purge_data: bool) -> list[str]:
    """Why resetting `chosen` would break what the hosts that stay (`staying`, converged) use."""
    found = []
    cluster_left = sorted({*_remaining(cfg, staying, "kube_control_plane"), *_remaining(cfg, staying, "kube_node")})
    for host in [h for h in cfg.inventory.names("kube_control_plane") if h in chosen]:
        if cluster_left:
            found.append(
                f"{host} is a control plane of the cluster {', '.join(cluster_left[:5])} stay in: kubeadm reset "
                f"takes its API server and its etcd member away from them. Safe path: `kfinstall node remove {host}` "
                "(it removes the etcd member through another control plane first; the last control plane is refused), "
                "or reset every host of the site (`kfinstall reset` without --limit)")
    nfs = cfg.spec.storage.nfs
    nodes_left = _remaining(cfg, staying, "kube_node")
    for host in [h for h in cfg.inventory.names("nfs_server") if h in chosen]:
        if nfs.enabled and nodes_left:
            found.append(
                f"{host} serves the NFS export {nfs.export_path} that {', '.join(nodes_left[:5])} mount. Safe path: "
                "move the NFS server first (put another host in nfs_server, `kfinstall up`, copy the data), or reset "
                "every host of the site")
    gluster = cfg.spec.storage.gluster
    servers = cfg.inventory.names("gluster")
    going = [h for h in servers if h in chosen]
    if gluster.enabled and going:
        found += _gluster_quorum_refusals(gluster.volume, gluster.replica, servers, going, staying)
        if purge_data:
            found.append(
                f"--purge-data deletes the brick {gluster.brick_path} of {', '.join(going)} while the volume "
                f"{gluster.volume} stays in use (one of its copies). Safe path: `gluster volume replace-brick "
                f"{gluster.volume} OLD-HOST:{gluster.brick_path} NEW-HOST:{gluster.brick_path} commit force` first, "
                "or `kfinstall node remove`, or reset without --purge-data")
    return found


def _gluster_quorum_refusals(volume: str, replica: int, servers: Sequence[str], going: Sequence[str],
                             staying: Collection[str]) -> list[str]:
    """Client quorum (cluster.quorum-type auto) holds per replica set: more than half of its bricks up.

    A volume of one replica set holds every server's brick, so its check is exact. A distributed-replicated
    volume's sets are `replica` adjacent bricks in create order (glusterfs/tasks/volume.yml: the group's order
    at the first converge), but after the replace-brick path node remove offers (the new host goes last in the
    group, its brick takes the old one's place) the group's order no longer shows them, and kfinstall does not
    read the volume here. So there any Gluster hosts that are down might share a set: at most the spare of one
    set may be down at a time."""
    set_size = min(len(servers), max(replica, 1))
    quorum = set_size // 2 + 1
    spare = set_size - quorum  # bricks of one set that may be down while it keeps quorum
    down = [h for h in servers if h not in staying]
    if len(down) <= spare:
        return []
    if len(servers) == set_size:
        return [f"resetting the Gluster host(s) {', '.join(going)} leaves {len(servers) - len(down)} of the replica "
                f"set {', '.join(servers)} of the volume {volume} running; its client quorum needs {quorum} (more "
                "than half of the replica), so the volume would stop taking writes. Safe path: reset fewer Gluster "
                "hosts at a time (`up` brings each back and it heals), or reset every host of the site"]
    return [f"resetting the Gluster host(s) {', '.join(going)} leaves {len(down)} Gluster host(s) down "
            f"({', '.join(down)}); the volume {volume} has {len(servers) // set_size} replica sets of {set_size}, "
            "and its brick order (which bricks form a set) follows the gluster group only until a brick is "
            f"replaced, so they may share one, and a set with more than {spare} down loses its client quorum "
            f"({quorum} of {set_size}) and stops taking writes. Safe path: reset at most {spare} Gluster host(s) at "
            "a time (`up` brings each back and it heals), or reset every host of the site"]


def _warnings(cfg: ClusterConfig, chosen: Sequence[str]) -> list[str]:
    workers = [h for h in cfg.inventory.names("kube_node") if h in chosen
               and h not in cfg.inventory.names("kube_control_plane")]
    if not workers:
        return []
    return [f"the Node object(s) of {', '.join(workers)} stay in the cluster (NotReady) and their pods are evicted "
            "only after the node-lifecycle timeout: to take a worker out cleanly use `kfinstall node remove HOST` "
            "(drain, delete the Node, then this reset)"]


def _host_plan(cfg: ClusterConfig, host: str, purge_packages: bool, purge_data: bool) -> HostReset:
    from installer.paths import data_dir
    from installer.phases.hosts import site_plays

    roles = tuple(r for r in ROLE_GROUPS if host in cfg.inventory.names(r))
    storage = cfg.spec.storage
    # Plays whose tasks all skip on this site (their storage is off) are not shown.
    idle = {"Unmount the GlusterFS volume and stop serving bricks": not storage.gluster.enabled,
            "Withdraw the NFS export": not storage.nfs.enabled or storage.nfs.implementation != "kernel"}
    steps = tuple(play for _, play, pattern in site_plays(data_dir("playbooks"), RESET_PLAYBOOK)
                  if host in cfg.inventory.pattern_hosts(pattern) and not idle.get(play, False))
    keeps = []
    if not purge_packages:
        keeps.append("the packages kfinstall installed (--purge-packages purges them)")
    else:
        # Two purges, each all or nothing (kubernetes/tasks/reset.yml, then kf_defaults' reset.yml).
        sets = ("the Kubernetes packages (kubelet, kubeadm, kubectl), and apart the rest of kfinstall's packages, "
                "each set" if {"kube_control_plane", "kube_node"} & set(roles) else "all of kfinstall's packages")
        keeps.append(f"{sets} when purging them would also remove a package installed since "
                     "(apt-get --simulate purge decides; reported as SKIPPED)")
    if "nfs_server" in roles and storage.nfs.enabled:
        keeps.append(f"the NFS export {storage.nfs.export_path}" if not purge_data
                     else f"nothing of the NFS export {storage.nfs.export_path} (--purge-data deletes it)")
    if "gluster" in roles and storage.gluster.enabled:
        keeps.append(f"the Gluster brick {storage.gluster.brick_path} and glusterd's pool and volume definition"
                     if not purge_data else
                     f"nothing of Gluster but the packages: --purge-data deletes the brick {storage.gluster.brick_path}"
                     f", and with every Gluster host reset, the volume {storage.gluster.volume} and the pool")
    keeps.append("packages, services and files that were there before kfinstall, and any file changed since "
                 "kfinstall wrote it")
    return HostReset(host, roles, steps, tuple(keeps))


def check_plan(plan: ResetPlan) -> None:
    """Refuse (exit 3, nothing touched) what the plan found would break the site."""
    if plan.refusals:
        raise PreflightError("reset refused; nothing was changed:\n  " + "\n  ".join(plan.refusals))


# ---- running it -----------------------------------------------------------------------------------------


def reset_vars(cfg: ClusterConfig, plan: ResetPlan) -> dict[str, Any]:
    """The extra vars of reset.yml: the site's kf_* settings (where its data lives) and the two purges."""
    return {**cfg.ansible_vars(), "kf_reset_purge_packages": plan.purge_packages,
            "kf_reset_purge_data": plan.purge_data}


def run_reset(cfg: ClusterConfig, plan: ResetPlan, console: Console, *, verbosity: int = 0,
              confirm: Callable[[str], bool] | None = None, lock: bool = True) -> ResetReport:
    """Refuse, ask, then run reset.yml on the plan's hosts; PreflightError (3), PhaseFailed (4), Interrupted.

    `lock`: take the cluster's run lock (False for a caller that holds it, such as `node remove`).
    """
    check_plan(plan)
    if confirm is not None and not confirm("\n".join([*plan.lines(), f"Reset {len(plan.hosts)} host(s)?"])):
        raise PreflightError("not confirmed; nothing was changed")
    if not lock:
        return _run(cfg, plan, console, verbosity)
    from installer.lock import run_lock

    with run_lock(cfg.state_dir, "reset " + ",".join(plan.hosts)):
        return _run(cfg, plan, console, verbosity)


def reset_host(cfg: ClusterConfig, host: str, *, console: Console | None = None, verbosity: int = 0,
               purge_packages: bool = False, purge_data: bool = False) -> ResetReport:
    """Reset one host another verb is taking out of the site (`node remove`), under the caller's lock.

    The caller has made its own refusals and the cluster-side steps (drain, etcd member, Node); no question
    is asked. Raises PhaseFailed (exit 4) naming host and task when a step fails.
    """
    from installer.limit import ansible_limit

    plan = plan_reset(cfg, ansible_limit([host]), purge_packages=purge_packages, purge_data=purge_data, leaving=True)
    if plan.hosts != (host,):
        raise PreflightError(f"{host} is not a host kfinstall manages in {cfg.inventory.path}")
    return run_reset(cfg, plan, console or Console(stderr=True), verbosity=verbosity, lock=False)


def _run(cfg: ClusterConfig, plan: ResetPlan, console: Console, verbosity: int) -> ResetReport:
    from installer.adapters.ansible import run_playbook
    from installer.adapters.ssh import HostKeyPolicy, check_host_keys
    from installer.interrupt import interrupt_sets
    from installer.limit import ansible_limit
    from installer.phases.preflight import show_host_keys
    from installer.progress import HostProgress
    from installer.runs import RunRecord

    record = RunRecord.start(cfg, "reset " + ",".join(plan.hosts))
    report = ResetReport(record.run_id, str(record.path), plan)
    record.write_json("reset-plan.json", plan.as_dict())
    policy = HostKeyPolicy.of(cfg)
    # Only the hosts reset are reached: their keys are checked (pinned on first contact) before any task.
    policy = dataclasses.replace(policy, targets={h: t for h, t in policy.targets.items() if h in plan.hosts})
    cancelled = threading.Event()
    error: KfinstallError | None = None
    start = time.monotonic()
    try:
        with interrupt_sets(cancelled):
            show_host_keys(record, console, check_host_keys(policy))
            with HostProgress(console, "reset") as view:
                result = run_playbook(
                    RESET_PLAYBOOK, _inventory(cfg), reset_vars(cfg, plan), record.path / "ansible",
                    limit=ansible_limit(plan.hosts),
                    sink=_recording(record, view),
                    cancel=cancelled.is_set, host_keys=policy, verbosity=verbosity,
                )
        report.duration_s = time.monotonic() - start
        report.hosts = {name: stats.as_dict() for name, stats in result.hosts.items()}
        report.skipped = [s.__dict__ for s in result.skipped]
        report.failures = [record.clean(f.__dict__) for f in result.failures]
        if cancelled.is_set() or result.status == "canceled":
            error = Interrupted(f"interrupted during reset; run record {record.path}; run the same reset again")
        elif not result.ok:
            lines = [f"reset failed ({result.status}, rc {result.rc}); run record {record.path}"]
            lines += [f"  {f['host']}: task '{f['task']}': {f['message']}" for f in report.failures]
            lines.append("fix the cause and run the same reset again: what is already undone is not repeated")
            error = PhaseFailed("\n".join(lines))
        report.result = "failed" if error else ("incomplete" if report.skipped else "ok")
    except KfinstallError as exc:
        error = exc
        report.result = "interrupted" if isinstance(exc, Interrupted) else "failed"
    finally:
        record.seal()
        record.write_json("summary.json", report.as_dict())
        _remember(cfg, report)
    if error is not None:
        error.report = report
        raise error
    return report


def _recording(record: Any, view: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Every event goes to the run record (redacted) and to the live view."""

    def sink(event: dict[str, Any]) -> None:
        record.append_event(event)
        view(event)

    return sink


def _inventory(cfg: ClusterConfig) -> Any:
    assert cfg.inventory.path is not None  # a profile with hosts has an inventory (plan_reset refused the others)
    # The inventory itself, not its path: run_playbook adds the role groups of legacy group names.
    return cfg.inventory


def _remember(cfg: ClusterConfig, report: ResetReport) -> None:
    """The state's history says when which hosts were reset. A reset of every host also drops the last
    applied record's host part (nothing of it is left). A partial reset keeps it: the hosts that stay still
    carry what it records (the NFS export list and Gluster's auth.allow still name the reset hosts), and
    `up --limit` reads it to tell which hosts those admit."""
    from installer.state import HistoryEntry, State, read_state, write_state

    state = read_state(cfg.state_dir) or State(cluster=cfg.name)
    state.history.append(HistoryEntry(at=time.strftime("%FT%TZ", time.gmtime()), action="reset " + ",".join(
        report.plan.hosts), run_id=report.run_id, to_channel=state.installed_channel or cfg.release.channel,
        result=report.result))
    if report.result in ("ok", "incomplete"):
        # The reset hosts are no longer converged: `up --limit` (installer.limited.converged_roles) must not
        # take them for hosts whose roles are in place. A state older than host_roles has them only in the
        # applied record, which a partial reset keeps: start from what converged_roles reads.
        from installer.limited import converged_roles

        before = converged_roles(cfg) or {}  # state.host_roles, or the applied record's for an older state
        state.host_roles = {} if report.plan.whole_site else {
            role: [h for h in hosts if h not in report.plan.hosts] for role, hosts in before.items()}
        state.reset_hosts = sorted({*state.reset_hosts, *report.plan.hosts})
    write_state(cfg.state_dir, state)
    if report.result in ("ok", "incomplete") and report.plan.whole_site:
        from installer.applied import forget_host_part

        forget_host_part(cfg)
