"""Preflight: refuse (exit 3) before changing anything when a host is unfit.

Checks over SSH with one small playbook (playbooks/preflight.yml): reachability and passwordless sudo,
then facts (OS, free disk, clock). Thresholds below say why they are what they are.

Under `up` with the host phase to follow, preflight.yml is not a run of its own: it is the first play of
the host phase's one ansible-playbook run (playbooks/up.yml), and its last task waits for the verdict
kfinstall writes when that task starts (HostChecks). `up --only preflight`, `plan --check-hosts`,
`upgrade` and `backup --cluster` run preflight.yml alone and judge it once it ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from installer.adapters.ansible import UNREACHABLE, Checkpoint, PlaybookResult, run_playbook
from installer.adapters.ssh import HostKeyPolicy, HostKeyReport, check_host_keys
from installer.config.inventory import ROLE_GROUPS
from installer.config.resolved import ClusterConfig
from installer.errors import Interrupted, KfinstallError, PreflightError
from installer.limit import ansible_limit
from installer.owned import write_file_atomically
from installer.phases.base import FACTS_CACHE, Phase, PhasePlan, PhaseResult, RunContext
from installer.runs import RunRecord

SUPPORTED_OS_FAMILIES = ("Debian",)  # the roles install with apt
MIN_FREE_ROOT_GB = 10  # images + kubelet eviction headroom (kubelet evicts below 10-15 % free)
MAX_CLOCK_SKEW_S = 10  # certificates and etcd leases go wrong well before a minute of skew
SUDO_TASK = "Preflight | Become root and read the free space on /"  # the task name in playbooks/preflight.yml
VERDICT_TASK = "Preflight | Wait for kfinstall's verdict"  # preflight.yml's task that waits for HostChecks.judge
VERDICT_VAR = "kf_preflight_verdict"  # the extra var naming the verdict file; preflight.yml waits only when set
HOST_CHECKS = ["ssh", "os", "disk", "clock", "sudo"]


def checked_phases(phases: tuple[str, ...]) -> tuple[str, ...]:
    """The phases whose needs preflight checks: the ones the run goes on to. `up --only preflight` goes on
    to none, so it checks for every phase of a full `up`: it answers "would `up` start?"."""
    if tuple(phases) != ("preflight",):
        return tuple(phases)
    from installer.phases import UP_PHASES  # the package imports this module

    return tuple(UP_PHASES)


def run(ctx: RunContext) -> PhaseResult:
    start = time.monotonic()
    checks = []
    planned = checked_phases(ctx.phases)
    if ctx.limit:  # `up --limit --only preflight` answers "would `up --limit` start?": no cluster-wide phase
        planned = tuple(p for p in planned if p in ("preflight", "hosts"))
    # Alone (`--only preflight`) nothing follows, so every refusal is gathered and shown together;
    # before other phases the first refusal ends the run at once (no SSH when a tool is missing).
    only_checking = tuple(ctx.phases) == ("preflight",)
    refusals: list[str] = []
    later: dict[str, str] = {}  # checks left to a later phase of this run, each with its reason
    if "platform" in planned:
        # The platform's tools are checked before any host changes, not after the host phase.
        from installer.phases import platform

        later = platform.checks_later(ctx.cfg, planned)
        try:
            platform.check(ctx, planned)
        except PreflightError as exc:
            if not only_checking:
                raise
            refusals.append(exc.message.replace("\n", "\n  "))
        checks.append("pulumi")
        for check, reason in later.items():
            ctx.console.print(f"preflight: {check} not checked now: {reason}", markup=False, highlight=False)
    details: dict[str, Any] = {"later": later} if later else {}
    if not ctx.cfg.profile.host_phase or "hosts" not in planned:
        if refusals:
            raise refused(refusals)
        return PhaseResult("preflight", "ok", time.monotonic() - start, details={"checks": checks, **details})
    inventory = ctx.cfg.inventory.path
    assert inventory is not None
    managed = [h.name for h in ctx.cfg.inventory.hosts if set(h.roles) & set(ROLE_GROUPS)]
    if ctx.limit:  # `up --limit`: preflight checks and touches only the limited hosts
        managed = [h for h in managed if h in ctx.limit]
    host_keys = HostKeyPolicy.of(ctx.cfg)
    # before any task; exit 3 on a changed key. Under --limit: the limited hosts and the ones their delegated
    # tasks reach, no other host is contacted.
    checked_keys = _only(host_keys, (*ctx.limit, *ctx.contacts)) if ctx.limit else host_keys
    show_host_keys(ctx.record, ctx.console, check_host_keys(checked_keys))
    if ctx.one_ansible_run and not refusals:
        # The host checks are the first play of the host phase's run; HostChecks completes this result.
        deferred = PhaseResult("preflight", "ok", time.monotonic() - start,
                               details={"checks": checks + HOST_CHECKS, **details})
        ctx.host_checks = HostChecks(ctx.record, managed, deferred, details)
        return deferred
    result = run_playbook(
        "preflight.yml",
        ctx.cfg.inventory,
        {},
        ctx.record.path / "ansible-preflight",
        limit=ansible_limit(ctx.limit) if ctx.limit else None,
        cancel=ctx.cancel_requested,
        facts_cache=ctx.record.path / FACTS_CACHE,
        host_keys=host_keys,
        verbosity=ctx.verbosity,
    )
    _stop_if_cancelled(ctx, result)
    problems = refusals + host_problems(result, time.time(), managed)
    record_problems(ctx.record, problems, result, details)
    if problems:
        raise refused(problems)
    checks += HOST_CHECKS
    return PhaseResult("preflight", "ok", time.monotonic() - start, details={"checks": checks, **details})


def refused(problems: list[str]) -> PreflightError:
    """The refusal of a preflight, one problem a line (exit 3)."""
    return PreflightError("preflight refused:\n  " + "\n  ".join(problems))


def record_problems(record: RunRecord, problems: list[str], result: PlaybookResult, details: dict[str, Any]) -> None:
    """preflight.json: what was refused and which hosts' facts were read, whichever run read them."""
    record.write_json("preflight.json", {"problems": problems, "facts_hosts": sorted(result.facts), **details})


