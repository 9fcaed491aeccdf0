"""Changes to THIS machine that the lab needs, each recorded so `lab down` can undo it.

Why each one exists (measured on a Debian 12 machine without systemd as PID 1, hybrid cgroups,
no CAP_SYS_RESOURCE):
* podman asks crun for nofile=1048576 and podman lowers its own hard nproc to 32768, so crun's
  setrlimit fails ("Operation not permitted") unless containers.conf asks for what we can grant;
* no systemd on the host: podman must use cgroupfs and log events to a file;
* crun refuses hybrid cgroups while the cgroup2 tree still offers a controller (hugetlb here):
  binding that controller to a v1 hierarchy takes it off cgroup2;
* netavark switches net.ipv4.ip_forward on whenever a container starts, even on an internal
  network: we switch it back and add a FORWARD guard so nothing leaves the lab bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
from collections.abc import Callable
from pathlib import Path

from installer.errors import PreflightError
from installer.lab._proc import run, succeeds
from installer.lab.settings import DEFAULT_WORK_DIR

PODMAN_DROPIN = Path("/etc/containers/containers.conf.d/50-kfinstall-lab.conf")
CGROUP2_CONTROLLERS = Path("/sys/fs/cgroup/unified/cgroup.controllers")
PROC_SYS = Path("/proc/sys")
SYSCTL_SNAPSHOT = "host-sysctl.json"
# Records shared by every lab on this machine (the last `lab down` undoes what they list);
# in /run because a reboot resets sysctls and mounts too.
SHARED_STATE_DIR = Path("/run/kfinstall-lab")
SHARED_SNAPSHOT = SHARED_STATE_DIR / SYSCTL_SNAPSHOT
HOST_CHANGES = SHARED_STATE_DIR / "host-changes.json"
# Host kernel settings worth restoring: a --privileged lab host writing a global sysctl changes
# THIS kernel. Counters and random values change on their own and are never written back.
SNAPSHOT_ROOTS = ("net/ipv4/ip_forward", "vm", "fs", "kernel")
VOLATILE_SYSCTL_PREFIXES = (
    "fs.dentry-state", "fs.file-nr", "fs.inode-nr", "fs.inode-state", "fs.quota",
    "kernel.random", "kernel.ns_last_pid", "kernel.pty.nr", "kernel.tainted", "vm.stat",
    "vm.drop_caches", "fs.binfmt_misc",
)
# podman itself caps its own hard nproc at this value, so asking for more always fails.
PODMAN_NPROC_CAP = 32768

FLEET_PACKAGES = (
    "podman", "crun", "conmon", "netavark", "iptables", "debootstrap",
    "apt-utils", "openssh-client", "tar",
)
VM_PACKAGES = ("qemu-system-x86", "qemu-utils", "e2fsprogs")


def require_root() -> None:
    if os.geteuid() != 0:
        raise PreflightError(
            "the lab needs root: it runs rootful podman, changes iptables and sysctls, and serves "
            "an apt repository on the lab bridge; run `sudo kfinstall lab ...`"
        )


def require_debian() -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        raise PreflightError("the lab needs a Debian-family machine (apt-get and dpkg-query not found)")


def missing_packages(names: tuple[str, ...]) -> list[str]:
    """The Debian packages among `names` that are not installed (one dpkg-query call)."""
    proc = run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *names], check=False)
    installed = {
        line.split()[0] for line in proc.stdout.splitlines() if line.endswith("install ok installed")
    }
    return [n for n in names if n not in installed]


def install_packages(names: list[str], log: Path) -> None:
    """apt-get install the given packages without recommends; PreflightError if apt cannot."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["apt-get", "-q", "update"], env=env, log=log)
        run(["apt-get", "-q", "-y", "install", "--no-install-recommends", *names], env=env, log=log)
    except Exception as exc:  # apt failing here means the machine cannot host the lab
        raise PreflightError(f"could not install {' '.join(names)}: {exc}") from exc


def note_host_changes(*, created_dropin: bool = False, mounted_cgroups: list[str] | None = None) -> None:
    """Add to the machine-wide list of podman fixes the last `lab down` must undo."""
    created, cgroups = load_host_changes()
    created = created or created_dropin
    cgroups = sorted(set(cgroups) | set(mounted_cgroups or []))
    SHARED_STATE_DIR.mkdir(parents=True, exist_ok=True)
    HOST_CHANGES.write_text(json.dumps({"created_podman_dropin": created, "mounted_cgroups": cgroups}))


def load_host_changes() -> tuple[bool, list[str]]:
    if not HOST_CHANGES.exists():
        return False, []
    data = json.loads(HOST_CHANGES.read_text())
    return bool(data.get("created_podman_dropin")), list(data.get("mounted_cgroups", []))


def clear_host_changes() -> None:
    HOST_CHANGES.unlink(missing_ok=True)


