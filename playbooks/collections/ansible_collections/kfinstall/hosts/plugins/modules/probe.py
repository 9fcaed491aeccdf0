#!/usr/bin/python
# Copyright: kfinstall authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what the kfinstall host roles decide on, in one module run that changes nothing.

The host's limits (a container host, /proc/modules, writable sysctls), the installed packages, the
age of apt's index, the state of some units and the live value of some sysctls. Everything is read
from files in Python; the only processes started are one `systemctl is-active` and one
`systemctl is-enabled` for all the units together, so a converged run costs one module run a host.
"""

from __future__ import annotations

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: probe
short_description: Read a host's limits, packages, apt index age, unit states and sysctls
description:
  - Changes nothing; supports check mode.
  - Reads files only, except for one C(systemctl is-active) and one C(systemctl is-enabled) for all the
    units (a call that stops at a missing unit is resumed after it).
  - A container host is one with C(/run/.containerenv), C(/.dockerenv), C(/run/systemd/container),
    C(container=) in the environment of process 1, or OpenVZ's C(/proc/vz) without C(/proc/bc). It
    shares the kernel of the machine running it.
options:
  units:
    description: Units whose active and enabled states are returned.
    type: list
    elements: str
    default: []
  sysctls:
    description:
      - Sysctl keys (such as C(net.ipv4.ip_forward)) whose live values are returned, read from /proc/sys.
      - Each key is lower-case letters, digits, C(_), C(-) and dots between non-empty words.
    type: list
    elements: str
    default: []
  apt_index:
    description: Absolute path of an apt list file whose existence is returned as I(apt_index_read); "" for none.
    type: str
    default: ""
  paths:
    description:
      - Absolute paths whose filesystem type is returned in I(filesystems): the type of the mount holding
        the path, or its nearest existing parent when the path does not exist yet.
    type: list
    elements: str
    default: []
"""

RETURN = r"""
container:
  description: Whether the host is a container (podman, docker, LXC, systemd-nspawn, OpenVZ, ...).
  returned: always
  type: bool
container_tech:
  description: The container technology as the host names it (e.g. C(podman)); "" outside containers.
  returned: always
  type: str
modules:
  description: Whether /proc/modules exists (the kernel loads modules).
  returned: always
  type: bool
bridge:
  description: Whether /proc/sys/net/bridge is a directory (br_netfilter's sysctls are there).
  returned: always
  type: bool
overlay:
  description: Whether the kernel knows the overlay filesystem (/proc/filesystems).
  returned: always
  type: bool
netns_sysctls:
  description: Whether /proc/sys/net/ipv4/ip_forward is writable (network-namespace sysctls can be set).
  returned: always
  type: bool
global_sysctls:
  description: Whether /proc/sys/vm/max_map_count is writable (global sysctls can be set).
  returned: always
  type: bool
packages:
  description:
    - Name -> version of every installed package (dpkg status C(install ok installed)), read from
      /var/lib/dpkg/status. A package of a foreign architecture is named C(name:arch), as apt takes it.
  returned: always
  type: dict
apt_index_age:
  description:
    - Seconds since apt's index was last refreshed (/var/lib/apt/periodic/update-success-stamp, else the
      modification time of /var/lib/apt/lists); seconds since the epoch when neither exists.
  returned: always
  type: int
apt_index_read:
  description: Whether the I(apt_index) file exists.
  returned: always
  type: bool
units:
  description: Unit -> {active, enabled} as systemctl prints them; "" where systemctl gave no answer.
  returned: always
  type: dict
sysctls:
  description: Key -> live value (runs of whitespace as one space); "" where the key does not exist.
  returned: always
  type: dict
swap:
  description: Whether swap is active (/proc/swaps lists a device or file).
  returned: always
  type: bool
filesystems:
  description: Path -> filesystem type as /proc/self/mountinfo names it (C(ext4), C(overlay), ...), for each of I(paths).
  returned: always
  type: dict
"""