@dataclass
class HostChecks:
    """Preflight's host checks as the first play of the host phase's Ansible run (playbooks/up.yml).

    `checkpoint()` goes to run_playbook: when preflight.yml's verdict task starts, `judge` reads the results
    so far with the same code as a preflight run of its own (host_problems), records them and writes
    "go" or "stop" into the verdict file that task waits for; on "stop" the next task ends the run on every
    host before site.yml begins. `after` turns a refusal into PreflightError (exit 3) once the run ended,
    and judges then a run that never reached the verdict (every host failed before it)."""

    record: RunRecord
    managed: list[str]
    result: PhaseResult  # preflight's own, already in the run's report: its duration grows to the verdict
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] | None = None  # None until judged
    judged_after_s: float = 0.0  # seconds into the Ansible run when the verdict was written

    @property
    def verdict_file(self) -> Path:
        return self.record.path / "ansible" / "preflight-verdict"

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(VERDICT_TASK, self.judge)

    def judge(self, so_far: PlaybookResult) -> None:
        if self.problems is not None:
            return
        self.problems = host_problems(so_far, time.time(), self.managed)
        self.judged_after_s = so_far.duration_s
        self.result.duration_s += so_far.duration_s
        record_problems(self.record, self.problems, so_far, self.details)
        self.verdict_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file_atomically(self.verdict_file, b"stop" if self.problems else b"go", 0o600)

    def after(self, result: PlaybookResult, cancelled: bool) -> None:
        """Once the run ended: an interrupted or refused preflight ends `up` as a preflight run of its own would."""
        if self.problems is None and (cancelled or result.status == "canceled"):
            self._ends_the_run(Interrupted("interrupted during preflight; nothing was changed"))
        self.judge(result)
        if self.problems:
            self._ends_the_run(refused(self.problems))

    def _ends_the_run(self, error: KfinstallError) -> NoReturn:
        """Raise `error` as preflight's: its result gets the status a preflight run of its own gets (run_up
        names a failed phase by its error), and the report shows no host phase."""
        self.result.status = type(error).__name__
        error.phase = self.result
        raise error


def _only(policy: HostKeyPolicy, hosts: tuple[str, ...]) -> HostKeyPolicy:
    return replace(policy, targets={name: t for name, t in policy.targets.items() if name in hosts})


def show_host_keys(record: RunRecord, console: Console, report: HostKeyReport) -> None:
    """Record the check; print each key pinned on first contact (compare it with the host's console) and,
    loudly, that nothing is checked when the site turned checking off. up, upgrade and backup --cluster."""
    record.write_json("host-keys.json", report.as_dict())
    if report.mode == "off":
        console.print(
            "WARNING: SSH host keys are NOT checked (spec.ssh.hostKeyChecking: off): anyone who can answer "
            "for a host's address receives kfinstall's connections; set accept-new or strict",
            markup=False,
        )
    for setting in report.ignored:
        console.print(
            f"note: {setting} from your environment is not used: kfinstall's SSH host-key settings replace it",
            markup=False,
        )
    for host, keys in sorted(report.pinned.items()):
        console.print(
            f"pinned SSH host key of {host} on first contact: {', '.join(keys)} (in {report.known_hosts})",
            markup=False,
        )