def podman_dropin_text() -> str:
    """containers.conf settings podman needs on this machine (see the module docstring)."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = PODMAN_NPROC_CAP if nproc_hard == resource.RLIM_INFINITY else min(nproc_hard, PODMAN_NPROC_CAP)
    nofile_text = "unlimited" if nofile == resource.RLIM_INFINITY else str(nofile)
    return (
        "# Written by `kfinstall lab up`; removed by `kfinstall lab down`.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile_text}:{nofile_text}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )


def ensure_podman_dropin() -> bool:
    """Write the drop-in if it differs; True when this call created the file."""
    wanted = podman_dropin_text()
    existed = PODMAN_DROPIN.exists()
    if existed and PODMAN_DROPIN.read_text() == wanted:
        return False
    PODMAN_DROPIN.parent.mkdir(parents=True, exist_ok=True)
    PODMAN_DROPIN.write_text(wanted)
    return not existed


def remove_podman_dropin() -> None:
    PODMAN_DROPIN.unlink(missing_ok=True)


def move_cgroup2_controllers_to_v1() -> list[str]:
    """Bind every controller the hybrid cgroup2 tree still offers to a v1 hierarchy; returns those mounted."""
    if not CGROUP2_CONTROLLERS.exists():
        return []
    mounted = []
    for controller in CGROUP2_CONTROLLERS.read_text().split():
        target = Path("/sys/fs/cgroup") / controller
        target.mkdir(exist_ok=True)
        if succeeds(["mountpoint", "-q", target]):
            continue
        run(["mount", "-t", "cgroup", "-o", controller, "cgroup", target])
        mounted.append(controller)
    return mounted


def unmount_cgroup_controllers(controllers: list[str]) -> None:
    """Undo move_cgroup2_controllers_to_v1; a hierarchy still in use stays mounted."""
    for controller in controllers:
        target = Path("/sys/fs/cgroup") / controller
        _remove_empty_child_cgroups(target)
        if succeeds(["umount", target]):
            with contextlib.suppress(OSError):
                target.rmdir()


def _remove_empty_child_cgroups(root: Path) -> None:
    if not root.is_dir():
        return
    for child in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()


# --- sysctls ---------------------------------------------------------------------------------

def _sysctl_key(path: Path) -> str:
    return ".".join(path.relative_to(PROC_SYS).parts)


def read_sysctls() -> dict[str, str]:
    """Current values of the host settings worth restoring (unreadable ones are skipped)."""
    values: dict[str, str] = {}
    for root in SNAPSHOT_ROOTS:
        base = PROC_SYS / root
        files = [base] if base.is_file() else (p for p in base.rglob("*") if p.is_file())
        for path in files:
            try:
                values[_sysctl_key(path)] = path.read_text().strip()
            except OSError:
                continue
    return values


def _snapshot_source(run_dir: Path) -> Path | None:
    """The machine-wide snapshot, else the one a lab made before snapshots were machine-wide."""
    legacy_default = DEFAULT_WORK_DIR / "run" / SYSCTL_SNAPSHOT
    for candidate in (SHARED_SNAPSHOT, run_dir / SYSCTL_SNAPSHOT, legacy_default):
        if candidate.exists():
            return candidate
    return None


def snapshot_sysctls(run_dir: Path) -> None:
    """Remember the host's settings once, before the first lab on this machine changes anything.

    Machine-wide (not per lab): a second lab started beside a running one would otherwise record
    the values the first lab's privileged hosts had already written.
    """
    if SHARED_SNAPSHOT.exists():
        return
    SHARED_SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    source = _snapshot_source(run_dir)
    text = source.read_text() if source else json.dumps(read_sysctls(), indent=1, sort_keys=True)
    SHARED_SNAPSHOT.write_text(text)


def snapshot_value(run_dir: Path, key: str) -> str | None:
    source = _snapshot_source(run_dir)
    if source is None:
        return None
    value = json.loads(source.read_text()).get(key)
    return str(value) if value is not None else None


def write_sysctl(key: str, value: str) -> bool:
    """Set one sysctl; False when the kernel refuses."""
    try:
        (PROC_SYS / key.replace(".", "/")).write_text(value)
    except OSError:
        return False
    return True


def restore_ip_forward(run_dir: Path) -> None:
    """netavark turned ip_forward on; put back what the host had before the lab."""
    before = snapshot_value(run_dir, "net.ipv4.ip_forward") or "0"
    write_sysctl("net.ipv4.ip_forward", before)


def restore_sysctls(run_dir: Path, report: Callable[[str], None]) -> None:
    """Write back every changed, non-volatile setting from the snapshot, then drop the snapshot.

    Call only when no lab runs on this machine any more: the snapshot is shared by all labs.
    """
    source = _snapshot_source(run_dir)
    if source is None:
        return
    before: dict[str, str] = json.loads(source.read_text())
    now = read_sysctls()
    for key, value in sorted(before.items()):
        if key.startswith(VOLATILE_SYSCTL_PREFIXES) or now.get(key) == value:
            continue
        if write_sysctl(key, value):
            report(f"restored {key} = {value}")
    SHARED_SNAPSHOT.unlink(missing_ok=True)
    (run_dir / SYSCTL_SNAPSHOT).unlink(missing_ok=True)


# --- firewall guard ---------------------------------------------------------------------------

def _guard_rule(bridge: str) -> list[str]:
    # `! -o` matters: a plain `-i <br> -j DROP` also drops bridged host-to-host traffic when
    # br_netfilter is active (gluster peer probe then hangs).
    return ["FORWARD", "-i", bridge, "!", "-o", bridge, "-j", "DROP"]


def ensure_forward_guard(bridge: str) -> None:
    rule = _guard_rule(bridge)
    if not succeeds(["iptables", "-C", *rule]):
        run(["iptables", "-I", *rule])


def remove_forward_guard(bridge: str) -> None:
    rule = _guard_rule(bridge)
    while succeeds(["iptables", "-C", *rule]):
        run(["iptables", "-D", *rule])
