"""Group names of the inventories ops teams already have: Kubespray's older names and DeepOps'.

Three kinds, each decided per name (docs/operations.md "Bringing an existing Kubespray or DeepOps
inventory"):

* ACCEPTED: the same host role under an older name. kfinstall reads the group as its role group and
  warns, naming the modern group, as Kubespray itself does (its dynamic_groups role puts kube-master
  hosts into kube_control_plane and kube-node hosts into kube_node). The operator's file is never
  rewritten: kfinstall makes the legacy group a child of the modern one in its own parse and in a
  small inventory source of its own that it hands to every ansible-playbook run beside the operator's
  (installer/adapters/ansible.py), so plays on `kube_control_plane` reach those hosts.
* REFUSED: a name whose hosts kfinstall would start to manage in a new way if it guessed. The fix
  is exactly the rename.
* LEFT ALONE: groups of the other tools that kfinstall has no use for (etcd, calico_rr, slurm-*,
  nfs-clients, bastion, ...). A host found only in such groups is not a kfinstall host: it is left
  alone (one warning for all of them) instead of "host is in no role group".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LegacyName:
    modern: str
    origin: str  # where the name comes from, for the warning and the docs
    why: str = ""  # why a REFUSED name is not taken as the modern group


# Kubespray: roles/dynamic_groups/tasks/main.yml (group_mappings kube_control_plane: [kube-master],
# kube_node: [kube-node]), before that playbooks/legacy_groups.yml (kubernetes-sigs/kubespray 065ec7646);
# the rename is kubespray#7256 (v2.16). DeepOps: config.example/inventory until 2b62ae30 (2026-02) used
# [kube-master] and [kube-node]. `kube_master` is kube-master as Ansible (TRANSFORM_INVALID_GROUP_CHARS)
# and AWX rewrite a name with '-' in it (kubespray#7536).
ACCEPTED = {
    "kube-master": LegacyName("kube_control_plane", "Kubespray's name before v2.16 (DeepOps' too)"),
    "kube_master": LegacyName("kube_control_plane", "Kubespray's kube-master as Ansible and AWX rewrite it"),
    "kube-node": LegacyName("kube_node", "Kubespray's and DeepOps' older name"),
}

# DeepOps: config.example/inventory from 2019 to c3b85743 ("re-org maas and nfs stuff") had [nfs-server]
# and [nfs-clients]; playbooks/generic/nfs-server.yml runs DeepOps' nfs role (its own exports) there.
REFUSED = {
    "nfs-server": LegacyName(
        "nfs_server", "DeepOps' name",
        "DeepOps' nfs-server serves DeepOps' own exports, often from a login or management node; as kfinstall's "
        "nfs_server that host would also get kfinstall's host preparation and the platform's export",
    ),
}

# Groups of Kubespray (docs/ansible/inventory.md: etcd, calico_rr, bastion, k8s_cluster; the old
# dashed names in legacy_groups.yml) and DeepOps (every group config.example/inventory has had) that
# kfinstall does not use. kfinstall runs etcd stacked on its control planes (kubeadm), so an etcd
# group adds nothing; `bastion` is the jump host (installer/config/ssh.py), never a cluster host.
LEFT_ALONE = frozenset({
    "etcd", "calico_rr", "calico-rr", "no_floating", "no-floating", "k8s_cluster", "k8s-cluster", "bastion",
    "nfs-clients", "nfs_clients", "maas", "login", "mgmt", "management", "dgx-servers", "gpu-servers",
    "tesla-servers", "k8s-gpu", "compute-nodes", "vault", "cache_builder", "mgrs", "mons", "osds",
    "ceph-cluster", "ceph-mgrs",
})
LEFT_ALONE_PREFIXES = ("slurm-", "slurm_")  # DeepOps: slurm-master, slurm-node, slurm-nfs, slurm-cluster, ...


def left_alone(group: str) -> bool:
    return group in LEFT_ALONE or group.startswith(LEFT_ALONE_PREFIXES)


def known_group(group: str) -> bool:
    """A group of Kubespray or DeepOps that kfinstall knows (accepted, refused or left alone)."""
    return group in ACCEPTED or group in REFUSED or left_alone(group)


def alias_inventory(aliases: dict[str, tuple[str, ...]]) -> str:
    """The inventory source kfinstall hands Ansible beside the operator's: each modern group with the
    legacy groups it stands for as children (YAML; the names are ACCEPTED's own, never the operator's text)."""
    lines = ["# Written by kfinstall for this run: legacy group names as children of kfinstall's role groups.",
             "all:", "  children:"]
    for modern, legacy in sorted(aliases.items()):
        lines += [f"    {modern}:", "      children:"] + [f"        {name}: {{}}" for name in legacy]
    return "\n".join(lines) + "\n"
