"""What `lab up` writes for the rest of kfinstall: OUT/hosts.yml, OUT/kfinstall.yaml, OUT/secrets.yml.

Pure functions build the inventory as data (unit-tested without root); thin writers put it on disk.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from installer.config.sample import sample_sites
from installer.owned import write_file_atomically

INVENTORY_FILE = "hosts.yml"
CONFIG_FILE = "kfinstall.yaml"
SECRETS_FILE = "secrets.yml"
VM_GROUP = "lab_vm"
# A GlusterFS replica volume needs three bricks on three hosts.
GLUSTER_MIN_HOSTS = 3


def cluster_config() -> str:
    """The lab's kfinstall.yaml: profile lab on the channel of the lab sample (inventories/sites.yaml)."""
    channel = sample_sites()["lab"]["channel"]
    return (
        "apiVersion: kfinstall.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: lab\n"
        f'spec:\n  profile: lab\n  channel: "{channel}"\n'
    )


@dataclass(frozen=True)
class LabMachine:
    name: str
    address: str


def role_groups(hosts: list[str]) -> dict[str, list[str]]:
    """Which podman hosts go into which kfinstall role group.

    The first host is the control plane and NFS server; every host is a Kubernetes node; the
    first three form the Gluster replica (no Gluster with fewer than three); no lab host has a GPU.
    """
    return {
        "kube_control_plane": hosts[:1],
        "kube_node": list(hosts),
        "gpu": [],
        "nfs_server": hosts[:1],
        "gluster": hosts[:GLUSTER_MIN_HOSTS] if len(hosts) >= GLUSTER_MIN_HOSTS else [],
    }


def connection_vars(machine: LabMachine, ssh_key: Path) -> dict[str, str]:
    return {
        "ansible_host": machine.address,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(ssh_key),
        # No host-key options: kfinstall checks the lab's keys like any site's, against known_hosts in
        # the state dir, where `lab up` writes the keys of the hosts it made (write_known_hosts).
        "ansible_python_interpreter": "/usr/bin/python3",
    }


def build_inventory(
    hosts: list[LabMachine], vms: list[LabMachine], ssh_key: Path, repo_url: str
) -> dict[str, Any]:
    """The YAML inventory as data: connection vars per machine under all.hosts, role groups as children."""
    all_hosts = {m.name: connection_vars(m, ssh_key) for m in [*hosts, *vms]}
    children: dict[str, Any] = {}
    for group, members in role_groups([h.name for h in hosts]).items():
        children[group] = {"hosts": {name: {} for name in members}}
    children[VM_GROUP] = {"hosts": {vm.name: {} for vm in vms}}
    return {
        "all": {
            "vars": {"kf_lab_apt_repo": repo_url},
            "hosts": all_hosts,
            "children": children,
        }
    }


def render_yaml(data: dict[str, Any]) -> str:
    yaml = YAML()  # round-trip mode keeps the insertion order: all.vars, all.hosts, then groups
    yaml.default_flow_style = False
    yaml.width = 4096  # no wrapped values: ansible_ssh_common_args stays on one line
    buffer = io.StringIO()
    buffer.write("# Written by `kfinstall lab up`; rewritten on every run.\n")
    yaml.dump(data, buffer)
    return buffer.getvalue()


# Host keys ----------------------------------------------------------------------------------------
#
# Lab hosts make new host keys whenever they are re-created. `lab up` made them, so it reads their
# public keys itself (podman exec for containers) and writes them into the lab site's known_hosts:
# kfinstall then checks the lab's keys like any site's, and never meets a lab host as "unknown".

_PUBLIC_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}$")


def public_keys(text: str) -> list[str]:
    """'TYPE BASE64' of each well-formed line of ssh_host_*_key.pub files (comments dropped)."""
    keys = []
    for line in text.splitlines():
        key = " ".join(line.split()[:2])
        if _PUBLIC_KEY.match(key):
            keys.append(key)
    return keys


def _names_of(line: str) -> list[str] | None:
    """The host patterns of a known_hosts line; None for comments, markers and hashed names."""
    fields = line.split()
    if not fields or fields[0].startswith(("#", "@", "|")):
        return None
    return fields[0].split(",")


def _hashed_match(line: str, name: str) -> bool:
    """A `|1|salt|hash` entry (HashKnownHosts) for `name`: HMAC-SHA1 of the name keyed with the salt."""
    field = line.split(maxsplit=1)[0] if line.split() else ""
    parts = field.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return False
    try:
        salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except ValueError:
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


def known_hosts_text(current: str, keys: dict[str, list[str]]) -> str:
    """`current` without any entry for the given names, plus one line per (name, key)."""
    kept = [
        line for line in current.splitlines()
        if not (set(_names_of(line) or ()) & set(keys)) and not any(_hashed_match(line, n) for n in keys)
    ]
    added = [f"{name} {key}" for name, name_keys in sorted(keys.items()) for key in name_keys]
    return "".join(f"{line}\n" for line in [*kept, *added])


def write_known_hosts(path: Path, keys: dict[str, list[str]]) -> Path:
    """Pin the lab machines' keys (address -> keys) in `path`, replacing their old entries only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    current = path.read_text() if path.is_file() else ""
    write_file_atomically(path, known_hosts_text(current, keys).encode("utf-8"), 0o600)
    return path
