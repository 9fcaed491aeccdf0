"""qemu TCG VMs on the lab bridge, for what containers cannot do: in-kernel NFS, modprobe, global sysctls.

The VM disk is the lab rootfs plus Debian's cloud kernel, made into an ext4 image with
`mkfs.ext4 -d` (no loop device needed) and converted to qcow2; each VM boots a copy-on-write
overlay of it directly from -kernel/-initrd, its address given on the kernel command line.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from installer.errors import PhaseFailed
from installer.lab._proc import run, succeeds
from installer.lab.image import image_recipe, make_apt_lists_stale
from installer.lab.settings import MIRROR, SUITE, LabSettings
from installer.lab.ssh import ssh_run

VM_REVISION = 2
VM_STAMP = ".kfinstall-vm"
VM_DISK_SIZE = "6G"
VM_MEMORY_MB = 1024
# qemu's default TCG translation cache is 1 GiB per VM; 256 MB keeps each VM near 650 MB RSS.
TCG_CACHE_MB = 256
VM_KERNEL_PACKAGES = ("linux-image-cloud-amd64", "initramfs-tools", "e2fsprogs")
CHROOT_MOUNTS = ("proc", "sys", "dev")


@dataclass(frozen=True)
class VmSpec:
    name: str
    index: int
    address: str
    tap: str


def _vm_recipe(settings: LabSettings) -> str:
    return hashlib.sha256(f"{image_recipe(settings)}:{VM_REVISION}".encode()).hexdigest()[:16]


def vm_image_current(settings: LabSettings) -> bool:
    stamp = settings.vm_dir / VM_STAMP
    return (
        stamp.exists()
        and stamp.read_text().strip() == _vm_recipe(settings)
        and (settings.vm_dir / "base.qcow2").exists()
    )


def build_vm_image(settings: LabSettings) -> None:
    """Rootfs copy + cloud kernel (from the Debian mirror, at build time only) -> base.qcow2."""
    vm_dir = settings.vm_dir
    vm_dir.mkdir(parents=True, exist_ok=True)
    (vm_dir / VM_STAMP).unlink(missing_ok=True)
    vroot = vm_dir / "root"
    log = settings.log_dir / "vm-build.log"
    if vroot.exists():
        shutil.rmtree(vroot)
    run(["cp", "-a", settings.rootfs_dir, vroot], log=log)
    try:
        _install_kernel(vroot, log)
        _configure_vm_root(vroot)
        shutil.copy(next(vroot.glob("boot/vmlinuz-*")), vm_dir / "vmlinuz")
        shutil.copy(next(vroot.glob("boot/initrd.img-*")), vm_dir / "initrd.img")
        raw = vm_dir / "base.raw"
        raw.unlink(missing_ok=True)
        run(["mkfs.ext4", "-q", "-F", "-L", "kfiroot", "-d", vroot, raw, VM_DISK_SIZE], log=log)
        run(["qemu-img", "convert", "-O", "qcow2", raw, vm_dir / "base.qcow2"], log=log)
        raw.unlink()
    finally:
        shutil.rmtree(vroot, ignore_errors=True)
    (vm_dir / VM_STAMP).write_text(_vm_recipe(settings) + "\n")


def _install_kernel(vroot: Path, log: Path) -> None:
    (vroot / "etc/apt/sources.list").write_text(f"deb {MIRROR} {SUITE} main\n")
    shutil.copy("/etc/resolv.conf", vroot / "etc/resolv.conf")
    mounted: list[Path] = []
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for name in CHROOT_MOUNTS:
            target = vroot / name
            run(["mount", "--bind", f"/{name}", target])
            mounted.append(target)
        run(["chroot", vroot, "apt-get", "-q", "update"], env=env, log=log)
        run(["chroot", vroot, "apt-get", "-q", "-y", "install", "--no-install-recommends",
             *VM_KERNEL_PACKAGES], env=env, log=log)
    finally:
        for target in reversed(mounted):
            run(["umount", target], check=False)
    (vroot / "etc/apt/sources.list").unlink()
    for path in (vroot / "var/cache/apt/archives").glob("*.deb"):
        path.unlink()
    make_apt_lists_stale(vroot)


def _configure_vm_root(vroot: Path) -> None:
    (vroot / "etc/resolv.conf").write_text("# kfinstall lab: no DNS server; names come from /etc/hosts\n")
    (vroot / "etc/fstab").write_text("/dev/vda / ext4 defaults,noatime 0 1\n")
    # systemd-network-generator turns the kernel's ip= argument into a networkd config.
    wants = {
        "multi-user.target.wants": "systemd-networkd.service",
        "sysinit.target.wants": "systemd-network-generator.service",
    }
    for target, unit in wants.items():
        link = vroot / "etc/systemd/system" / target / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(f"/lib/systemd/system/{unit}")
    wait_online = vroot / "etc/systemd/system/systemd-networkd-wait-online.service"
    wait_online.unlink(missing_ok=True)
    wait_online.symlink_to("/dev/null")


# --- running VMs ---------------------------------------------------------------------------------

def _pid_file(settings: LabSettings, name: str) -> Path:
    return settings.run_dir / f"{name}.pid"


def _overlay(settings: LabSettings, name: str) -> Path:
    return settings.vm_dir / f"{name}.qcow2"


def vm_pid(settings: LabSettings, name: str) -> int | None:
    """PID of OUR qemu for this VM (its command line must name the VM's overlay disk)."""
    path = _pid_file(settings, name)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    return pid if "qemu-system" in cmdline and str(_overlay(settings, name)) in cmdline else None


def start_vm(settings: LabSettings, spec: VmSpec, bridge: str) -> int:
    """Boot the VM on the lab bridge unless our qemu for it already runs; returns its PID."""
    pid = vm_pid(settings, spec.name)
    if pid is not None:
        return pid
    _ensure_tap(spec.tap, bridge)
    overlay = _overlay(settings, spec.name)
    overlay.unlink(missing_ok=True)
    base = settings.vm_dir / "base.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", overlay])
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    run(_qemu_argv(settings, spec), log=settings.log_dir / f"{spec.name}.qemu.log")
    pid = vm_pid(settings, spec.name)
    if pid is None:
        raise PhaseFailed(f"qemu for {spec.name} did not start; see {settings.log_dir}")
    return pid


