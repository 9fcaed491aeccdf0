"""Local rehearsal hosts: rootful podman containers running systemd and sshd (plus optional qemu
TCG VMs) on an internal bridge, with packages from a local apt repository. Used by
`kfinstall lab` and by the lab test tier.
"""

from installer.lab.lifecycle import lab_down, lab_status, lab_up
from installer.lab.settings import DEFAULT_WORK_DIR, LabSettings
from installer.lab.state import LabStatus, MachineStatus

__all__ = ["DEFAULT_WORK_DIR", "LabSettings", "LabStatus", "MachineStatus", "lab_down", "lab_status", "lab_up"]
