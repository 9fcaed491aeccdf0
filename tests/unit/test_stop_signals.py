"""SIGTERM and SIGHUP stop `kfinstall up` like Ctrl-C (issue 11, item 11).

A real `kfinstall up` process runs a real ansible-playbook against hosts that accept the TCP
connection and never speak SSH (a listening socket nobody accepts on): ssh waits for the banner,
so ansible-playbook and its ssh children are certainly running when the signal arrives. Before
the fix kfinstall died at once: ansible-playbook (its own session) ran on as an orphan and the
lock was free, so a second `up` could start beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def _processes() -> list[tuple[int, int, int, str, str]]:
    """(pid, ppid, pgid, state, args) of every process, from ps (independent of kfinstall's /proc reader)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,pgid=,stat=,args="], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        pid, ppid, pgid, stat, *args = line.split(None, 4)
        rows.append((int(pid), int(ppid), int(pgid), stat, " ".join(args)))
    return rows


def _ours(kfinstall: subprocess.Popen[str], site: Path, ports: list[int]) -> list[str]:
    """Living processes of this run besides kfinstall: Ansible's (their arguments name the site; its
    workers are in sessions of their own, so neither group nor parent finds them all) and ssh to
    the test's ports."""
    marks = [str(site), *(f"Port={port}" for port in ports)]
    return [f"{pid} {args}" for pid, _, _, stat, args in _processes()
            if pid != kfinstall.pid and not stat.startswith("Z") and any(m in args for m in marks)]


def _wait_for_ansible(kfinstall: subprocess.Popen[str], site: Path, ports: list[int], timeout_s: float = 60,
                      ansible: bool = True) -> None:
    """Until ansible-playbook runs (with `ansible`; without, until it has not started) and ssh waits at
    each host the playbook targets."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and kfinstall.poll() is None:
        running = [line.split(None, 1)[1] for line in _ours(kfinstall, site, ports)]
        ssh_to = {port for port in ports for args in running if args.startswith("ssh ") and f"Port={port} " in args}
        if any("ansible-playbook" in args for args in running) == ansible and ssh_to == set(ports):
            return
        time.sleep(0.1)
    raise AssertionError(f"{'ansible-playbook with ' if ansible else ''}ssh to every host never appeared: "
                         f"{kfinstall.poll()=}")


def _wait_for_host_key_check(kfinstall: subprocess.Popen[str], site: Path, ports: list[int]) -> None:
    """Until the preflight's host-key check has an ssh waiting at each host (no Ansible yet)."""
    _wait_for_ansible(kfinstall, site, ports, ansible=False)


@pytest.fixture
def silent_ports() -> Iterator[list[int]]:
    """TCP ports on loopback that accept connections (kernel backlog) and never send an SSH banner."""
    servers = [socket.socket() for _ in range(3)]
    try:
        for server in servers:
            server.bind(("127.0.0.1", 0))
            server.listen(16)
        yield [server.getsockname()[1] for server in servers]
    finally:
        for server in servers:
            server.close()


BECOME_CANARY = "kfc-become-pass-while-running-8c1f"  # an operator's Ansible setting: passed, never written


@dataclass
class Stopped:
    returncode: int
    stderr: str
    lock_free_with_children: list[str]
    left: list[str]
    scratch_with_canary: list[str]
    seconds: float  # from the signal to kfinstall's exit


def _scratch_with_canary(site: Path) -> list[str]:
    """ansible-runner's private artifacts of this run (outside the record) that hold the canary."""
    found = []
    for command in Path(tempfile.gettempdir()).glob("kfinstall-ansible-*/*/command"):
        with contextlib.suppress(OSError):
            text = command.read_text()
            if str(site) in text and BECOME_CANARY in text:
                found.append(str(command))
    return found


def _site(make_site, ports: list[int], **cluster: object) -> Path:  # noqa: ANN001 - fixture
    hosts = {f"all.hosts.{h}": {"ansible_host": "127.0.0.1", "ansible_port": port, "ansible_timeout": 300}
             for h, port in zip(("cp1", "n1", "n2"), ports, strict=True)}
    # Host keys off (unless a test sets them): the host-key check's own ssh would wait at the silent
    # ports before Ansible starts.
    return make_site(cluster={"spec.ssh.hostKeyChecking": "off", **cluster}, hosts=hosts)


def _stop_while_ansible_runs(site: Path, ports: list[int], verb: list[str], signum: int, targets: int = 3,
                            ready=_wait_for_ansible,  # noqa: ANN001 - one of the waits above
                            bin_dir: Path | None = None) -> Stopped:
    """Run `kfinstall VERB`, send `signum` once `ready` says ssh waits at the first `targets` hosts (Ansible's
    by default), watch the lock until it exits."""
    lock = site / ".kfinstall" / "test" / "lock"
    kfinstall = subprocess.Popen(
        [sys.executable, "-m", "installer", *verb, "-i", str(site)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "ANSIBLE_BECOME_PASS": BECOME_CANARY,
             **({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"} if bin_dir else {})},
    )
    lock_free_with_children: list[str] = []
    err = ""
    try:
        ready(kfinstall, site, ports[:targets])
        # A kfinstall killed now (SIGKILL cannot be handled) leaves its scratch artifacts behind.
        scratch_with_canary = _scratch_with_canary(site)
        sent = time.monotonic()
        kfinstall.send_signal(signum)
        while kfinstall.poll() is None:
            with lock.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass
                else:  # the lock is free while kfinstall still runs: nothing of Ansible may be left
                    lock_free_with_children += _ours(kfinstall, site, ports)
                    fcntl.flock(handle, fcntl.LOCK_UN)
            assert time.monotonic() - sent < 60, "kfinstall did not stop"
            time.sleep(0.02)
        seconds = time.monotonic() - sent
        _, err = kfinstall.communicate(timeout=10)
    finally:  # on a failure, leave nothing of this test running
        if kfinstall.poll() is None:
            kfinstall.kill()
        kfinstall.wait(10)
        left = _ours(kfinstall, site, ports)
        for line in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
    with lock.open("a") as handle:  # free once kfinstall is gone
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return Stopped(kfinstall.returncode, err, lock_free_with_children, left, scratch_with_canary, seconds)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_stops_ansible_keeps_the_record_and_holds_the_lock(
    make_site, silent_ports: list[int], signum: int, code: int
) -> None:
    site = _site(make_site, silent_ports)
    stopped = _stop_while_ansible_runs(site, silent_ports, ["up", "--only", "hosts", "--yes"], signum)
    assert stopped.returncode == code, stopped.stderr
    assert stopped.lock_free_with_children == []
    assert stopped.left == []
    assert stopped.scratch_with_canary == []
    assert "interrupted during preflight" in stopped.stderr
    state = site / ".kfinstall" / "test"
    summary = json.loads(next(state.glob("runs/*/summary.json")).read_text())
    assert summary["result"] == "interrupted" and summary["phases"][0]["status"] == "Interrupted"
    assert json.loads((state / "state.json").read_text())["history"][-1]["result"] == "interrupted"


def test_sigterm_stops_a_cluster_backup_the_same_way(make_site, silent_ports: list[int]) -> None:
    """`backup --cluster` runs playbooks/backup.yml under the lock too (it passed a cancel that never fired)."""
    # Without JupyterHub there is no hub database to dump, so no kubeconfig is needed: Ansible runs first.
    # (TensorBoard goes too: it is served only behind JupyterHub's login.)
    site = _site(make_site, silent_ports, **{"spec.components.jupyterhub.enabled": False,
                                             "spec.components.tensorboard.enabled": False})
    stopped = _stop_while_ansible_runs(site, silent_ports, ["backup", "--cluster"], signal.SIGTERM, targets=1)
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.lock_free_with_children == [] and stopped.left == []
    assert "cluster backup failed (canceled" in stopped.stderr


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_ends_the_host_key_check_at_once(
    make_site, silent_ports: list[int], signum: int, code: int
) -> None:
    """The preflight's host-key check (accept-new) runs its own ssh to every host before any playbook; at the
    silent ports each waits for a banner (ssh's ConnectTimeout, 10 s, then the check's 30 s). A stop must end
    them at once, not after they time out, and the lock stays held until they are gone."""
    site = _site(make_site, silent_ports, **{"spec.ssh.hostKeyChecking": "accept-new"})
    stopped = _stop_while_ansible_runs(site, silent_ports, ["up", "--only", "hosts", "--yes"], signum,
                                       ready=_wait_for_host_key_check)
    assert stopped.returncode == code, stopped.stderr
    assert stopped.seconds < 3, f"kfinstall took {stopped.seconds:.1f} s to stop"
    assert stopped.lock_free_with_children == [] and stopped.left == []
    assert "stopped while ssh ran" in stopped.stderr
    state = site / ".kfinstall" / "test"
    summary = json.loads(next(state.glob("runs/*/summary.json")).read_text())
    assert summary["result"] == "interrupted" and summary["phases"][0] == {**summary["phases"][0],
                                                                      "name": "preflight", "status": "Interrupted"}
    run = state / "runs" / summary["runId"]
    # No playbook started: neither preflight.yml alone (ansible-preflight/) nor up.yml (ansible/).
    assert not (run / "ansible-preflight").exists() and not (run / "ansible").exists()


def test_sigterm_during_the_upgrades_first_facts_playbook(make_site, silent_ports: list[int], tmp_path: Path) -> None:
    """`upgrade` reads the hosts' facts with a playbook before its first hop; that run was outside the
    signal handling: a TERM killed kfinstall at once, ansible-playbook ran on and the lock was free."""
    from installer.state import State, write_state

    # A Kubernetes hop only: a platform hop's programs (Pulumi) are checked before the run, and are not here.
    site = _site(make_site, silent_ports, **{"spec.channel": "26.03.1", "spec.kubernetes.version": "1.36"})
    state = site / ".kfinstall" / "test"
    write_state(state, State(cluster="test", installed_channel="26.03.1", kubernetes_version="1.35"))
    (state / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    _stand_in(tmp_path / "bin", "kubectl", HANGING_KUBECTL)  # found on PATH; not reached before the playbook
    stopped = _stop_while_ansible_runs(site, silent_ports, ["upgrade", "--to", "26.03.1", "--yes"], signal.SIGTERM,
                                       targets=1, bin_dir=tmp_path / "bin")
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.lock_free_with_children == [] and stopped.left == []
    assert "interrupted during facts before hop 1" in stopped.stderr
    assert len(list(state.glob("runs/*/route.json"))) == 1  # the run's record is kept


def test_exit_codes_follow_the_shell_convention() -> None:
    from installer.interrupt import exit_code_for

    assert [exit_code_for(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == [130, 143, 129]


def test_signal_handlers_are_restored_after_the_run() -> None:
    import threading

    from installer.errors import Interrupted
    from installer.interrupt import interrupt_sets

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    flag = threading.Event()
    with pytest.raises(Interrupted) as caught, interrupt_sets(flag):
        signal.raise_signal(signal.SIGTERM)
        assert flag.is_set()
        raise Interrupted("stopped")
    assert caught.value.exit_code == 143
    assert {s: signal.getsignal(s) for s in before} == before


# Stand-ins for the tools the platform phase, verify and down start (no cluster and no Pulumi CLI here) ----


def _stand_in(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text(text)
    tool.chmod(0o755)


def _stop_with_stand_ins(site: Path, bin_dir: Path, verb: list[str], signum: int, ready: str,
                         timeout_s: float = 30, ready_file: Path | None = None,
                         group: bool = False) -> tuple[Stopped, float]:
    """Run `kfinstall VERB` with `bin_dir` first on PATH, send `signum` once a process whose arguments
    hold `ready` runs (and `ready_file` exists), watch the lock until it exits; (what happened, seconds
    to the signal)."""
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    lock = site / ".kfinstall" / "test" / "lock"
    started = time.monotonic()
    kfinstall = subprocess.Popen([sys.executable, "-m", "installer", *verb, "-i", str(site)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    marks = [str(site), str(bin_dir)]

    def ours() -> list[str]:
        return [f"{pid} {args}" for pid, _, _, stat, args in _processes()
                if pid != kfinstall.pid and not stat.startswith("Z") and any(m in args for m in marks)]

    lock_free_with_children: list[str] = []
    try:
        while not (any(ready in line for line in ours()) and (ready_file is None or ready_file.exists())):
            assert kfinstall.poll() is None, kfinstall.communicate()
            assert time.monotonic() - started < timeout_s, f"{ready} never ran"
            time.sleep(0.05)
        sent = time.monotonic()
        if group:  # as `timeout` or systemd would: kfinstall and every child in its group
            os.killpg(kfinstall.pid, signum)
        else:
            kfinstall.send_signal(signum)
        while kfinstall.poll() is None:
            with lock.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass
                else:
                    lock_free_with_children += ours()
                    fcntl.flock(handle, fcntl.LOCK_UN)
            assert time.monotonic() - sent < 60, "kfinstall did not stop"
            time.sleep(0.02)
        seconds = time.monotonic() - sent
        _, err = kfinstall.communicate(timeout=10)
    finally:
        if kfinstall.poll() is None:
            kfinstall.kill()
        kfinstall.wait(10)
        left = ours()
        for line in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
    return Stopped(kfinstall.returncode, err, lock_free_with_children, left, [], seconds), sent - started


# A kubectl that hangs (an API server that never answers), in a child of its own too: both must go.
HANGING_KUBECTL = """#!/bin/bash
exec -a "kubectl-child $*" sleep 30 &
wait
"""


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_ends_verify_and_its_kubectl_at_once(
    make_site, tmp_path: Path, signum: int, code: int
) -> None:
    """`up --only verify` (under the lock) with kubectl waiting on the API server: the stop kills kubectl's
    whole group at once (not after its 120 s timeout), holds the lock until then, keeps the record."""
    site = make_site()
    state = site / ".kfinstall" / "test"
    state.mkdir(parents=True)
    (state / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    _stand_in(tmp_path / "bin", "kubectl", HANGING_KUBECTL)
    stopped, _ = _stop_with_stand_ins(site, tmp_path / "bin", ["up", "--only", "verify", "--yes"], signum,
                                      ready="kubectl-child")
    assert stopped.returncode == code, stopped.stderr
    assert stopped.seconds < 3, f"kfinstall took {stopped.seconds:.1f} s to stop"
    assert stopped.lock_free_with_children == [] and stopped.left == []
    summary = json.loads(next(state.glob("runs/*/summary.json")).read_text())
    assert summary["result"] == "interrupted"
    assert [(p["name"], p["status"]) for p in summary["phases"]] == [("preflight", "ok"), ("verify", "Interrupted")]


def test_sigterm_ends_a_standalone_verify_and_its_kubectl(make_site, tmp_path: Path) -> None:
    """`kfinstall verify` takes no lock, but a TERM must not leave its kubectl running either."""
    site = make_site()
    (site / ".kfinstall" / "test").mkdir(parents=True)
    (site / ".kfinstall" / "test" / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    _stand_in(tmp_path / "bin", "kubectl", HANGING_KUBECTL)
    stopped, _ = _stop_with_stand_ins(site, tmp_path / "bin", ["verify"], signal.SIGTERM, ready="kubectl-child")
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.seconds < 3 and stopped.left == []


# A pulumi CLI that behaves as the real one does on Ctrl-C (pkg/backend/display: the first SIGINT cancels the
# update cleanly, "^C received; cancelling. If you would like to terminate immediately, press ^C again.",
# saves the state and exits non-zero; a second ends it at once; newer CLIs treat SIGTERM the same way).
# It logs every signal it gets. `stack output` prints {}; every other command succeeds silently.
STAND_IN_PULUMI = """#!{python}
import json, pathlib, signal, sys, time
args = sys.argv[1:]
log = pathlib.Path({log!r})
if "version" in args:
    print("v{version}")
    sys.exit(0)
if "whoami" in args:
    print(json.dumps({{"user": "test", "url": "file://", "organizations": []}}) if "--json" in args else "test")
    sys.exit(0)
if "stack" in args and "output" in args:  # a new stack has no outputs (read before up and preview)
    print("{{}}")
    sys.exit(0)
if not ({{"up", "destroy", "preview"}} & set(args)):
    sys.exit(0)
def cancel(signum, frame):
    name = signal.Signals(signum).name
    with log.open("a") as out:
        out.write(name + "\\n")
    print(("^C" if name == "SIGINT" else name) + " received; cancelling.", flush=True)
    time.sleep(1.5)  # the operations in flight finish, the state is saved
    print("error: update canceled", file=sys.stderr)
    sys.exit(255)
signal.signal(signal.SIGINT, cancel)
signal.signal(signal.SIGTERM, cancel)
with log.open("a") as out:
    out.write("running\\n")
print("Destroying (test):", flush=True)
time.sleep(30)
"""


def _pulumi_site(make_site, tmp_path: Path) -> tuple[Path, Path, Path]:  # noqa: ANN001 - fixture
    """(site, stand-ins' folder, the stand-in pulumi's signal log)."""
    from importlib import metadata

    site = make_site()
    state = site / ".kfinstall" / "test"
    state.mkdir(parents=True)
    (state / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    log = tmp_path / "pulumi.log"
    bin_dir = tmp_path / "bin"
    _stand_in(bin_dir, "pulumi", STAND_IN_PULUMI.format(python=sys.executable, log=str(log),
                                                         version=metadata.version("pulumi")))
    _stand_in(bin_dir, "pulumi-resource-kubernetes", "#!/bin/sh\nexit 1\n")
    return site, bin_dir, log


def test_sigterm_cancels_pulumi_cleanly_during_down(make_site, tmp_path: Path) -> None:
    """`down` (Pulumi destroy under the lock): a TERM reaches the pulumi CLI as its Ctrl-C, kfinstall
    waits for it to save its state and exit, holds the lock until then, and exits 143."""
    site, bin_dir, log = _pulumi_site(make_site, tmp_path)
    stopped, _ = _stop_with_stand_ins(site, bin_dir, ["down", "--purge-data", "--yes"], signal.SIGTERM,
                                      ready=" destroy ", timeout_s=60, ready_file=log)
    assert stopped.returncode == 143, stopped.stderr
    assert log.read_text().splitlines() == ["running", "SIGINT"]  # cancelled by its own SIGINT, not killed
    assert stopped.seconds < 5, f"kfinstall took {stopped.seconds:.1f} s to stop"
    assert stopped.lock_free_with_children == [] and stopped.left == []
    assert "cancelled by the stop signal" in stopped.stderr


def test_a_sigterm_to_the_whole_group_reaches_pulumi_once(make_site, tmp_path: Path) -> None:
    """`timeout` or systemd signal the whole process group: pulumi got the TERM itself and says it is
    cancelling; a SIGINT from kfinstall on top would be its second signal, "terminate immediately"."""
    site, bin_dir, log = _pulumi_site(make_site, tmp_path)
    stopped, _ = _stop_with_stand_ins(site, bin_dir, ["down", "--purge-data", "--yes"], signal.SIGTERM,
                                      ready=" destroy ", timeout_s=60, ready_file=log, group=True)
    assert stopped.returncode == 143, stopped.stderr
    assert log.read_text().splitlines() == ["running", "SIGTERM"]
    assert stopped.lock_free_with_children == [] and stopped.left == []


def test_sighup_cancels_the_preview_of_plan(make_site, tmp_path: Path) -> None:
    """`plan` runs a Pulumi preview when the CLI is there; a HUP must not leave it running."""
    site, bin_dir, log = _pulumi_site(make_site, tmp_path)
    stopped, _ = _stop_with_stand_ins(site, bin_dir, ["plan"], signal.SIGHUP, ready=" preview ", timeout_s=60,
                                      ready_file=log)
    assert stopped.returncode == 129, stopped.stderr
    assert log.read_text().splitlines() == ["running", "SIGINT"]
    assert stopped.seconds < 5 and stopped.left == []
