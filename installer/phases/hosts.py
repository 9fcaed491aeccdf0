"""The host phase: playbooks/site.yml with the model's kf_* extra vars. A failure names host and task."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from installer.adapters.ansible import EventSink, PlaybookResult, run_playbook, unsafe_vars_yaml
from installer.adapters.ssh import HostKeyPolicy
from installer.config.resolved import ClusterConfig
from installer.errors import Interrupted, PhaseFailed
from installer.limit import ansible_limit
from installer.owned import write_file_atomically
from installer.paths import data_dir
from installer.phases.base import FACTS_CACHE, Component, Phase, PhasePlan, PhaseResult, RunContext, Step, outcome
from installer.phases.preflight import VERDICT_VAR, HostChecks
from installer.progress import HostProgress

SITE_PLAYBOOK = "site.yml"
UP_PLAYBOOK = "up.yml"  # preflight.yml, then site.yml: `up`'s preflight and host phase in one Ansible run
# The extra vars as the playbooks received them, for `ansible-playbook -e @<record>/ansible-vars.yml` by hand.
RECORDED_VARS = "ansible-vars.yml"

# Plan reads the playbooks on every call: libyaml when PyYAML has it (4x faster on 10-os.yml).
try:
    from yaml import CSafeLoader as _PlaybookLoader
except ImportError:  # PyYAML built without libyaml: same result, slower
    from yaml import SafeLoader as _PlaybookLoader  # type: ignore[assignment]


def run(ctx: RunContext, *, check: bool = False) -> PhaseResult:
    if not ctx.cfg.profile.host_phase:
        return PhaseResult("hosts", "skipped", details={"reason": f"profile {ctx.cfg.spec.profile} has no hosts"})
    inventory = ctx.cfg.inventory.path
    assert inventory is not None
    extravars = ctx.cfg.ansible_vars()
    _record_vars(ctx, extravars)
    # After a preflight that left its host checks to this run: preflight.yml first (up.yml), judged at its verdict.
    checks: HostChecks | None = None if check else ctx.host_checks
    if checks is not None:
        extravars = {**extravars, VERDICT_VAR: str(checks.verdict_file)}
    with HostProgress(ctx.console, "hosts (check)" if check else "hosts") as view:
        result = run_playbook(
            UP_PLAYBOOK if checks is not None else SITE_PLAYBOOK,
            ctx.cfg.inventory,
            extravars,
            ctx.record.path / "ansible",
            check=check,
            limit=ansible_limit(ctx.limit) if ctx.limit else None,
            sink=_recording(ctx, view),
            cancel=ctx.cancel_requested,
            facts_cache=ctx.record.path / FACTS_CACHE,
            host_keys=HostKeyPolicy.of(ctx.cfg),
            verbosity=ctx.verbosity,
            checkpoint=checks.checkpoint() if checks is not None else None,
        )
    if checks is not None:
        # A refused or interrupted preflight ends the run here, as a preflight run of its own would.
        checks.after(result, ctx.cancel_requested())
        result.duration_s -= checks.judged_after_s  # the rest is the host phase's
    phase = _to_phase(result, check)
    ctx.record.write_json("hosts.json", phase.as_dict())
    if ctx.cancel_requested() or result.status == "canceled":
        raise Interrupted(f"interrupted during the host phase; run record {ctx.record.path}; re-run to converge")
    if not result.ok and not check:  # in check mode a failure is a finding to report, not an error
        raise PhaseFailed(_failure_text(result, ctx), phase=phase)
    return phase


def _record_vars(ctx: RunContext, extravars: dict[str, Any]) -> None:
    """Keep the extra vars in the form run_playbook passes them: YAML with every string `!unsafe`.

    Not JSON: Ansible templates every string of a JSON vars file given with `-e @`, so a value such as
    `/x{{ lookup('pipe', 'id') }}` re-run by hand from the record would run on this machine.
    """
    text = unsafe_vars_yaml(ctx.record.clean(extravars))
    write_file_atomically(ctx.record.path / RECORDED_VARS, text.encode("utf-8"), 0o600)


def _recording(ctx: RunContext, view: HostProgress) -> EventSink:
    """Every event goes to the run record (redacted) and to the live view."""

    def sink(event: dict[str, Any]) -> None:
        ctx.record.append_event(event)
        view(event)

    return sink


def _to_phase(result: PlaybookResult, check: bool) -> PhaseResult:
    skipped = [skip.__dict__ for skip in result.skipped]
    return PhaseResult(
        "hosts",
        outcome(result.ok, skipped),
        result.duration_s,
        hosts={name: stats.as_dict() for name, stats in result.hosts.items()},
        skipped=skipped,
        details={
            "check": check,
            "failures": [f.__dict__ for f in result.failures],
            **({"diffs": result.diffs} if check else {}),
        },
    )


def _failure_text(result: PlaybookResult, ctx: RunContext) -> str:
    lines = [f"host phase failed ({result.status}, rc {result.rc}); run record {ctx.record.path}"]
    lines += [f"  {f.host}: task '{f.task}': {f.message}" for f in result.failures]
    lines.append("fix the cause and run the same command again: finished tasks are not repeated")
    return "\n".join(lines)


class HostsPhase(Phase):
    """playbooks/site.yml on the inventory; its plan's steps are the plays and the hosts Ansible targets."""

    name = "hosts"

    def plan(self, cfg: ClusterConfig) -> PhasePlan:
        if not cfg.profile.host_phase:
            return PhasePlan("hosts", False, reason=f"profile {cfg.spec.profile} has no host phase")
        steps = plan_steps(cfg)
        return PhasePlan("hosts", True, tuple(_actions(cfg, steps)), components=tuple(_components(cfg)), steps=steps)

    def run(self, ctx: RunContext) -> PhaseResult:
        return run(ctx)


