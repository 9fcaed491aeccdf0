"""SSH host keys on real lab hosts (issue #11 item 5) and the kubeconfig's mode (item 10).

Reuses the session lab: `lab up` has pinned its hosts' real keys in the lab site's known_hosts, so
every helper here (lab_site.ssh, ansible) already checks keys strictly. Each test costs seconds: the
host-key check refuses before any playbook runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from labsite import LabSite, lab_ssh_env
from rich.console import Console

from installer.cli import cli
from installer.config.load import load
from installer.errors import PreflightError
from installer.phases import RunContext, preflight
from installer.runs import RunRecord

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _fingerprints(known_hosts: Path, address: str) -> set[str]:
    out = subprocess.run(["ssh-keygen", "-l", "-F", address, "-f", str(known_hosts)],
                         capture_output=True, text=True, check=True).stdout
    return {" ".join(line.split()[-2:]) for line in out.splitlines() if not line.startswith("#")}


def _preflight(site: Path, state_dir: Path) -> tuple[str, Path]:
    cfg = load(site, state_dir=state_dir)
    record = RunRecord.start(cfg, "test preflight")
    buffer = io.StringIO()
    preflight.run(RunContext(cfg=cfg, record=record, console=Console(file=buffer, width=400),
                             phases=("preflight", "hosts")))
    return buffer.getvalue(), record.path


def test_lab_up_pins_its_hosts_real_keys(lab_site: LabSite) -> None:
    known_hosts = lab_site.known_hosts
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    for host in ("h1", "h2", "h3"):
        container = lab_site.settings.container_name(host)
        real = subprocess.run(["podman", "exec", container, "ssh-keygen", "-l", "-f",
                               "/etc/ssh/ssh_host_ed25519_key.pub"], capture_output=True, text=True, check=True)
        assert real.stdout.split()[1] in " ".join(_fingerprints(known_hosts, lab_site.addresses[host]))
    # The inventory carries no host-key options of its own: checking is kfinstall's.
    assert "StrictHostKeyChecking" not in lab_site.inventory.read_text()
    assert "UserKnownHostsFile" not in lab_site.inventory.read_text()


def test_first_contact_pins_each_key_and_prints_its_fingerprint(lab_site: LabSite, tmp_path: Path) -> None:
    output, record = _preflight(lab_site.out_dir, tmp_path / "state")
    pinned = tmp_path / "state" / "known_hosts"
    for host in ("h1", "h2", "h3"):
        address = lab_site.addresses[host]
        # What was pinned over the network is the key `lab up` read from inside the host.
        assert _fingerprints(pinned, address) <= _fingerprints(lab_site.known_hosts, address)
        line = next(line for line in output.splitlines() if f"of {host} on first contact" in line)
        assert all(fp in line for fp in _fingerprints(pinned, address)), output
    assert sorted(json.loads((record / "host-keys.json").read_text())["pinned"]) == ["h1", "h2", "h3"]
    again, record = _preflight(lab_site.out_dir, tmp_path / "state")
    assert "first contact" not in again
    assert sorted(json.loads((record / "host-keys.json").read_text())["verified"]) == ["h1", "h2", "h3"]


def _new_host_key(lab_site: LabSite, host: str) -> None:
    """Move the host's keys aside; sshd's ExecStartPre (ssh-keygen -A) makes new ones on restart."""
    done = lab_site.ssh(host, "rm -rf /root/kf-hostkeys && mkdir /root/kf-hostkeys && "
                              "mv /etc/ssh/ssh_host_* /root/kf-hostkeys/ && systemctl restart ssh")
    assert done.returncode == 0, done.stderr


def _restore_host_key(lab_site: LabSite, host: str) -> None:
    # Not over SSH: the key it would check is the very one this test changed.
    container = lab_site.settings.container_name(host)
    subprocess.run(["podman", "exec", container, "sh", "-c",
                    "mv -f /root/kf-hostkeys/* /etc/ssh/ && rmdir /root/kf-hostkeys && systemctl restart ssh"],
                   check=True, capture_output=True, timeout=120)


def test_a_changed_key_stops_up_before_any_task_on_any_host(lab_site: LabSite) -> None:
    state = lab_site.out_dir / ".kfinstall" / "lab"
    runs_before = set((state / "runs").iterdir()) if (state / "runs").exists() else set()
    _new_host_key(lab_site, "h3")
    try:
        result = CliRunner().invoke(cli, ["up", "-i", str(lab_site.out_dir), "--only", "hosts", "--yes"])
    finally:
        _restore_host_key(lab_site, "h3")
    assert isinstance(result.exception, PreflightError) and result.exception.exit_code == 3, result.output
    message = result.exception.message
    assert "h3: its SSH host key CHANGED" in message and "ssh-keygen -R" in message
    assert "h1:" not in message and "h2:" not in message
    (record,) = set((state / "runs").iterdir()) - runs_before
    # No playbook started: neither the preflight's (it gathers facts) nor the host phase's.
    assert not (record / "ansible-preflight").exists() and not (record / "ansible").exists()
    assert not (record / "events.jsonl").exists()
    assert lab_site.ssh("h3", "true").returncode == 0  # the pinned key is back


def test_strict_refuses_a_host_that_is_not_pinned(lab_site: LabSite, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [
        "up", "-i", str(lab_site.out_dir), "--state-dir", str(tmp_path / "state"), "--only", "hosts", "--yes",
        "--set", "spec.ssh.hostKeyChecking=strict",
    ])
    assert isinstance(result.exception, PreflightError) and result.exception.exit_code == 3, result.output
    message = result.exception.message
    for host in ("h1", "h2", "h3"):
        assert f"{host}: no SSH host key is pinned for {lab_site.addresses[host]}" in message
    assert "ssh-keyscan" in message
    assert (tmp_path / "state" / "known_hosts").read_text() == ""  # strict pins nothing


# Item 10: the admin kubeconfig is private from its first byte ------------------------------------

PLAY = """\
- name: Fetch a kubeconfig the way the kubernetes role does
  hosts: h1
  become: true
  gather_facts: false
  tasks:
    - name: A stand-in admin.conf on the control plane
      ansible.builtin.copy:
        content: "{canary}\\n"
        dest: /root/kf-admin.conf
        mode: "0600"
    - name: The role's kubeconfig tasks
      ansible.builtin.include_role:
        name: kubernetes
        tasks_from: 0060-kubeconfig.yml
      vars:
        _kubernetes_admin_conf: /root/kf-admin.conf
        _kubernetes_first_control_plane: h1
        kubernetes_state_dir: "{state}"
