"""The plan: what `kfinstall up` would do, where, with which versions. Computed without any SSH.

JSON form (stable; documented in docs/plan-json.md), `apiVersion: kfinstall.io/plan/v1`:
cluster, profile, channel, kubernetesVersion, hosts[], roles{}, phases[], components[], namespaces[],
storage, auth, warnings[].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from installer.catalogue import platform_namespaces
from installer.config.inventory import ROLE_GROUPS
from installer.config.resolved import ClusterConfig
from installer.phases import PHASES
from installer.phases.base import Component, PhasePlan
from installer.serving import replica_bounds

PLAN_API_VERSION = "kfinstall.io/plan/v1"


@dataclass(frozen=True)
class Plan:
    cfg: ClusterConfig
    phases: tuple[PhasePlan, ...]
    components: tuple[Component, ...]
    extra_warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "apiVersion": PLAN_API_VERSION,
            "cluster": cfg.name,
            "profile": cfg.spec.profile,
            "channel": cfg.release.channel,
            "kubeflowRef": cfg.release.kubeflow_ref,
            "kubernetesVersion": cfg.kubernetes_version,
            "kubernetesVersionDefaulted": cfg.kubernetes_version_defaulted,
            "hosts": [{"name": h.name, "address": h.address, "roles": list(h.roles)} for h in cfg.inventory.hosts],
            "roles": {role: cfg.inventory.names(role) for role in ROLE_GROUPS},
            "phases": [p.as_dict() for p in self.phases],
            "components": [c.as_dict() for c in self.components],
            "namespaces": [{"name": ns.name, "podSecurity": ns.level, "component": ns.component}
                           for ns in platform_namespaces(cfg)],
            "storage": _storage(cfg),
            "auth": _auth(cfg),
            "warnings": [w.as_dict() for w in cfg.warnings]
            + [{"severity": "warning", "message": m} for m in self.extra_warnings],
        }


def _storage(cfg: ClusterConfig) -> dict[str, Any]:
    storage = cfg.spec.storage
    return {
        "defaultClass": storage.default_class,
        "nfs": {
            "enabled": storage.nfs.enabled,
            "implementation": storage.nfs.implementation,
            "server": cfg.nfs_server_address(),
            "exportPath": storage.nfs.export_path,
            "storageClass": storage.nfs.storage_class,
        },
        "gluster": {
            "enabled": storage.gluster.enabled,
            "volume": storage.gluster.volume,
            "replica": storage.gluster.replica,
            "hosts": cfg.inventory.names("gluster"),
            "mountPath": storage.gluster.mount_path,
            "storageClass": storage.gluster.storage_class,
        },
    }


def _auth(cfg: ClusterConfig) -> dict[str, Any]:
    auth = cfg.spec.auth
    result: dict[str, Any] = {"type": auth.type, "admins": list(auth.admins)}
    if auth.type == "ldap":
        result["ldap"] = {
            "url": auth.ldap.url,
            "bindDn": auth.ldap.bind_dn,
            "userSearchBase": auth.ldap.user_search_base,
            "allowedGroups": list(auth.ldap.allowed_groups),
        }
    return result


def build_plan(cfg: ClusterConfig) -> Plan:
    """The phases' own plans, in the order `up` runs them; components are what each phase installs."""
    phases = tuple(phase.plan(cfg) for phase in PHASES)
    components = tuple(c for phase in phases for c in phase.components)
    # The serving HPA's GPU bound comes from the function the stack uses, so plan says what up does.
    notes = tuple(n for n in (replica_bounds(cfg).note,) if n)
    return Plan(cfg=cfg, phases=phases, components=components, extra_warnings=notes)