HOSTS = HostsPhase()


@functools.lru_cache(maxsize=8)
def site_plays(playbooks: Path, entry: str = SITE_PLAYBOOK) -> tuple[tuple[str, str, Any], ...]:
    """(playbook file, play name, `hosts:` pattern) of every play `entry` runs, in run order: its
    import_playbook chain followed the way Ansible follows it. These are kfinstall's own playbooks."""
    plays: list[tuple[str, str, Any]] = []
    for item in yaml.load((playbooks / entry).read_text(encoding="utf-8"), Loader=_PlaybookLoader) or []:
        imported = item.get("ansible.builtin.import_playbook", item.get("import_playbook"))
        if imported is not None:
            plays += site_plays(playbooks, str(imported))
        elif "hosts" in item:
            plays.append((entry, str(item.get("name", "")), item["hosts"]))
    return tuple(plays)


def plan_steps(cfg: ClusterConfig) -> tuple[Step, ...]:
    """Each play of site.yml with the hosts Ansible's own pattern resolution gives on this inventory."""
    return tuple(
        Step(playbook, play, tuple(cfg.inventory.pattern_hosts(pattern)))
        for playbook, play, pattern in site_plays(data_dir("playbooks"))
    )


def _hosts_of(steps: Sequence[Step], playbook: str, index: int = 0) -> tuple[str, ...]:
    """The hosts of the `index`th play of `playbook` (nothing when that play is gone)."""
    found = [s for s in steps if s.playbook == playbook]
    return found[index].hosts if len(found) > index else ()


def counted(hosts: Sequence[str]) -> str:
    shown = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more" if len(hosts) > 3 else "")
    return f"{len(hosts)} host(s): {shown}" if hosts else "no hosts"


