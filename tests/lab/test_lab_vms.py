"""qemu TCG VMs in the lab: on the same bridge, sealed off like the hosts, with a real kernel."""

from __future__ import annotations

import pytest
from labsite import LabSite

pytestmark = [pytest.mark.lab, pytest.mark.lab_vm]


def test_vms_are_in_lab_vm_and_answer_ansible_ping(lab_vm_site: LabSite) -> None:
    proc = lab_vm_site.ansible("lab_vm", "-m", "ansible.builtin.ping")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "vm1 | SUCCESS" in proc.stdout


def test_vms_have_no_route_off_the_bridge_but_reach_the_hosts_and_repo(lab_vm_site: LabSite) -> None:
    off_bridge = lab_vm_site.ssh("vm1", "ip route get 1.1.1.1")
    assert off_bridge.returncode != 0 and "unreachable" in off_bridge.stderr.lower()
    assert lab_vm_site.ssh("vm1", "ping -c1 -W2 h1").returncode == 0
    update = lab_vm_site.ssh("vm1", "apt-get -q update")
    assert update.returncode == 0 and lab_vm_site.repo_url in update.stdout


def test_vms_run_their_own_kernel_with_modules(lab_vm_site: LabSite) -> None:
    loaded = lab_vm_site.ssh("vm1", "modprobe nfsd && grep -w nfsd /proc/filesystems")
    assert loaded.returncode == 0, loaded.stderr
