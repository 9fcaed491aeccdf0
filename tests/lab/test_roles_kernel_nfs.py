"""In-kernel NFS on a qemu TCG VM: nfs_server (kernel) and nfs_client with its test mount, both on vm1.

Containers have no nfsd and no kernel NFS client, so this needs the lab's VM (`lab_vm_site`, slow:
about 40 s to boot, and apt runs about 10x slower than in a container). The VM also exercises the
parts of os_prepare that containers skip: modprobe of overlay and br_netfilter and global sysctls.
One VM both serves and mounts, through its address on the lab bridge (the export admits the node's
address, as it would admit another node's): a second VM added a quarter to the test's time on this
2-core machine (472 s with two VMs, 334-380 s with one) for the same kernel code paths. Serving other hosts over the
network is shown by the ganesha export on the podman hosts (test_roles_site.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_roles_common import assert_converged, run_playbooks

pytestmark = pytest.mark.lab_vm

SERVER = CLIENT = "vm1"  # one VM both serves and mounts (see the docstring)
EXPORT = "/srv/kfinstall-kernel-nfs"


def _vm_inventory(inventory: Path, group_vars: dict[str, Any]) -> Path:
    """The lab inventory's VM in the roles' groups: it serves NFS and is a node; `group_vars` for all."""
    data = yaml.safe_load(inventory.read_text())["all"]
    hosts = {name: data["hosts"][name] for name in {SERVER, CLIENT}}
    path = inventory.with_name("hosts-kernel-nfs.yml")
    path.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {**data.get("vars", {}), **group_vars},
                    "hosts": hosts,
                    "children": {"nfs_server": {"hosts": {SERVER: {}}}, "kube_node": {"hosts": {CLIENT: {}}}},
                }
            }
        )
    )
    return path


def _sh(site, host: str, command: str) -> str:
    result = site.ssh(host, command, timeout=300)
    assert result.returncode == 0, f"{host}: {command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_kernel_nfs_export_served_and_mounted_over_the_bridge(lab_vm_site) -> None:
    extra = {
        "kf_nfs_enabled": True,
        "kf_nfs_implementation": "kernel",
        "kf_nfs_export_path": EXPORT,
        "kf_nfs_mount_options": ["nfsvers=4.2", "hard"],
        "kf_gluster_enabled": False,
        "nfs_client_test_mount": True,
        # Keep chrony off: the VMs have no time source on the lab bridge.
        "kf_time_sync": False,
    }
    # apt is about 10x slower in a TCG VM: a package table of only what this test needs (the lab
    # repository is still set up). In the inventory, where an operator would set it (its conditions are
    # templates; extra vars reach the roles as data): it replaces kf_defaults' whole table.
    inventory = _vm_inventory(lab_vm_site.inventory, {
        "kf_packages": {
            "os_prepare": {"packages": ["kmod"], "needed": True},
            "nfs_client": {"packages": ["nfs-common"], "needed": "{{ 'kube_node' in group_names }}"},
            "nfs_server_kernel": {"role": "nfs_server", "packages": ["nfs-kernel-server"], "services": ["nfs-server"],
                                  "needed": "{{ 'nfs_server' in group_names }}", "transaction": False},
        },
    })
    first = run_playbooks(inventory, ["10-os.yml", "40-storage.yml"], extra, timeout=2400)
    print(f"\n10-os + 40-storage on a TCG VM (kernel NFS): {first.seconds:.1f} s, recap {first.recap}")
    print(first.slowest())
    assert_converged(first, [SERVER])
    assert "test mount skipped" not in first.output
    # Real kernels: modules were loaded, nothing had to be skipped.
    assert f"{SERVER}: nothing skipped" in first.output, first.tail(200)
    assert "br_netfilter" in _sh(lab_vm_site, SERVER, "cat /proc/modules")
    # ...and load at boot: one module a line in modules-load.d (a Jinja '\n' in a folded YAML scalar once
    # wrote the two characters backslash and n there).
    modules_load = _sh(lab_vm_site, SERVER, "cat /etc/modules-load.d/kfinstall.conf")
    assert modules_load.splitlines() == ["overlay", "br_netfilter"], modules_load
    _sh(lab_vm_site, SERVER, "systemctl restart systemd-modules-load")  # fails when a line names no module

    token = uuid.uuid4().hex
    server_ip = lab_vm_site.addresses[SERVER]
    _sh(lab_vm_site, SERVER, f"echo {token} > {EXPORT}/from-server.txt")
    out = _sh(
        lab_vm_site,
        CLIENT,
        f"mkdir -p /mnt/kt && mount -t nfs -o nfsvers=4.2 {server_ip}:{EXPORT} /mnt/kt && "
        f"cat /mnt/kt/from-server.txt && echo {token}-client > /mnt/kt/from-client.txt && "
        "findmnt -no FSTYPE /mnt/kt && umount /mnt/kt",
    )
    assert token in out and "nfs4" in out
    assert _sh(lab_vm_site, SERVER, f"cat {EXPORT}/from-client.txt").strip() == f"{token}-client"

    second = run_playbooks(inventory, ["10-os.yml", "40-storage.yml"], extra, timeout=2400)
    print(f"second run on the VM: {second.seconds:.1f} s, recap {second.recap}\n{second.slowest()}")
    assert_converged(second, [SERVER])
    assert {r["changed"] for r in second.recap.values()} == {0}, second.tail(200)