def _actions(cfg: ClusterConfig, steps: Sequence[Step]) -> list[str]:
    spec, pins = cfg.spec, cfg.release
    actions = [
        "os_prepare: packages, swap off, kernel modules and sysctls, time sync on "
        + counted(_hosts_of(steps, "10-os.yml")),
        f"containerd ({spec.containerd.source}) with SystemdCgroup on {counted(_hosts_of(steps, '20-containerd.yml'))}",
    ]
    if spec.gpu.enabled:
        actions.append(
            f"nvidia_gpu: driver branch {cfg.nvidia_driver_branch} + container toolkit "
            f"{pins.nvidia.container_toolkit} on {counted(cfg.inventory.names('gpu'))}"
        )
    if spec.storage.nfs.enabled:
        actions.append(
            f"nfs_server ({spec.storage.nfs.implementation}) exporting {spec.storage.nfs.export_path} "
            f"on {counted(_hosts_of(steps, '40-storage.yml', 0))}; "
            f"nfs client on {counted(_hosts_of(steps, '40-storage.yml', 1))}"
        )
    if spec.storage.gluster.enabled:
        actions.append(
            f"glusterfs: replica {spec.storage.gluster.replica} volume {spec.storage.gluster.volume} on "
            f"{counted(cfg.inventory.names('gluster'))}; FUSE mount {spec.storage.gluster.mount_path} "
            f"on {counted(cfg.inventory.names('kube_node'))}"
        )
    cluster = _hosts_of(steps, "50-kubernetes.yml")
    actions.append(
        f"kubernetes {cfg.kubernetes_version} (kubeadm, kubelet, kubectl {cfg.kubernetes_package_version}): "
        f"{_cluster_action(cfg, cluster)}, Calico {pins.kubernetes.cni['calico']}, kubeconfig into the state dir"
    )
    if spec.kubernetes.control_plane_endpoint:
        actions.append(f"kube-vip {pins.kubernetes.kube_vip.tag} announcing {spec.kubernetes.control_plane_endpoint}")
    return actions


def _cluster_action(cfg: ClusterConfig, cluster: Sequence[str]) -> str:
    """kubeadm init, then joins; on a cluster the last recorded apply built, the role inits nothing
    and joins only hosts not yet in it (it skips every host whose kubelet.conf exists)."""
    from installer.applied import read_applied

    built = ((read_applied(cfg.state_dir) or {}).get("hosts") or {}).get("roles") or {}
    if built:
        members = set(built.get("kube_control_plane") or ()) | set(built.get("kube_node") or ())
        new = [h for h in cluster if h not in members]
        joins = f"join the new {counted(new)}" if new else "no new host to join"
        return f"cluster built by the last recorded apply: no kubeadm init, {joins}"
    control = [h for h in cluster if h in set(cfg.inventory.names("kube_control_plane"))]
    return f"kubeadm init on {control[0] if control else '-'}, join {max(len(cluster) - 1, 0)} more"


def _components(cfg: ClusterConfig) -> list[Component]:
    pins, spec = cfg.release, cfg.spec
    containerd = (
        f">= {pins.containerd.minimum_distro}" if spec.containerd.source == "distro" else pins.containerd.version
    )
    found = [
        Component("kubernetes", "kubernetes", cfg.kubernetes_version, spec.kubernetes.package_source, "hosts"),
        Component("containerd", "host-package", containerd, spec.containerd.source, "hosts"),
        Component("calico", "manifest", pins.kubernetes.cni["calico"], "upstream manifest", "hosts"),
    ]
    if spec.kubernetes.control_plane_endpoint:
        found.append(
            Component("kube-vip", "image", pins.kubernetes.kube_vip.tag, pins.kubernetes.kube_vip.image, "hosts")
        )
    if spec.gpu.enabled:
        found += [
            Component("nvidia-driver", "host-package", cfg.nvidia_driver_branch, "driver branch", "hosts"),
            Component("nvidia-container-toolkit", "host-package", pins.nvidia.container_toolkit, "NVIDIA", "hosts"),
        ]
    return found
