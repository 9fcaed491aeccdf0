"""Where the lab keeps its files and how its network is laid out: one frozen value passed everywhere."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from installer.errors import ConfigError

DEFAULT_WORK_DIR = Path("/var/lib/kfinstall-lab")
DEFAULT_SUBNET = "10.89.7.0/24"
DEFAULT_REPO_PORT = 8080
# The default lab's name: its podman network, the prefix of its container names and VM taps.
LAB_NAME = "kfilab"
NETWORK_NAME = LAB_NAME
# Every container, network and image a lab makes carries this label (value: see LabSettings.label_value).
LABEL = "kfinstall.lab"
CONTAINER_PREFIX = f"{LAB_NAME}-"
BASE_IMAGE = "localhost/kfinstall-lab-rootfs:bookworm"
HOST_IMAGE = "localhost/kfinstall-lab-host:bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# Host N gets the (10+N)th address, VM N the (100+N)th: up to 89 hosts before they would meet.
HOST_ADDRESS_OFFSET = 10
VM_ADDRESS_OFFSET = 100
MAX_HOSTS = VM_ADDRESS_OFFSET - HOST_ADDRESS_OFFSET - 1
MAX_VMS = 50
# Short enough that "<name>-tap<N>" fits Linux's 15-character interface names.
_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_SMALLEST_PREFIX = 24  # VM addresses reach .150


@dataclass(frozen=True)
class LabSettings:
    """The lab's name, work directory and network; every path, address and podman name derives from these.

    The default lab (name "kfilab", 10.89.7.0/24, /var/lib/kfinstall-lab) is what `kfinstall lab`
    manages. Another name, subnet and work dir give a second lab beside it (e.g. a test session
    while someone else uses the default lab); labs share only the podman drop-in and cgroup fix.
    """

    work_dir: Path = DEFAULT_WORK_DIR
    subnet: ipaddress.IPv4Network = field(default_factory=lambda: ipaddress.IPv4Network(DEFAULT_SUBNET))
    repo_port: int = DEFAULT_REPO_PORT
    name: str = LAB_NAME

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.match(self.name):
            raise ConfigError(f"lab name '{self.name}' must be 1-8 lowercase letters or digits, starting with a letter")
        if self.subnet.prefixlen > _SMALLEST_PREFIX:
            raise ConfigError(f"lab subnet {self.subnet} is too small: use a /{_SMALLEST_PREFIX} or larger")

    @property
    def is_default(self) -> bool:
        return self.name == LAB_NAME

    @property
    def network(self) -> str:
        return self.name

    @property
    def label_value(self) -> str:
        # "1" for the default lab: labs made before labs had names carry that value.
        return "1" if self.is_default else self.name

    @property
    def label(self) -> str:
        return f"{LABEL}={self.label_value}"

    def container_name(self, host: str) -> str:
        return f"{self.name}-{host}"

    def tap_name(self, vm_index: int) -> str:
        return f"{self.name}-tap{vm_index}"

    @property
    def base_image(self) -> str:
        return BASE_IMAGE if self.is_default else f"localhost/kfinstall-lab-rootfs:{self.name}"

    @property
    def host_image(self) -> str:
        return HOST_IMAGE if self.is_default else f"localhost/kfinstall-lab-host:{self.name}"

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
    """Container name of a host of the default lab."""
    return f"{CONTAINER_PREFIX}{host}"
