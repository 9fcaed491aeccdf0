"""The lab's Debian image: a debootstrap rootfs (cached), customised for SSH as root, imported into podman."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

from installer.errors import PhaseFailed
from installer.lab._proc import run
from installer.lab.settings import LABEL, MIRROR, SUITE, LabSettings

DEBOOTSTRAP_INCLUDES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt", "iproute2",
    "iputils-ping", "sudo", "ca-certificates", "procps", "less", "kmod", "udev", "netbase",
)
# Bump when customize_rootfs changes, so existing images are rebuilt.
CUSTOMIZE_REVISION = 2
ROOTFS_MARKER = ".kfinstall-rootfs"
RECIPE_LABEL = f"{LABEL}.recipe"
# Units that only cost time or fail in a lab host.
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer",
    "dpkg-db-backup.timer", "getty@tty1.service", "e2scrub_reap.service", "systemd-pstore.service",
)
SSH_HOSTKEY_DROPIN = """\
# Each lab host generates its own host keys at boot. ExecStartPre is reset because the stock
# `sshd -t` check runs first and fails while no host key exists.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""
SSHD_LAB_CONFIG = """\
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
"""


def containerfile_text() -> str:
    return resources.files("installer.lab").joinpath("Containerfile").read_text()


def rootfs_recipe() -> str:
    """Identifies what debootstrap must produce; a different value means a new rootfs."""
    return _digest({"suite": SUITE, "mirror": MIRROR, "include": DEBOOTSTRAP_INCLUDES})


def image_recipe(settings: LabSettings) -> str:
    """Identifies the host image: rootfs, customisation, SSH key, Containerfile and repo URL."""
    return _digest({
        "rootfs": rootfs_recipe(),
        "customize": CUSTOMIZE_REVISION,
        "pubkey": public_key(settings),
        "containerfile": containerfile_text(),
        "repo": settings.repo_url,
    })


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# --- SSH key -----------------------------------------------------------------------------------

def ensure_ssh_key(settings: LabSettings) -> None:
    key = settings.ssh_key
    if key.exists() and key.with_suffix(".pub").exists():
        return
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kfinstall-lab", "-f", key])


def public_key(settings: LabSettings) -> str:
    return settings.ssh_key.with_suffix(".pub").read_text().strip()


# --- rootfs ------------------------------------------------------------------------------------

def rootfs_ready(settings: LabSettings) -> bool:
    marker = settings.rootfs_dir / ROOTFS_MARKER
    return marker.exists() and marker.read_text().strip() == rootfs_recipe()


def build_rootfs(settings: LabSettings) -> None:
    """debootstrap a minimal bookworm with systemd, sshd and python3 (Ansible's needs)."""
    rootfs = settings.rootfs_dir
    if rootfs.exists():
        shutil.rmtree(rootfs)
    cache = settings.cache_dir / "debootstrap"
    cache.mkdir(parents=True, exist_ok=True)
    run(
        ["debootstrap", "--variant=minbase", f"--cache-dir={cache}",
         f"--include={','.join(DEBOOTSTRAP_INCLUDES)}", SUITE, rootfs, MIRROR],
        log=settings.log_dir / "debootstrap.log",
    )
    (rootfs / ROOTFS_MARKER).write_text(rootfs_recipe() + "\n")


def customize_rootfs(settings: LabSettings) -> None:
    """Make the rootfs a lab host: root login by the lab key, per-host identity, no Internet sources."""
    root = settings.rootfs_dir
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(public_key(settings) + "\n")
    authorized.chmod(0o600)
    for hostkey in (root / "etc/ssh").glob("ssh_host_*"):
        hostkey.unlink()
    _write(root / "etc/systemd/system/ssh.service.d/10-hostkeys.conf", SSH_HOSTKEY_DROPIN)
    _write(root / "etc/ssh/sshd_config.d/10-kfinstall-lab.conf", SSHD_LAB_CONFIG)
    # An empty machine-id makes systemd generate a distinct one on each host's first boot.
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # Hosts reach no mirror: the only apt source is the lab repo, configured per flavour.
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    (root / "etc/hostname").write_text("kfinstall-lab\n")
    make_apt_lists_stale(root)


def make_apt_lists_stale(root: Path) -> None:
    """Empty apt lists dated 1970, so any `cache_valid_time` check on a fresh host refreshes them.

    The image already carries the lab apt source; a role that writes the same source file sees
    no change and, without this, would trust the (empty) lists of an image built minutes ago.
    """
    lists = root / "var/lib/apt/lists"
    for entry in lists.glob("*"):
        if entry.is_file():
            entry.unlink()
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    os.utime(lists, (0, 0))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --- podman images -----------------------------------------------------------------------------

def image_label(image: str, label: str) -> str | None:
    """A label of a local image, or None when the image is absent."""
    proc = run(["podman", "image", "inspect", image], check=False)
    if proc.returncode != 0:
        return None
    labels = json.loads(proc.stdout)[0].get("Labels") or {}
    return labels.get(label)


def host_image_current(settings: LabSettings) -> bool:
    return image_label(settings.host_image, RECIPE_LABEL) == image_recipe(settings)


def host_image_present(settings: LabSettings) -> bool:
    return run(["podman", "image", "exists", settings.host_image], check=False).returncode == 0


def import_rootfs(settings: LabSettings) -> None:
    """tar the rootfs into `podman import` (numeric owners so files keep their uid/gid)."""
    remove_images(settings)
    log = settings.log_dir / "podman-import.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as sink:
        tar = subprocess.Popen(
            ["tar", "-C", str(settings.rootfs_dir), "--numeric-owner", f"--exclude=./{ROOTFS_MARKER}", "-c", "."],
            stdout=subprocess.PIPE,
        )
        imported = subprocess.run(
            ["podman", "import", "-", settings.base_image], stdin=tar.stdout, stdout=sink, stderr=sink, check=False
        )
        if tar.stdout is not None:
            tar.stdout.close()
        tar_rc = tar.wait()
    if tar_rc != 0 or imported.returncode != 0:
        raise PhaseFailed(f"importing the lab rootfs into podman failed; see {log}")


def build_host_image(settings: LabSettings) -> None:
    """The container flavour (no udev, lab apt source) on top of the imported rootfs."""
    context = settings.image_context_dir
    context.mkdir(parents=True, exist_ok=True)
    (context / "Containerfile").write_text(containerfile_text())
    run(
        ["podman", "build", "--quiet", "--network", "none",
         "--build-arg", f"BASE_IMAGE={settings.base_image}", "--build-arg", f"REPO_URL={settings.repo_url}",
         "--label", settings.label, "--label", f"{RECIPE_LABEL}={image_recipe(settings)}",
         "-t", settings.host_image, "-f", context / "Containerfile", context],
        log=settings.log_dir / "podman-build.log",
    )


def remove_images(settings: LabSettings) -> None:
    run(["podman", "rmi", "-f", settings.host_image, settings.base_image], check=False)
