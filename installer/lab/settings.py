"""Where the lab keeps its files and how its network is laid out: one frozen value passed everywhere."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_WORK_DIR = Path("/var/lib/kfinstall-lab")
DEFAULT_SUBNET = "10.89.7.0/24"
DEFAULT_REPO_PORT = 8080
NETWORK_NAME = "kfilab"
# Every container, network and image the lab makes carries this label; `lab down` removes by it.
LABEL = "kfinstall.lab"
CONTAINER_PREFIX = "kfilab-"
BASE_IMAGE = "localhost/kfinstall-lab-rootfs:bookworm"
HOST_IMAGE = "localhost/kfinstall-lab-host:bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Host N gets the (10+N)th address, VM N the (100+N)th: up to 89 hosts before they would meet.
HOST_ADDRESS_OFFSET = 10
VM_ADDRESS_OFFSET = 100
MAX_HOSTS = VM_ADDRESS_OFFSET - HOST_ADDRESS_OFFSET - 1
MAX_VMS = 50


@dataclass(frozen=True)
class LabSettings:
    """The lab's work directory and network; every path and address derives from these."""

    work_dir: Path = DEFAULT_WORK_DIR
    subnet: ipaddress.IPv4Network = field(default_factory=lambda: ipaddress.IPv4Network(DEFAULT_SUBNET))
    repo_port: int = DEFAULT_REPO_PORT

    @property
    def gateway(self) -> str:
        return str(self.subnet[1])

    @property
    def repo_url(self) -> str:
        return f"http://{self.gateway}:{self.repo_port}"

    def host_ip(self, index: int) -> str:
        """Address of host h<index> (1-based)."""
        return str(self.subnet[HOST_ADDRESS_OFFSET + index])

    def vm_ip(self, index: int) -> str:
        """Address of VM vm<index> (1-based)."""
        return str(self.subnet[VM_ADDRESS_OFFSET + index])

    # --- paths under the work directory ---
    @property
    def cache_dir(self) -> Path:
        return self.work_dir / "cache"

    @property
    def rootfs_dir(self) -> Path:
        return self.work_dir / "rootfs"

    @property
    def repo_dir(self) -> Path:
        return self.work_dir / "repo"

    @property
    def image_context_dir(self) -> Path:
        return self.work_dir / "image"

    @property
    def vm_dir(self) -> Path:
        return self.work_dir / "vm"

    @property
    def run_dir(self) -> Path:
        """Records of the running lab (PIDs, snapshot, state); emptied by `lab down`."""
        return self.work_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def ssh_key(self) -> Path:
        return self.work_dir / "ssh" / "id_ed25519"


def host_name(index: int) -> str:
    return f"h{index}"


def vm_name(index: int) -> str:
    return f"vm{index}"


def container_name(host: str) -> str:
    return f"{CONTAINER_PREFIX}{host}"
