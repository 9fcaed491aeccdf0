"""The lab's run record (what `lab up` changed, so `lab down` can undo exactly that) and its status."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from installer.lab.settings import LabSettings

RECORD_FILE = "state.json"


@dataclass
class LabRecord:
    """Written by `lab up` after each change to this machine; read by `lab down` and `lab status`."""

    hosts: int = 0
    vms: int = 0
    subnet: str = ""
    repo_port: int = 0
    out_dir: str | None = None
    created_podman_dropin: bool = False
    mounted_cgroups: list[str] = field(default_factory=list)
    guard_bridge: str | None = None
    repo_pid: int | None = None
    vm_pids: dict[str, int] = field(default_factory=dict)
    created_taps: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, settings: LabSettings) -> LabRecord:
        path = settings.run_dir / RECORD_FILE
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, settings: LabSettings) -> None:
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        path = settings.run_dir / RECORD_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        tmp.replace(path)


@dataclass(frozen=True)
class MachineStatus:
    """One lab machine: a podman host or a qemu VM."""

    name: str
    kind: str  # "container" or "vm"
    address: str
    state: str  # "running", "stopped" or "missing"
    ssh_open: bool


@dataclass(frozen=True)
class LabStatus:
    """What `lab status` reports and `lab up` returns."""

    work_dir: str
    network: str
    subnet: str
    bridge: str | None
    network_exists: bool
    repo_url: str
    repo_serving: bool
    image_present: bool
    machines: list[MachineStatus]
    inventory: str | None
    config: str | None

    @property
    def up(self) -> bool:
        """True when the network exists, the repo answers and every machine is running with SSH open."""
        return (
            self.network_exists
            and self.repo_serving
            and bool(self.machines)
            and all(m.state == "running" and m.ssh_open for m in self.machines)
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["up"] = self.up
        return data
