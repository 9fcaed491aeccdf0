"""The only module that drives Ansible (through ansible-runner): every call is a playbook run.

Gotchas handled here (measured, see the research notes): the venv's bin dir must be on PATH or
ansible-playbook is not found; `suppress_env_files=True` or a `--check` persists into later runs
and extra vars land on disk; a fresh ident per run or job events of two runs mix.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ansible_runner
import ansible_runner.interface
import yaml

from installer.adapters.ssh import EXECUTABLES_ENV, REUSE_OPTIONS, HostKeyPolicy
from installer.config.inventory import Inventory
from installer.config.legacy_groups import alias_inventory
from installer.errors import PhaseFailed
from installer.interrupt import Stopped, stop_descendants
from installer.paths import data_dir
from installer.runs import redact, redact_data

EventSink = Callable[[dict[str, Any]], None]
LOG = logging.getLogger("kfinstall.ansible")  # kfinstall's log (installer/log.py): -v shows Ansible's output
UNREACHABLE = "unreachable: "  # how a Failure's message starts when the host did not answer
HOST_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}
# How a role says it skipped, on purpose, something the site asked for: a debug task whose message is
# "SKIPPED <what>: <why>" (README.md, "Results of `up`"). The summary of `up` lists each one and its result is
# then "incomplete", not "ok"; a plain debug message ("nothing to do") is not a skip.
SKIP_MARKER = "SKIPPED "
DEBUG_ACTIONS = frozenset({"debug", "ansible.builtin.debug", "ansible.legacy.debug"})


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Failure:
    host: str
    task: str
    message: str


@dataclass(frozen=True)
class Skip:
    """A step a role reported as skipped on purpose, on one host (see SKIP_MARKER)."""

    host: str
    task: str
    step: str
    reason: str


def skip_of(host: str, task: str, action: str, res: dict[str, Any]) -> Skip | None:
    """The Skip a task result announces, or None. The step is the text before the first ": "."""
    message = res.get("msg")
    if action not in DEBUG_ACTIONS or not isinstance(message, str) or not message.startswith(SKIP_MARKER):
        return None
    step, _, reason = message[len(SKIP_MARKER) :].partition(": ")
    return Skip(host, task, step.strip(), reason.strip() or "no reason given")


@dataclass
class PlaybookResult:
    status: str
    rc: int
    duration_s: float
    hosts: dict[str, HostStats] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    diffs: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[Skip] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "successful" and not self.failures


# Without a site (tools that make no connection): ssh's own checking against ~/.ssh/known_hosts.
_SSH_DEFAULTS = {
    "ANSIBLE_HOST_KEY_CHECKING": "True",
    "ANSIBLE_SSH_HOST_KEY_CHECKING": "True",
    "ANSIBLE_SSH_ARGS": shlex.join(REUSE_OPTIONS),
    "ANSIBLE_SSH_CONTROL_PATH_DIR": "~/.ansible/cp",
    # As with a site (HostKeyPolicy.ansible_env): ssh, and Ansible's own socket names in that folder.
    "ANSIBLE_SSH_CONTROL_PATH": "",
    "ANSIBLE_TRANSPORT": "ssh",
    **EXECUTABLES_ENV,
}


def ansible_environment(host_keys: HostKeyPolicy | None = None) -> dict[str, str]:
    """The child's Ansible settings. `host_keys` is the site's policy (installer/adapters/ssh.py); without
    one (tools that make no connection), ssh's own defaults apply: ~/.ssh/known_hosts, unknown refused."""
    venv_bin = str(Path(sys.executable).parent)
    playbooks = data_dir("playbooks")
    return {
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_ROLES_PATH": str(playbooks / "roles"),
        # kfinstall's own modules (kfinstall.hosts), then the usual places; the `ansible` package's
        # collections are found on Python's path.
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
            [str(playbooks / "collections"), "~/.ansible/collections", "/usr/share/ansible/collections"]),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        # ANSIBLE_SSH_ARGS go first on ssh's command line, so they beat the inventory's ssh args (which
        # the config refuses when they conflict: installer/config/ssh.py) and ~/.ssh/config.
        **(host_keys.ansible_env() if host_keys else _SSH_DEFAULTS),
        "ANSIBLE_FORKS": "20",
        # site.yml is several plays: gather each host's facts once per run, not once per play.
        "ANSIBLE_GATHERING": "smart",
        # The same inventory plugins the config loader used: what validated is what runs.
        "ANSIBLE_INVENTORY_ENABLED": "yaml,ini",
    }


