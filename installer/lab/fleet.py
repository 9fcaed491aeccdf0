"""The podman side of the lab: the internal bridge network and the systemd+sshd host containers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from installer.errors import PhaseFailed, PreflightError
from installer.lab._proc import run, succeeds
from installer.lab.settings import LABEL, LabSettings

SPEC_LABEL = f"{LABEL}.spec"
# Paths given a non-overlay (volume) filesystem in each host:
# containerd's overlayfs snapshotter cannot stack on the container's overlay root, and
# nfs-ganesha's FSAL_VFS needs file handles (name_to_handle_at), which overlayfs refuses.
HOST_VOLUMES = ("/var/lib/containerd", "/srv")


@dataclass(frozen=True)
class HostSpec:
    """One podman lab host as `lab up` wants it."""

    name: str
    container: str
    address: str
    etc_hosts: tuple[tuple[str, str], ...]  # (name, address) pairs every host can resolve


@dataclass(frozen=True)
class ContainerState:
    name: str
    running: bool
    spec: str | None


# --- network ---------------------------------------------------------------------------------

def network_info(settings: LabSettings) -> dict[str, object] | None:
    proc = run(["podman", "network", "inspect", settings.network], check=False)
    if proc.returncode != 0:
        return None
    info: dict[str, object] = json.loads(proc.stdout)[0]
    return info


def ensure_network(settings: LabSettings) -> str:
    """Create the internal bridge (no NAT, no default route, no DNS) or check the existing one fits.

    Returns the bridge's interface name (podman 4.3 picks it: podmanN).
    """
    info = network_info(settings)
    if info is None:
        run(["podman", "network", "create", "--internal", "--disable-dns",
             "--subnet", str(settings.subnet), "--gateway", settings.gateway,
             "--label", settings.label, settings.network])
        info = network_info(settings)
        if info is None:
            raise PhaseFailed(f"podman network '{settings.network}' was created but cannot be inspected")
    subnets = [str(s.get("subnet")) for s in info.get("subnets", []) or []]  # type: ignore[attr-defined]
    if str(settings.subnet) not in subnets or not info.get("internal"):
        raise PreflightError(
            f"podman network '{settings.network}' exists with subnet {', '.join(subnets) or '?'} "
            f"(internal: {info.get('internal')}); the lab wants an internal {settings.subnet}. "
            "Run `kfinstall lab down` (or remove that network) first."
        )
    return str(info["network_interface"])


def bridge_name(settings: LabSettings) -> str | None:
    """The lab bridge's interface name while the podman network exists."""
    info = network_info(settings)
    return str(info["network_interface"]) if info else None


def remove_network(settings: LabSettings) -> bool:
    if network_info(settings) is None:
        return False
    run(["podman", "network", "rm", "-f", settings.network])
    return True


def link_exists(name: str) -> bool:
    return succeeds(["ip", "link", "show", name])


# --- containers ------------------------------------------------------------------------------

def lab_containers(settings: LabSettings) -> dict[str, ContainerState]:
    """Every container carrying this lab's label, by container name."""
    proc = run(["podman", "ps", "-a", "--filter", f"label={settings.label}", "--format", "json"])
    states = {}
    for entry in json.loads(proc.stdout or "[]"):
        name = entry["Names"][0]
        labels = entry.get("Labels") or {}
        running = entry.get("State") == "running" and _process_alive(int(entry.get("Pid") or 0), entry["Id"])
        states[name] = ContainerState(name, running, labels.get(SPEC_LABEL))
    return states


def _process_alive(pid: int, container_id: str) -> bool:
    """True when the container's init process really runs here.

    podman 4.3 believes its database: on a machine restored from a disk snapshot (CI machines
    are made that way) it lists as "running" containers whose processes never came back, and
    `podman ps --sync` does not correct it. Such a host never answers SSH, so `lab up` must
    re-create it. The PID must exist and sit in the container's own cgroup (a reused PID does not).
    """
    if pid <= 0:
        return False
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return container_id in cgroups


def any_lab_containers() -> bool:
    """True while a container of ANY lab exists (they share the podman drop-in and cgroup fix)."""
    proc = run(["podman", "ps", "-aq", "--filter", f"label={LABEL}"], check=False)
    return bool(proc.stdout.strip())


def image_id(settings: LabSettings) -> str:
    return run(["podman", "image", "inspect", "--format", "{{.Id}}", settings.host_image]).stdout.strip()


def spec_digest(spec: HostSpec, image: str) -> str:
    """Fingerprint of everything baked into a container at creation; a change means re-create."""
    data = json.dumps({"image": image, "address": spec.address, "hosts": spec.etc_hosts,
                       "volumes": HOST_VOLUMES}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def ensure_host(settings: LabSettings, spec: HostSpec, current: ContainerState | None, image: str,
                also_as_specified: Collection[str] = ()) -> bool:
    """Start the host unless it already runs as specified; True when it was (re)created.

    `also_as_specified`: other digests under which a running host is kept as it is (the same host in a lab
    of another size: its /etc/hosts lists the hosts it started with, see lifecycle._host_specs)."""
    digest = spec_digest(spec, image)
    if current is not None and current.running and (current.spec == digest or current.spec in also_as_specified):
        return False
    if current is not None:
        remove_containers([current.name])
    run(_run_argv(settings, spec, digest))
    return True


def _run_argv(settings: LabSettings, spec: HostSpec, digest: str) -> list[str]:
    argv = [
        "podman", "run", "--detach", "--name", spec.container, "--hostname", spec.name,
        "--label", settings.label, "--label", f"{SPEC_LABEL}={digest}",
        "--network", settings.network, "--ip", spec.address, "--dns=none",
        # privileged: gluster needs trusted.* xattrs and FUSE, containerd nested mounts, sysctl tasks
        "--systemd=always", "--privileged",
    ]
    for name, address in spec.etc_hosts:
        argv += ["--add-host", f"{name}:{address}"]
    for path in HOST_VOLUMES:
        argv += ["--volume", path]
    argv.append(settings.host_image)
    return argv


def remove_containers(names: list[str]) -> None:
    if names:
        run(["podman", "rm", "--force", "--volumes", "--time", "5", *names])


def remove_all_containers(settings: LabSettings) -> list[str]:
    names = sorted(lab_containers(settings))
    remove_containers(names)
    return names


def require_podman_works() -> None:
    if not succeeds(["podman", "info"], timeout=60):
        proc = run(["podman", "info"], check=False)
        raise PhaseFailed(f"podman does not work on this machine:\n{proc.stderr.strip()[-1500:]}")