def _stop_if_cancelled(ctx: RunContext, result: PlaybookResult) -> None:
    if ctx.cancel_requested() or result.status == "canceled":
        raise Interrupted("interrupted during preflight; nothing was changed")


def host_problems(result: PlaybookResult, now: float, hosts: list[str]) -> list[str]:
    """One line per unfit host: what is wrong and how to fix it."""
    problems = []
    for host in hosts:
        failure = next((f for f in result.failures if f.host == host), None)
        host_facts = result.facts.get(host)
        if failure is not None and failure.message.startswith(UNREACHABLE):
            problems.append(
                f"{host}: not reachable over SSH ({failure.message}); check ansible_host, the SSH key and firewall"
            )
        elif failure is not None and failure.task == SUDO_TASK:
            problems.append(
                f"{host}: cannot become root without a password ({failure.message}); "
                "allow passwordless sudo for ansible_user or log in as root"
            )
        elif host_facts is None:
            reason = failure.message if failure is not None else "no answer"
            problems.append(f"{host}: facts could not be read ({reason}); run `ansible -m setup {host} -b` to see why")
        else:
            problems += _fact_problems(host, host_facts, now)
    return problems


def _fact_problems(host: str, facts: dict[str, Any], now: float) -> list[str]:
    found = []
    family = facts.get("ansible_os_family", "?")
    if family not in SUPPORTED_OS_FAMILIES:
        found.append(
            f"{host}: OS family {family} ({facts.get('ansible_distribution', '?')}) is not supported; "
            "use Debian 12+ or Ubuntu 22.04+"
        )
    free = root_free_bytes(facts)
    if free is None:
        found.append(f"{host}: the free space on / could not be read; run `df -Pk /` on {host} to see why")
    elif free < MIN_FREE_ROOT_GB * 1024**3:
        found.append(
            f"{host}: only {free / 1024**3:.1f} GB free on / (needs {MIN_FREE_ROOT_GB} GB); free space or grow the disk"
        )
    skew = clock_skew(facts, now)
    if skew is not None and abs(skew) > MAX_CLOCK_SKEW_S:
        found.append(f"{host}: clock is {skew:+.0f} s off this machine's; enable time sync (chrony)")
    return found


def root_free_bytes(facts: dict[str, Any]) -> int | None:
    """Free bytes on /: preflight.yml's df reading, else the gathered mounts (None when neither has it)."""
    if "kf_root_free_bytes" in facts:
        return int(facts["kf_root_free_bytes"])
    root = next((m for m in facts.get("ansible_mounts", []) if m.get("mount") == "/"), None)
    return int(root["size_available"]) if root is not None and "size_available" in root else None


def clock_skew(facts: dict[str, Any], now: float) -> float | None:
    """Seconds the host's clock is off, against the window in which this machine saw it answer.

    Comparing with `now` (after every preflight run) would count slow fact gathering as skew.
    """
    epoch = facts.get("ansible_date_time", {}).get("epoch")
    if epoch is None:
        return None
    start, end = facts.get("kf_gathered_between", (None, None))
    low, high = (start or now), (end or now)
    host_time = float(epoch)
    if low - 1 <= host_time <= high + 1:  # epoch has a resolution of one second
        return 0.0
    return host_time - (low if host_time < low else high)


class PreflightPhase(Phase):
    """Refuses (exit 3) before anything changes: the platform's tools, then every host over SSH."""

    name = "preflight"

    def plan(self, cfg: ClusterConfig) -> PhasePlan:
        actions = []
        if cfg.profile.host_phase:
            managed = [h for h in cfg.inventory.hosts if set(h.roles) & set(ROLE_GROUPS)]
            jumps = HostKeyPolicy.of(cfg).jumps
            if jumps:  # a bastion or ProxyJump hops: their keys are checked first, against the same file
                actions.append(f"check the SSH host keys of the jump host(s) {', '.join(jumps)} first")
            actions.append(f"check SSH, OS, disk, sudo and clock skew on {len(managed)} host(s)")
        actions.append("check the Pulumi CLI and provider plugins match the installed SDKs")
        return PhasePlan("preflight", True, tuple(actions))

    def run(self, ctx: RunContext) -> PhaseResult:
        return run(ctx)


PREFLIGHT = PreflightPhase()