def _epoch(stamp: Any) -> float | None:
    """ansible-runner's ISO timestamps (controller clock) as seconds since the epoch."""
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp)).replace(tzinfo=timezone.utc).timestamp()


def _message(res: dict[str, Any]) -> str:
    text = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    return str(text).strip().splitlines()[0] if str(text).strip() else "failed without a message"


@dataclass(frozen=True)
class Checkpoint:
    """A call into kfinstall while the playbook runs: `act` gets the results so far when the task named
    `task` starts. Ansible's events reach kfinstall as the tasks run, so a task that waits for what `act`
    writes (preflight.yml's verdict) holds the run until kfinstall has judged the tasks before it."""

    task: str
    act: Callable[[PlaybookResult], None]


class _Collector:
    """Folds ansible-runner events into per-host counts, failures, diffs and facts."""

    def __init__(self, sink: EventSink | None, echo: bool = False, checkpoint: Checkpoint | None = None) -> None:
        self.sink = sink
        self.echo = echo  # Ansible's own output lines into kfinstall's log (with -v)
        self.checkpoint = checkpoint
        self.started = time.monotonic()
        self.hosts: dict[str, HostStats] = {}
        self.failures: list[Failure] = []
        self.diffs: list[dict[str, Any]] = []
        self.facts: dict[str, dict[str, Any]] = {}
        self.skipped: list[Skip] = []

    def __call__(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        kind = event.get("event", "")
        if kind in HOST_EVENTS and not data.get("ignore_errors"):
            self._count(kind, data)
        if self.echo and event.get("stdout"):
            LOG.info("%s", event["stdout"])
        if kind == "playbook_on_task_start" and self.checkpoint and data.get("task") == self.checkpoint.task:
            self.checkpoint.act(self.so_far("running"))
        if self.sink is not None:
            self.sink(
                {
                    "event": kind,
                    "host": data.get("host"),
                    "task": data.get("task"),
                    "changed": bool(data.get("res", {}).get("changed")),
                    "created": event.get("created"),
                }
            )
        return True

    def so_far(self, status: str, rc: int = 0) -> PlaybookResult:
        """The results collected until now (the lists and counts are the collector's own, still growing)."""
        return PlaybookResult(status=status, rc=rc, duration_s=time.monotonic() - self.started, hosts=self.hosts,
                              failures=self.failures, diffs=self.diffs, facts=self.facts, skipped=self.skipped)

    def _count(self, kind: str, data: dict[str, Any]) -> None:
        host, res = data.get("host", "?"), data.get("res", {}) or {}
        stats = self.hosts.setdefault(host, HostStats())
        if kind == "runner_on_ok":
            stats.ok += 1
            stats.changed += int(bool(res.get("changed")))
            if res.get("diff") and res.get("changed"):
                self.diffs.append({"host": host, "task": data.get("task"), "diff": res["diff"]})
            skip = skip_of(host, str(data.get("task", "?")), str(data.get("task_action", "")), res)
            if skip is not None:
                self.skipped.append(skip)
                LOG.info("%s skipped %s: %s", host, skip.step, skip.reason)
            if "ansible_facts" in res:
                facts = self.facts.setdefault(host, {})
                facts.update(res["ansible_facts"])
                if "ansible_date_time" in res["ansible_facts"]:
                    # When, by this machine's clock, the host read its clock: clock checks compare to this.
                    facts["kf_gathered_between"] = (_epoch(data.get("start")), _epoch(data.get("end")))
        elif kind == "runner_on_failed":
            stats.failed += 1
            self.failures.append(Failure(host, str(data.get("task", "?")), _message(res)))
        elif kind == "runner_on_unreachable":
            stats.unreachable += 1
            self.failures.append(Failure(host, str(data.get("task", "?")), UNREACHABLE + _message(res)))
        else:
            stats.skipped += 1


def _run(
    work_dir: Path,
    collector: _Collector,
    cancel: Callable[[], bool],
    facts_cache: Path | None,
    host_keys: HostKeyPolicy,
    **kwargs: Any,
) -> PlaybookResult:
    """One ansible-runner call with kfinstall's fixed settings, folded into a PlaybookResult.

    ansible-runner's artifacts go to a private scratch folder, not the run record: its `command`
    file holds the child's whole environment and its job events every module result. Only vetted
    files are copied into the record afterwards (`keep_artifacts`). On cancel, the call returns
    only once no process of ansible-playbook's tree is alive.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    stopping = _GroupWatch(cancel)
    with tempfile.TemporaryDirectory(prefix="kfinstall-ansible-") as scratch:
        runner = ansible_runner.interface.init_runner(
            private_data_dir=str(work_dir),
            artifact_dir=scratch,
            envvars=ansible_environment(host_keys),
            # ansible-runner sets Ansible's jsonfile fact cache itself (its env overrides ours) under the
            # run's artifacts; an absolute path here replaces that directory (it is os.path.join'ed).
            **({"fact_cache": str(facts_cache.resolve())} if facts_cache else {}),
            event_handler=collector,
            cancel_callback=stopping,
            # "running" comes after ansible-runner wrote artifacts/<ident>/command and before the child
            # starts: the environment leaves that file at once, so a killed kfinstall leaves none behind.
            status_handler=_sanitize_command_when_running,
            suppress_env_files=True,
            quiet=True,
            # How often the cancel flag is polled while ansible-playbook is quiet (ansible-runner: 5 s).
            settings={"pexpect_timeout": CANCEL_POLL_S},
            **kwargs,
        )
        runner.config.env = child_environment(runner.config.env, dict(os.environ))
        try:
            runner.run()
        finally:
            stopping.wait()
            keep_artifacts(
                Path(runner.config.artifact_dir), work_dir / "artifacts" / str(runner.config.ident), runner.config.env
            )
    result = collector.so_far(str(runner.status), int(runner.rc or 0))
    result.duration_s = time.monotonic() - start
    return result


class _GroupWatch:
    """ansible-runner's cancel callback: on a stop, kills ansible-playbook's whole process tree.

    ansible-runner's own kill reaches ansible-playbook's process group only, not the workers (each
    in a session of its own) nor their ssh; `wait` returns once none of them runs, so the lock is
    released only then (installer.interrupt).
    """

    def __init__(self, cancel: Callable[[], bool]) -> None:
        self.cancel = cancel
        self.stopped: Stopped | None = None

    def __call__(self) -> bool:
        if not self.cancel():
            return False
        if self.stopped is None:
            self.stopped = stop_descendants()
        return True

    def wait(self) -> None:
        left = self.stopped.wait() if self.stopped is not None else set()
        if left:
            raise PhaseFailed(f"ansible-playbook processes {sorted(left)} did not stop; stop them before a re-run")


# The child's environment and what the run record keeps of it ------------------------------------
#
# ansible-runner seeds the child's environment with the controller's whole environment and writes
# it into artifacts/<ident>/command: a cloud token or a password in the operator's shell ended up
# in every run record. The child gets only what Ansible and ssh need on this machine, plus the
# operator's own Ansible settings (ANSIBLE_*: ansible.cfg's documented overrides, the vault
# password file). The record keeps values only for names on RECORDED_ENV and for what kfinstall
# and ansible-runner set themselves; any other passed name is kept with its value withheld.

CANCEL_POLL_S = 1
CHILD_ENV = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "SSH_AUTH_SOCK",  # the operator's ssh-agent holds the hosts' key
    "KRB5CCNAME",  # GSSAPI (Kerberos) ssh logins
})
CHILD_ENV_PREFIXES = ("LC_", "ANSIBLE_")
RECORDED_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM"})
RECORDED_ENV_PREFIXES = ("LC_",)
# Set by ansible-runner itself (its callback plugin, fact cache and artifact paths).
RUNNER_ENV = frozenset({
    "ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_PLUGINS", "ANSIBLE_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION",
    "ANSIBLE_RETRY_FILES_ENABLED", "ANSIBLE_HOST_KEY_CHECKING", "AWX_ISOLATED_DATA_DIR", "RUNNER_OMIT_EVENTS",
    "RUNNER_ONLY_FAILED_EVENTS",
})
WITHHELD = "<withheld>"
# A withheld value is scrubbed from the kept text only from this length on: shorter ones ("1",
# "True") are settings, not credentials, and scrubbing them would garble the whole output.
MIN_WITHHELD_SCRUB = 8
# What ansible-runner writes that the record keeps: Ansible's output and the verdict. Not kept:
# job_events (every module result, including registered output such as a kubeadm join token;
# events.jsonl holds host, task and changed of each) and the scratch fact cache.
KEPT_ARTIFACTS = ("stdout", "stderr", "status", "rc")


def _passed(name: str) -> bool:
    return name in CHILD_ENV or name.startswith(CHILD_ENV_PREFIXES)


def child_environment(prepared: dict[str, str], inherited: dict[str, str]) -> dict[str, str]:
    """ansible-runner's prepared environment without the controller's variables the child does not need."""
    return {k: v for k, v in prepared.items() if k not in inherited or inherited[k] != v or _passed(k)}


@functools.cache
def _own_settings() -> frozenset[str]:
    """The names of kfinstall's own Ansible settings (their values are recorded): fixed for the process."""
    return frozenset(ansible_environment())


def _recorded(name: str) -> bool:
    return name in RECORDED_ENV or name.startswith(RECORDED_ENV_PREFIXES) or name in RUNNER_ENV or name in (
        _own_settings()
    )


def recorded_environment(env: dict[str, str]) -> dict[str, str]:
    """The child's environment as the run record may hold it: names always, values only when allowed."""
    # An empty value says nothing (kfinstall empties the operator's unset ssh args so no ansible.cfg applies).
    return {name: value if _recorded(name) or value == "" else WITHHELD for name, value in sorted(env.items())}


def _sanitize_command_when_running(status: dict[str, Any], runner_config: Any) -> None:
    if status.get("status") == "running":
        command = Path(runner_config.artifact_dir) / "command"
        _write_private(command, json.dumps(_recordable_command(command, runner_config.env, [])))


def _recordable_command(path: Path, env: dict[str, str], withheld: list[str]) -> dict[str, Any]:
    """ansible-runner's command file with the environment as the record may hold it."""
    try:
        command = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        command = {}
    if not isinstance(command, dict):
        command = {}
    command["env"] = recorded_environment(env)
    return dict(redact_data(command, withheld))


def keep_artifacts(scratch: Path, kept: Path, env: dict[str, str]) -> None:
    """Copy the vetted artifacts into the record: the command with a recordable environment and
    Ansible's output scrubbed of the withheld values the child had (it never saw the others)."""
    kept.mkdir(parents=True, exist_ok=True, mode=0o700)
    withheld = [v for k, v in env.items() if not _recorded(k) and len(v) >= MIN_WITHHELD_SCRUB]
    _write_private(kept / "command", json.dumps(_recordable_command(scratch / "command", env, withheld), indent=2))
    for name in KEPT_ARTIFACTS:
        source = scratch / name
        if source.is_file() and not source.is_symlink():
            _write_private(kept / name, redact(source.read_text(encoding="utf-8", errors="replace"), withheld))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


ALIAS_INVENTORY = "kf-inventory-groups.yml"  # beside the operator's inventory in every run (legacy group names)


def inventory_sources(inventory: Path | Inventory, work_dir: Path) -> list[str]:
    """The inventory sources of a run: the operator's file, and when it uses legacy group names that
    kfinstall accepts (installer/config/legacy_groups.py), a source of kfinstall's own in the run's
    work dir making each a child of its role group, so plays see the role groups Kubespray would.
    The operator's file is never rewritten."""
    if isinstance(inventory, Path):
        return [str(inventory.resolve())]
    assert inventory.path is not None  # a profile with hosts has an inventory file
    sources = [str(inventory.path.resolve())]
    if inventory.aliases:
        aliases: dict[str, tuple[str, ...]] = {}
        for legacy, modern in inventory.aliases:
            aliases[modern] = (*aliases.get(modern, ()), legacy)
        work_dir.mkdir(parents=True, exist_ok=True)
        groups = work_dir / ALIAS_INVENTORY
        _write_private(groups, alias_inventory(aliases))
        sources.append(str(groups.resolve()))
    return sources


def run_playbook(
    playbook: str,
    inventory: Path | Inventory,
    extravars: dict[str, Any],
    work_dir: Path,
    *,
    check: bool = False,
    limit: str | None = None,
    sink: EventSink | None = None,
    cancel: Callable[[], bool] = lambda: False,
    facts_cache: Path | None = None,
    host_keys: HostKeyPolicy,
    verbosity: int = 0,
    checkpoint: Checkpoint | None = None,
) -> PlaybookResult:
    """Run playbooks/<playbook> against `inventory`; never raises on task failure (see the result).

    `verbosity` is kfinstall's -v count: Ansible runs with as many -v, and its output lines go to
    kfinstall's log (stderr with -v; the run record's kfinstall.log).

    `host_keys` is the site's SSH host-key policy (HostKeyPolicy.of(cfg)): every connection checks keys
    against the site's known_hosts; the preflight's check_host_keys runs first so none runs a task
    on a host whose key changed.

    Runs that pass the same `facts_cache` directory share gathered facts: with smart gathering a host
    whose facts are cached is not gathered again, so the preflight's gathering serves the host phase
    (one setup call a host saved, ~2 s on the lab). Callers give a directory of the run's own, so no
    run reads facts from an earlier one.

    `checkpoint` calls into kfinstall when its task starts, with the results so far (Checkpoint): `up`'s
    preflight verdict, written for preflight.yml's waiting task (installer/phases/preflight.py HostChecks).
    """
    options = [*(["--check", "--diff"] if check else []), *(["--limit", limit] if limit else [])]
    work_dir.mkdir(parents=True, exist_ok=True)
    vars_file = write_unsafe_vars(work_dir, extravars)
    sources = inventory_sources(inventory, work_dir)
    LOG.info("ansible-playbook %s -i %s %s", playbook, " -i ".join(sources),
             " ".join([*options, "-v" * verbosity]).strip())
    try:
        return _run(
            work_dir,
            _Collector(sink, echo=verbosity > 0, checkpoint=checkpoint),
            cancel,
            facts_cache,
            host_keys,
            playbook=str(data_dir("playbooks") / playbook),
            inventory=sources if len(sources) > 1 else sources[0],
            cmdline=shlex.join([*options, "--extra-vars", f"@{vars_file}"]),
            verbosity=verbosity or None,
        )
    finally:
        vars_file.unlink(missing_ok=True)


# Extra vars are data, never templates --------------------------------------------------------------
#
# ansible-runner hands a dict of extra vars to ansible-playbook as `-e '{json}'`, and Ansible
# templates every string it loads that way: a value such as "{{ lookup('pipe', 'touch /tmp/x') }}"
# from kfinstall.yaml or --set ran on the controller. JSON cannot say "do not template"; Ansible's
# YAML loader can (`!unsafe`, documented and honoured by ansible-core 2.18 and 2.19 alike, and kept
# by everything derived from the value: set_fact, role defaults, dict2items). So every string,
# mapping keys included, goes into a YAML file with that tag, passed as `-e @file`.

EXTRA_VARS_PREFIX = "kf-extravars-"  # run_playbook's own file in the private data dir, removed after the run
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_STR_TAG = "tag:yaml.org,2002:str"


class _UnsafeDumper(yaml.SafeDumper):
    """Writes every string as `!unsafe '...'` (quoted by PyYAML, so any content stays one scalar)."""


def _represent_unsafe(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # ansible-core 2.19 reads `!unsafe '1.10'` as if unquoted (the float 1.1; '' as None, 'yes' as
    # True). Text that plain YAML would read as a number, bool, null or date cannot hold a template
    # (no braces), so it is written quoted and untagged: it stays the same string.
    if dumper.resolve(yaml.ScalarNode, value, (True, False)) != _STR_TAG:
        return dumper.represent_str(value)
    return dumper.represent_scalar("!unsafe", value, style="'")


_UnsafeDumper.add_representer(str, _represent_unsafe)


def unsafe_vars_yaml(extravars: dict[str, Any]) -> str:
    """The extra vars as YAML in which no string is ever templated by Ansible."""
    for name in extravars:
        if not isinstance(name, str) or not _VAR_NAME.match(name):
            raise ValueError(f"extra var name {name!r} is not an Ansible variable name")
    return yaml.dump(extravars, Dumper=_UnsafeDumper, sort_keys=True, allow_unicode=True, width=1 << 30)


def write_unsafe_vars(work_dir: Path, extravars: dict[str, Any]) -> Path:
    """A fresh 0600 file in the run's private directory (mkstemp: never an existing file or link)."""
    fd, name = tempfile.mkstemp(prefix=EXTRA_VARS_PREFIX, suffix=".yml", dir=work_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(unsafe_vars_yaml(extravars))
    return Path(name)