def _ensure_tap(tap: str, bridge: str) -> None:
    if not succeeds(["ip", "link", "show", tap]):
        run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
    run(["ip", "link", "set", tap, "master", bridge, "up"])


def _mac(settings: LabSettings, spec: VmSpec) -> str:
    octets = str(spec.address).split(".")
    return f"52:54:00:6b:{int(octets[2]):02x}:{int(octets[3]):02x}"


def _qemu_argv(settings: LabSettings, spec: VmSpec) -> list[str]:
    vm_dir = settings.vm_dir
    # No gateway in ip=: the VM gets only the on-link route, like the containers.
    kernel_ip = f"ip={spec.address}:::{settings.subnet.netmask}:{spec.name}:eth0:off"
    return [
        "qemu-system-x86_64", "-machine", "pc", "-accel", f"tcg,tb-size={TCG_CACHE_MB}",
        "-cpu", "max", "-smp", "1", "-m", str(VM_MEMORY_MB),
        "-kernel", str(vm_dir / "vmlinuz"), "-initrd", str(vm_dir / "initrd.img"),
        "-append", f"root=/dev/vda rw console=ttyS0 net.ifnames=0 {kernel_ip} systemd.hostname={spec.name} quiet",
        "-drive", f"file={_overlay(settings, spec.name)},if=virtio,format=qcow2,cache=unsafe",
        "-netdev", f"tap,id=n0,ifname={spec.tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=n0,mac={_mac(settings, spec)}",
        "-display", "none", "-monitor", "none",
        "-serial", f"file:{settings.log_dir / (spec.name + '.console')}",
        "-daemonize", "-pidfile", str(_pid_file(settings, spec.name)),
    ]


def configure_vm(settings: LabSettings, spec: VmSpec, etc_hosts: list[tuple[str, str]]) -> None:
    """After boot: lab names in /etc/hosts and the lab repo as the only apt source."""
    hosts_lines = "".join(f"{address} {name}\\n" for name, address in etc_hosts)
    script = (
        "grep -q '# kfinstall-lab' /etc/hosts || "
        f"printf '# kfinstall-lab\\n{hosts_lines}' >> /etc/hosts; "
        f"printf 'deb [trusted=yes] {settings.repo_url} ./\\n' > /etc/apt/sources.list.d/kfinstall-lab.list"
    )
    proc = ssh_run(settings.ssh_key, spec.address, script)
    if proc.returncode != 0:
        raise PhaseFailed(f"configuring {spec.name} over SSH failed: {proc.stderr.strip()}")


def request_poweroff(settings: LabSettings, name: str, address: str) -> None:
    """Ask the guest to shut down cleanly (does not wait); harmless when it is not running."""
    if vm_pid(settings, name) is None:
        return
    # a hung guest must not stop the teardown: stop_vm ends qemu by PID after a grace period
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        ssh_run(settings.ssh_key, address, "systemctl poweroff --no-block", timeout=10)


def stop_vm(settings: LabSettings, name: str, grace: float = 15.0) -> int | None:
    """Wait up to `grace` seconds for the guest to power off, then end our qemu by PID.

    Removes the VM's overlay disk. Call request_poweroff first for a clean shutdown.
    """
    pid = vm_pid(settings, name)
    if pid is not None:
        _wait_exit(pid, limit=grace)
        if vm_pid(settings, name) is not None:
            os.kill(pid, 15)
            _wait_exit(pid, limit=5)
    _pid_file(settings, name).unlink(missing_ok=True)
    _overlay(settings, name).unlink(missing_ok=True)
    return pid


def remove_tap(tap: str) -> None:
    if succeeds(["ip", "link", "show", tap]):
        run(["ip", "link", "del", tap], check=False)


def _wait_exit(pid: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
