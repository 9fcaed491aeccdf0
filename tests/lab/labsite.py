"""LabSite: what the `lab_site` fixture (conftest.py) hands to lab-tier tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from installer.adapters.ssh import HostKeyPolicy
from installer.config.ssh import site_known_hosts
from installer.lab import LabSettings, LabStatus, lab_status
from installer.lab.ssh import ssh_argv

LAB_HOSTS = 3
VENV_BIN = Path(sys.executable).parent


def lab_known_hosts(site: Path) -> Path:
    """Where `lab up` pinned the lab machines' host keys: the site's state dir, as `up` checks them."""
    known_hosts = site_known_hosts(site)
    assert known_hosts is not None, f"{site}/kfinstall.yaml names no cluster"
    return known_hosts


def lab_ssh_env(site: Path) -> dict[str, str]:
    """Ansible settings for tools run by hand on the lab: keys checked strictly against the site's file."""
    return HostKeyPolicy("strict", lab_known_hosts(site)).ansible_env()


@dataclass(frozen=True)
class LabSite:
    """A running lab: where its inventory is and how to reach its hosts (see the module docstring)."""

    out_dir: Path
    work_dir: Path
    status: LabStatus
    ip_forward_before: str
    settings: LabSettings = field(default_factory=LabSettings)

    @property
    def inventory(self) -> Path:
        return self.out_dir / "hosts.yml"

    @property
    def ssh_key(self) -> Path:
        return self.work_dir / "ssh" / "id_ed25519"

    @property
    def repo_url(self) -> str:
        return self.status.repo_url

    @property
    def addresses(self) -> dict[str, str]:
        return {m.name: m.address for m in self.status.machines}

    @property
    def known_hosts(self) -> Path:
        return lab_known_hosts(self.out_dir)

    def ssh(self, host: str, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ssh_argv(self.ssh_key, self.addresses[host], command, self.known_hosts),
            capture_output=True, text=True, timeout=timeout, check=False,
        )

    def ansible(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self._run_tool("ansible", args, timeout)

    def ansible_playbook(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return self._run_tool("ansible-playbook", args, timeout)

    def _run_tool(self, tool: str, args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / tool), "-i", str(self.inventory), *args],
            capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, **lab_ssh_env(self.out_dir)},
        )


def vm_count(site: LabSite) -> int:
    """The VMs the lab runs now: a test that resizes the lab keeps those another test's lab_vm_site added."""
    return sum(1 for machine in lab_status(settings=site.settings).machines if machine.kind == "vm")