# Where the host's files are read from. Only the tests change it (in a copy of this file), so the
# module reads a fake host; no module option can point it elsewhere.
ROOT = "/"

SYSCTL_KEY = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
# systemd unit names (systemd.unit(5)): letters, digits and ":-_.\@"; never an option.
UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]*$")
# The files systemd and the container engines leave in a container, and the technology each names.
CONTAINER_MARKERS = (("run/.containerenv", "podman"), (".dockerenv", "docker"))


def host_path(path: str) -> str:
    return os.path.join(ROOT, path)


def read_text(path: str) -> str | None:
    try:
        with open(host_path(path), encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def init_environment_container() -> str:
    """The value of container= in the environment of process 1 (readable by root only)."""
    try:
        with open(host_path("proc/1/environ"), "rb") as handle:
            environ = handle.read()
    except OSError:
        return ""
    for entry in environ.split(b"\0"):
        if entry.startswith(b"container="):
            return entry[len(b"container="):].decode("utf-8", "replace").strip()
    return ""


def container_tech() -> str:
    """The container technology this host runs in, "" when it is not a container."""
    # systemd writes the engine's container= value here; the most precise name, so read first.
    named = (read_text("run/systemd/container") or "").strip() or init_environment_container()
    if named:
        return named
    for marker, tech in CONTAINER_MARKERS:
        if os.path.exists(host_path(marker)):
            return tech
    if os.path.exists(host_path("proc/vz")) and not os.path.exists(host_path("proc/bc")):
        return "openvz"
    return ""


def stanzas(status: str) -> list[dict[str, str]]:
    """The stanzas of a dpkg status file as field -> value (continuation lines are left out)."""
    found: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", status):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        if fields:
            found.append(fields)
    return found


def installed_packages() -> dict[str, str]:
    """Name -> version of every package dpkg has installed.

    Status "<want> ok installed": held packages ("hold ok installed", kubeadm and kubelet) count;
    removed ones ("deinstall ok config-files") and half-installed or unpacked ones do not.
    """
    installed = [fields for fields in stanzas(read_text("var/lib/dpkg/status") or "")
                 if fields.get("Status", "").split()[1:] == ["ok", "installed"] and fields.get("Package")]
    # The native architecture is dpkg's own (no `dpkg --print-architecture` fork); a package of another
    # architecture (not "all") is named name:arch, the way apt-get is told to install it.
    native = next((fields.get("Architecture", "") for fields in installed if fields["Package"] == "dpkg"), "")
    packages = {}
    for fields in installed:
        name, arch = fields["Package"], fields.get("Architecture", "")
        if native and arch not in ("", "all", native):
            name = f"{name}:{arch}"
        packages[name] = fields.get("Version", "")
    return packages


def apt_index_age(now: float) -> int:
    for path in ("var/lib/apt/periodic/update-success-stamp", "var/lib/apt/lists"):
        try:
            return int(now - os.stat(host_path(path)).st_mtime)
        except OSError:
            continue
    return int(now)


def live_sysctl(key: str) -> str:
    value = read_text("proc/sys/" + key.replace(".", "/"))
    return "" if value is None else " ".join(value.split())


def systemctl_states(module: AnsibleModule, command: str, units: list[str]) -> dict[str, str]:
    """The answer of `systemctl COMMAND` for each unit, "" where it gave none.

    One call for all units prints one line per unit. systemd before v254 stops `is-enabled` at the
    first unit it has no file for (an error on stderr, no line); the call is then resumed after it.
    """
    states = dict.fromkeys(units, "")
    systemctl = module.get_bin_path("systemctl")
    remaining = list(units)
    while systemctl and remaining:
        _, out, err = module.run_command([systemctl, command, "--", *remaining])
        lines = out.splitlines()[:len(remaining)]
        for index, line in enumerate(lines):
            states[remaining[index]] = line.strip()
        if len(lines) == len(remaining):
            break
        stopped_at = remaining[len(lines)]
        if stopped_at not in err:
            break  # systemctl failed as a whole (no bus, no systemd): the rest stays ""
        remaining = remaining[len(lines) + 1:]
    return states


def swap_active() -> bool:
    """/proc/swaps: a header line, then one line an active swap device or file."""
    return len((read_text("proc/swaps") or "").strip().splitlines()) > 1


def unescape_mountinfo(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount, in mount order (a later one covers an earlier)."""
    found = []
    for line in (read_text("proc/self/mountinfo") or "").splitlines():
        before, _, after = line.partition(" - ")
        fields, types = before.split(), after.split()
        if len(fields) >= 5 and types:
            found.append((unescape_mountinfo(fields[4]), types[0]))
    return found


def filesystem_type(path: str, table: list[tuple[str, str]]) -> str:
    """The type of the mount holding `path`, or its nearest existing parent; symbolic links resolved."""
    existing = path
    while not os.path.exists(host_path(existing.lstrip("/"))) and existing != "/":
        existing = os.path.dirname(existing)
    real = "/" + os.path.relpath(os.path.realpath(host_path(existing.lstrip("/"))), os.path.realpath(ROOT))
    real = os.path.normpath(real)
    best, best_type = "", ""
    for point, fstype in table:
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fstype
    return best_type


def check_options(module: AnsibleModule) -> None:
    for key in module.params["sysctls"]:
        if not SYSCTL_KEY.match(key):
            module.fail_json(msg=f"sysctl key {key!r} refused: use dotted lower-case words of letters, "
                                 "digits, '_' and '-', such as net.ipv4.ip_forward.")
    for unit in module.params["units"]:
        if not UNIT_NAME.match(unit):
            module.fail_json(msg=f"unit name {unit!r} refused: use a systemd unit name such as containerd "
                                 "or nfs-ganesha.service (letters, digits and ':-_.@\\', not starting with '-').")
    apt_index = module.params["apt_index"]
    if apt_index and not os.path.isabs(apt_index):
        module.fail_json(msg=f"apt_index must be an absolute path or \"\", got {apt_index!r}.")
    for path in module.params["paths"]:
        if not os.path.isabs(path) or "\0" in path:
            module.fail_json(msg=f"path {path!r} refused: give an absolute path such as /export/kfinstall.")


def writable(path: str) -> bool:
    return os.access(host_path(path), os.W_OK)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "units": {"type": "list", "elements": "str", "default": []},
            "sysctls": {"type": "list", "elements": "str", "default": []},
            "apt_index": {"type": "str", "default": ""},
            "paths": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    check_options(module)
    units = list(dict.fromkeys(module.params["units"]))
    active = systemctl_states(module, "is-active", units)
    enabled = systemctl_states(module, "is-enabled", units)
    tech = container_tech()
    apt_index = module.params["apt_index"]
    table = mounts()
    module.exit_json(
        changed=False,
        container=bool(tech),
        container_tech=tech,
        modules=os.path.exists(host_path("proc/modules")),
        bridge=os.path.isdir(host_path("proc/sys/net/bridge")),
        overlay="overlay" in (read_text("proc/filesystems") or "").split(),
        netns_sysctls=writable("proc/sys/net/ipv4/ip_forward"),
        global_sysctls=writable("proc/sys/vm/max_map_count"),
        packages=installed_packages(),
        apt_index_age=apt_index_age(time.time()),
        apt_index_read=bool(apt_index) and os.path.exists(host_path(apt_index.lstrip("/"))),
        units={unit: {"active": active[unit], "enabled": enabled[unit]} for unit in units},
        sysctls={key: live_sysctl(key) for key in module.params["sysctls"]},
        swap=swap_active(),
        filesystems={path: filesystem_type(os.path.normpath(path), table) for path in module.params["paths"]},
    )


if __name__ == "__main__":
    main()