"""


class _ModeWatch(threading.Thread):
    """Every mode the file has while the playbook runs (polled every millisecond)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.modes, self.stop = path, set(), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                self.modes.add(stat.S_IMODE(os.lstat(self.path).st_mode))
            time.sleep(0.001)


def test_the_kubeconfig_is_never_readable_by_others(lab_site: LabSite, tmp_path: Path) -> None:
    canary = f"kubeconfig-canary-{time.monotonic_ns()}"
    state = tmp_path / "state"
    playbook = tmp_path / "fetch.yml"
    playbook.write_text(PLAY.format(canary=canary, state=state))
    watch = _ModeWatch(state / "kubeconfig")
    watch.start()
    old_umask = os.umask(0o022)  # the usual umask: a file Ansible creates itself would be 0644
    try:
        run = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(lab_site.inventory), str(playbook)],
            env={**os.environ, **lab_ssh_env(lab_site.out_dir), "ANSIBLE_ROLES_PATH": str(REPO / "playbooks/roles")},
            capture_output=True, text=True, timeout=600, check=False, cwd=REPO,
        )
    finally:
        os.umask(old_umask)
        watch.stop.set()
        watch.join()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert (state / "kubeconfig").read_text() == canary + "\n"
    assert watch.modes == {0o600}, f"modes seen: {sorted(oct(m) for m in watch.modes)}"
