"""The one list of configuration refusals: what `kfinstall up` refuses because of the site's files.

`kfinstall inventory validate`, `plan` and `up` all read the site through installer.config.load, so
they refuse the same sites; this table names each refusal once. A row gives its id, what is refused,
the function that checks it and the usual fix. The checks report through `refuse`, which stamps the
row's id on the Problem (the `rule` of `-o json` problems). The playbooks check some of the same
conditions again, for a run started with ansible-playbook directly; such an assert names the id in its
fail_msg as `[kfinstall refusal <id>]` (several: `[kfinstall refusal <id>, <id>]`), and the row lists the
playbook files that do (`asserted_in`). tests/unit/test_refusals.py holds the table, the Python checks and the playbooks
together: every id is refused by validate and plan on an example site, and every configuration
assert in playbooks/ names an id of this table (and only the playbooks listed assert it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from installer.config.problems import Problem, Problems

PLAYBOOK_MARK = re.compile(r"\[kfinstall refusal ([a-z0-9-]+(?:,\s+[a-z0-9-]+)*)\]")


@dataclass(frozen=True)
class Refusal:
    id: str
    refuses: str
    check: str  # module:function reporting it
    fix: str
    asserted_in: tuple[str, ...] = ()  # playbooks/ files whose asserts name the id (PLAYBOOK_MARK)


_VALIDATE = "playbooks/00-validate.yml"
_KUBERNETES = "playbooks/roles/kubernetes/tasks/main.yml"

REFUSALS: tuple[Refusal, ...] = (
    Refusal("setting-value", "a key or value the model refuses: an unknown or missing key, a wrong type, a value "
            "outside its choices (containerd source, NFS implementation, package source, CNI, kube-proxy mode, MIG "
            "strategy, Gluster volume name, ...)", "installer.config.pydantic_errors:add_validation_errors",
            "write the value the message asks for",
            (_VALIDATE, _KUBERNETES, "playbooks/roles/containerd/tasks/main.yml",
             "playbooks/roles/nfs_server/tasks/main.yml", "playbooks/roles/nvidia_gpu/tasks/install.yml",
             "playbooks/roles/glusterfs/tasks/main.yml")),
    Refusal("control-plane-missing", "no host in kube_control_plane", "installer.config.inventory:_check_roles",
            "add one host (or three for HA) to the kube_control_plane group",
            (_VALIDATE, _KUBERNETES, "playbooks/roles/kube_upgrade/tasks/main.yml")),
    Refusal("control-plane-even", "an even number of kube_control_plane hosts (etcd loses quorum when half fail)",
            "installer.config.inventory:_check_roles", "use 1, 3 or 5 control-plane hosts", (_VALIDATE,)),
    Refusal("kube-node-missing", "no host in kube_node (nothing would run the platform's workloads)",
            "installer.config.inventory:_check_roles", "add the worker hosts to the kube_node group", (_VALIDATE,)),
    Refusal("gpu-not-kube-node", "a gpu host that is not in kube_node", "installer.config.inventory:_check_roles",
            "add the host to kube_node as well (GPU hosts run workloads)", (_VALIDATE,)),
    Refusal("nfs-server-missing", "NFS enabled without a host in nfs_server", "installer.config.inventory:_check_nfs",
            "add one host to nfs_server, or set spec.storage.nfs.enabled: false", (_VALIDATE,)),
    Refusal("nfs-server-several", "more than one host in nfs_server", "installer.config.inventory:_check_nfs",
            "keep exactly one NFS server host"),
    Refusal("gluster-hosts", "GlusterFS enabled with fewer gluster hosts than spec.storage.gluster.replica, or a "
            "number that is not a multiple of it", "installer.config.inventory:_check_gluster",
            "use a multiple of the replica count of gluster hosts, or change spec.storage.gluster.replica",
            (_VALIDATE, "playbooks/roles/glusterfs/tasks/main.yml")),
    Refusal("control-plane-endpoint-required", "3 or more control-plane hosts without spec.kubernetes."
            "controlPlaneEndpoint", "installer.config.rules:_control_plane_endpoint",
            "set a free IP on the node network as spec.kubernetes.controlPlaneEndpoint", (_VALIDATE, _KUBERNETES)),
    Refusal("control-plane-endpoint-taken", "spec.kubernetes.controlPlaneEndpoint equal to a host's address or "
            "inside the MetalLB pool (kube-vip and that host or MetalLB would answer for the same IP)",
            "installer.config.network_rules:control_plane_endpoint",
            "choose a free address on the node network, outside the MetalLB pool"),
    Refusal("subnet-holds-host", "spec.kubernetes.podSubnet or serviceSubnet holding a host's address (traffic to "
            "that host would be routed into the cluster network)", "installer.config.network_rules:subnets",
            "choose a private range none of the hosts' addresses fall in"),
    Refusal("subnets-overlap", "spec.kubernetes.podSubnet and serviceSubnet overlapping",
            "installer.config.network_rules:subnets", "choose two ranges that do not overlap"),
    Refusal("metallb-pool-holds-host", "a MetalLB pool entry holding a host's address (MetalLB would announce a "
            "Service on an address a host already uses)", "installer.config.network_rules:metallb_pool",
            "list only free addresses of the node network in spec.networking.metallb.addresses"),
    Refusal("package-mirror-required", "spec.kubernetes.packageSource mirror without packageMirror",
            "installer.config.rules:_package_mirror", "set spec.kubernetes.packageMirror to the mirror's base URL",
            (_KUBERNETES,)),
    Refusal("ldap-bind-password", "spec.auth.ldap.bindDn set while secrets.yml has no or an empty ldap_bind_password "
            "(checked whenever secrets.yml is present; up always needs it)", "installer.config.rules:_ldap",
            "put the bind DN's password in secrets.yml (ldap_bind_password)"),
)

BY_ID = {refusal.id: refusal for refusal in REFUSALS}


def refuse(problems: Problems, rule: str, file: str, key: str, message: str, fix: str | None = None,
           line: int | None = None, column: int | None = None) -> None:
    """An error from the table's row `rule` (its fix unless a more precise one is given)."""
    problems.add(Problem(file, key, message, fix or BY_ID[rule].fix, line=line, column=column, rule=rule))
