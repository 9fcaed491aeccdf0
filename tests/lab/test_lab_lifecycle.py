"""`kfinstall lab`: real hosts come up reachable and sealed off, re-runs are no-ops, down leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from click.testing import CliRunner
from labsite import LAB_HOSTS, LabSite, vm_count

from installer.cli.lab import lab
from installer.lab import lab_down, lab_status, lab_up
from installer.lab.hostprep import read_sysctls

pytestmark = pytest.mark.lab
# Measured at about 1.5 s on a 2-core machine; generous for a loaded CI runner.
NOOP_UP_LIMIT_S = 15.0


def _container_ids(site: LabSite) -> list[str]:
    proc = subprocess.run(["podman", "ps", "-q", "--no-trunc", "--filter", f"label={site.settings.label}"],
                          capture_output=True, text=True, check=True)
    return sorted(proc.stdout.split())


def test_every_host_answers_ansible_ping_over_ssh_with_the_written_inventory(lab_site: LabSite) -> None:
    proc = lab_site.ansible("all", "-m", "ansible.builtin.ping")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in (f"h{i}" for i in range(1, LAB_HOSTS + 1)):
        assert f"{host} | SUCCESS" in proc.stdout


def test_hosts_have_no_route_off_the_bridge(lab_site: LabSite) -> None:
    for host in lab_site.addresses:
        routes = lab_site.ssh(host, "ip -4 route show")
        assert routes.returncode == 0 and "default" not in routes.stdout, routes.stdout
        off_bridge = lab_site.ssh(host, "ip route get 1.1.1.1")
        assert off_bridge.returncode != 0, off_bridge.stdout
        assert "unreachable" in off_bridge.stderr.lower()


def test_apt_sees_only_the_lab_repo(lab_site: LabSite) -> None:
    update = lab_site.ssh("h1", "apt-get -q update")
    assert update.returncode == 0, update.stdout + update.stderr
    sources = [line for line in update.stdout.splitlines() if "http" in line]
    assert sources and all(lab_site.repo_url in line for line in sources), update.stdout
    policy = lab_site.ssh("h1", "apt-cache policy socat")
    assert "Candidate: (none)" not in policy.stdout, policy.stdout
    assert lab_site.repo_url in policy.stdout


def test_second_up_is_a_fast_noop(lab_site: LabSite) -> None:
    before = _container_ids(lab_site)
    started = time.monotonic()
    status = lab_up(LAB_HOSTS, vm_count(lab_site), out=lab_site.out_dir, settings=lab_site.settings)
    elapsed = time.monotonic() - started
    assert status.up
    assert _container_ids(lab_site) == before, "a no-op lab up must not re-create hosts"
    assert elapsed < NOOP_UP_LIMIT_S, f"no-op lab up took {elapsed:.1f} s"


def test_status_json_reports_every_host_running(lab_site: LabSite) -> None:
    if not lab_site.settings.is_default:
        pytest.skip("`kfinstall lab status` reports the default lab; this session runs a named one")
    result = CliRunner().invoke(lab, ["status", "--work-dir", str(lab_site.work_dir), "--output", "json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["up"] is True
    assert status["network"] == lab_site.settings.network and status["repo_serving"] is True
    hosts = {m["name"]: m for m in status["machines"] if m["kind"] == "container"}
    assert sorted(hosts) == [f"h{i}" for i in range(1, LAB_HOSTS + 1)]
    assert all(m["state"] == "running" and m["ssh_open"] for m in hosts.values())


def test_down_leaves_nothing_and_restores_ip_forward(lab_site: LabSite) -> None:
    """Runs lab down for real, checks what is left, then brings the session's lab back up."""
    vms = vm_count(lab_site)
    bridge = lab_status(settings=lab_site.settings).bridge
    assert bridge
    lab_down(settings=lab_site.settings)
    try:
        assert _container_ids(lab_site) == []
        network = lab_site.settings.network
        assert subprocess.run(["podman", "network", "exists", network], check=False).returncode != 0
        assert read_sysctls()["net.ipv4.ip_forward"] == lab_site.ip_forward_before
        forward_rules = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True)
        assert f"-i {bridge} " not in forward_rules.stdout, forward_rules.stdout
        status = lab_status(settings=lab_site.settings)
        assert not status.repo_serving and not status.network_exists and status.bridge is None
        assert not lab_site.inventory.exists()
    finally:
        lab_up(LAB_HOSTS, vms, out=lab_site.out_dir, settings=lab_site.settings)


def _kill_behind_podmans_back(container: str) -> None:
    """SIGKILL the container's conmon, then its init: podman's database still says "running".

    The same state a machine restored from a disk snapshot shows (the CI machine of stop 17 did:
    `lab up` trusted "running", never re-created h1 and h2, and waited 90 s for SSH that never came).
    """
    inspect = subprocess.run(["podman", "inspect", "--format", "{{.State.ConmonPid}} {{.State.Pid}}", container],
                             capture_output=True, text=True, check=True)
    conmon, init = (int(p) for p in inspect.stdout.split())
    subprocess.run(["kill", "-KILL", str(conmon)], check=True)
    subprocess.run(["kill", "-KILL", str(init)], check=True)
    for _ in range(50):
        if not os.path.exists(f"/proc/{init}"):
            break
        time.sleep(0.1)


def test_up_re_creates_a_host_podman_lists_as_running_whose_process_is_gone(lab_site: LabSite) -> None:
    container = lab_site.settings.container_name("h3")
    _kill_behind_podmans_back(container)
    listed = subprocess.run(["podman", "ps", "--filter", f"name={container}", "--format", "{{.State}}"],
                            capture_output=True, text=True, check=True)
    assert "running" in listed.stdout.lower() or "up" in listed.stdout.lower(), listed.stdout
    lab_up(LAB_HOSTS, vm_count(lab_site), out=lab_site.out_dir, settings=lab_site.settings)
    assert lab_site.ssh("h3", "true").returncode == 0
