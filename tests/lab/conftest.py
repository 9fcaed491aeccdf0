"""Fixtures of the lab tier: real podman hosts (and optionally qemu VMs) on this machine.

`lab_site` (session scope) brings up 3 lab hosts ONCE for the whole lab tier and tears them down
at the end of the session. Host-role tests reuse it:

    @pytest.mark.lab
    def test_containerd_runs(lab_site):
        lab_site.ansible_playbook("playbooks/site.yml")          # or your own runner
        assert lab_site.ssh("h1", "systemctl is-active containerd").stdout.strip() == "active"

What it gives (a `LabSite`):
  * `inventory`  - Path of the written hosts.yml (groups kube_control_plane, kube_node, gpu,
                   nfs_server, gluster; h1..h3 at 10.89.7.11-13; all.vars.kf_lab_apt_repo)
  * `out_dir`    - the directory holding hosts.yml, kfinstall.yaml (profile lab) and secrets.yml
  * `work_dir`, `ssh_key`, `repo_url`, `addresses` ({"h1": "10.89.7.11", ...}), `status` (LabStatus)
  * `ssh(host, command)` - run a shell command on a host as root, returns CompletedProcess
  * `ansible(*args)` / `ansible_playbook(*args)` - the venv's ansible commands with `-i inventory`

`lab_vm_site` (session scope) adds 1 qemu TCG VM (vm1 at 10.89.7.101, group lab_vm)
to the same lab, for kernel-level tests (in-kernel NFS, modprobe); about 40 s to boot. The hosts are
not re-created when VMs are added.

Skips (reason printed by `-ra`) when not root or when podman cannot be installed. Environment:
  KFINSTALL_LAB_WORK_DIR  work dir (default /var/lib/kfinstall-lab, so the image cache is shared)
  KFINSTALL_LAB_KEEP=1    leave the lab running after the session (for debugging)
  KFINSTALL_LAB_NAME, KFINSTALL_LAB_SUBNET
                          run the session on a SECOND lab beside the default one (e.g. name
                          "kfitest", subnet 10.89.8.0/24; work dir /var/lib/kfinstall-lab-<name>),
                          so a test session does not tear down a lab someone else is using
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from labsite import LAB_HOSTS, LabSite

from installer.errors import PreflightError
from installer.lab import LabSettings, LabStatus, lab_down, lab_up
from installer.lab.hostprep import read_sysctls
from installer.lab.settings import DEFAULT_WORK_DIR, LAB_NAME

LAB_VMS = 1  # one VM serves and mounts kernel NFS (test_roles_kernel_nfs.py): each costs a core


def lab_settings_from_env() -> LabSettings:
    name = os.environ.get("KFINSTALL_LAB_NAME")
    if not name or name == LAB_NAME:
        return LabSettings(work_dir=Path(os.environ.get("KFINSTALL_LAB_WORK_DIR", str(DEFAULT_WORK_DIR))))
    subnet = os.environ.get("KFINSTALL_LAB_SUBNET")
    if not subnet:
        pytest.exit("KFINSTALL_LAB_NAME needs KFINSTALL_LAB_SUBNET (e.g. 10.89.8.0/24)", returncode=4)
    work_dir = os.environ.get("KFINSTALL_LAB_WORK_DIR", f"{DEFAULT_WORK_DIR}-{name}")
    return LabSettings(work_dir=Path(work_dir), subnet=ipaddress.IPv4Network(subnet), name=name)


def _bring_up(out_dir: Path, vms: int, settings: LabSettings) -> LabStatus:
    if os.geteuid() != 0:
        pytest.skip("lab tier: needs root (rootful podman, iptables, sysctls); run the tests as root")
    try:
        return lab_up(LAB_HOSTS, vms, out=out_dir, settings=settings, report=print)
    except PreflightError as exc:
        if "could not install" in exc.message:
            pytest.skip(f"lab tier: podman cannot be installed here: {exc.message.splitlines()[0]}")
        raise


@pytest.fixture(scope="session")
def lab_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSite]:
    """3 podman lab hosts for the whole session; `lab down` at the end (see the module docstring)."""
    ip_forward_before = read_sysctls().get("net.ipv4.ip_forward", "0")
    settings = lab_settings_from_env()
    out_dir = tmp_path_factory.mktemp("lab-site")
    status = _bring_up(out_dir, 0, settings)
    yield LabSite(out_dir, settings.work_dir, status, ip_forward_before, settings)
    if os.environ.get("KFINSTALL_LAB_KEEP") != "1":
        lab_down(settings=settings, report=print)


@pytest.fixture(scope="session")
def lab_vm_site(lab_site: LabSite) -> LabSite:
    """The same lab plus LAB_VMS qemu TCG VMs (vm1... in group lab_vm); torn down with lab_site."""
    status = _bring_up(lab_site.out_dir, LAB_VMS, lab_site.settings)
    return LabSite(lab_site.out_dir, lab_site.work_dir, status, lab_site.ip_forward_before, lab_site.settings)
