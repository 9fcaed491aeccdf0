"""Storage: csi-driver-nfs with a StorageClass on the NFS export (or Filestore on gcp), a
ReadWriteMany class over the GlusterFS node mount through local-path-provisioner, and a node-local
class for the single-writer databases (Prometheus' TSDB, the hub's SQLite).

GlusterFS lost its in-tree volume plugin in Kubernetes 1.26 and Heketi is archived, so Gluster is
mounted on every node by Ansible and local-path-provisioner's `sharedFileSystemPath` hands out
per-volume directories on that mount (all access modes work on a filesystem every node shares).

Prometheus does not support its TSDB on NFS or other non-POSIX filesystems (prometheus/prometheus
docs/storage.md) and SQLite warns against network filesystems (sqlite.org/useovernet.html), so those
two volumes go on disks of one node: a second local-path-provisioner in node mode (`nodePathMap`) on
hosts, GKE's own persistent-disk class on gcp. docs/storage.md says what losing that node means.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer import catalogue
from stacks.base import ComponentArgs, child_opts, helm_release, image, k, labels, namespace, resources

NAMESPACE = catalogue.STORAGE.name
NFS_PROVISIONER = "nfs.csi.k8s.io"
GLUSTER_PROVISIONER = "kfinstall.io/gluster-local-path"
FILESTORE_CLASS = "filestore"  # the model has no name field for it (see the platform report)
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# Node-local volumes (hosts): a directory per volume under NODE_LOCAL_PATH on the node the pod first
# runs on; the PV carries that node's affinity, so the pod stays with its data.
NODE_LOCAL_CLASS = "node-local"
NODE_LOCAL_PROVISIONER = "kfinstall.io/node-local-path"
NODE_LOCAL_PATH = "/var/lib/kfinstall/local-volumes"
# GKE creates this class itself (Compute Engine persistent disk CSI driver, pd-balanced, zonal,
# WaitForFirstConsumer): cloud.google.com/kubernetes-engine/docs/concepts/persistent-volumes.
GKE_BLOCK_CLASS = "standard-rwo"
# Stack output recording the class each single-writer volume was created with (see volume_classes).
VOLUME_CLASSES_OUTPUT = "volume_classes"
PROMETHEUS_VOLUME = "prometheus-tsdb"
HUB_DB_VOLUME = "hub-db"
UNSET_CLASS = ""  # the claim names no class: the cluster default at the time it was created
# One directory per volume, named so an operator browsing the export can tell whose data it is.
NFS_SUBDIR = "${pvc.metadata.namespace}-${pvc.metadata.name}-${pv.metadata.name}"


@dataclass(frozen=True, kw_only=True)
class NfsExport:
    """Where the NFS StorageClass points: a host export, or a Filestore share on gcp."""

    server: pulumi.Input[str]
    share: str
    class_name: str
    mount_options: list[str]


@dataclass(frozen=True, kw_only=True)
class StorageArgs(ComponentArgs):
    nfs: NfsExport | None = None
    """The export for csi-driver-nfs; None when NFS is disabled."""


def default_class_name(args: ComponentArgs) -> str:
    """Name of the cluster's default StorageClass, from spec.storage.defaultClass."""
    storage = args.cfg.spec.storage
    return {"nfs": storage.nfs.storage_class, "gluster": storage.gluster.storage_class,
            "filestore": FILESTORE_CLASS}[storage.default_class]


def marks_default(args: ComponentArgs) -> bool:
    """Whether kfinstall marks one of its classes default: not on GKE, which ships its own default.

    GKE's default class is GKE's object (kfinstall never edits what it did not write), so Filestore
    stays a named class there; every volume the platform creates names its class explicitly.
    """
    return args.cfg.spec.profile != "gcp"


def block_class_name(args: ComponentArgs) -> str:
    """The class for single-writer databases: node-local on hosts, GKE's persistent disk on gcp."""
    return GKE_BLOCK_CLASS if args.cfg.spec.profile == "gcp" else NODE_LOCAL_CLASS


def volume_classes(args: ComponentArgs, installed: Mapping[str, Any] | None) -> dict[str, str]:
    """The class of Prometheus' and the hub DB's claims: the planned one, or the one they were made with.

    A claim's class cannot change (PVC spec is immutable once bound; a StatefulSet's
    volumeClaimTemplates are immutable too), so a site keeps what its volumes were created with:
    Helm would fail the whole hub release on a changed hub-db-dir claim. `installed` holds the
    outputs of the stack's last deployment (None or empty: nothing deployed yet, the plan applies).
    Deployments by kfinstall before this output existed put Prometheus on the then default class
    (their default_storage_class output) when monitoring was on, and left the hub claim unset.
    """
    planned = {PROMETHEUS_VOLUME: block_class_name(args), HUB_DB_VOLUME: block_class_name(args)}
    return {**_kept_classes(planned, installed), **_overridden_classes(args)}


def _kept_classes(planned: dict[str, str], installed: Mapping[str, Any] | None) -> dict[str, str]:
    if not installed:
        return planned
    recorded = installed.get(VOLUME_CLASSES_OUTPUT)
    if isinstance(recorded, Mapping):
        return {volume: str(recorded.get(volume, planned[volume])) for volume in planned}
    legacy = dict(planned, **{HUB_DB_VOLUME: UNSET_CLASS})
    if "monitoring_release" in installed and isinstance(installed.get("default_storage_class"), str):
        legacy[PROMETHEUS_VOLUME] = installed["default_storage_class"]
    return legacy


# Where an operator's chart values (spec.components.<x>.values, merged last) name those classes.
_CLASS_VALUE_PATHS = {
    PROMETHEUS_VOLUME: ("monitoring", ("prometheus", "prometheusSpec", "storageSpec", "volumeClaimTemplate", "spec",
                                       "storageClassName")),
    HUB_DB_VOLUME: ("jupyterhub", ("hub", "db", "pvc", "storageClassName")),
}


def _overridden_classes(args: ComponentArgs) -> dict[str, str]:
    """Classes the operator's own chart values set: they win in the release, so they are what gets recorded."""
    out = {}
    for volume, (component, path) in _CLASS_VALUE_PATHS.items():
        node: Any = getattr(args.cfg.spec.components, component).values
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, str):
            out[volume] = node
    return out


def nfs_export(args: ComponentArgs) -> NfsExport | None:
    """The host NFS export from the model and the inventory (None when disabled)."""
    nfs = args.cfg.spec.storage.nfs
    server = args.cfg.nfs_server_address()
    if not nfs.enabled or server is None:
        return None
    return NfsExport(server=server, share=nfs.export_path, class_name=nfs.storage_class,
                     mount_options=list(nfs.mount_options))


class Storage(pulumi.ComponentResource):
    """Dynamic volumes: the default class, plus the GlusterFS ReadWriteMany class when enabled."""

    default_class: pulumi.Output[str]

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Storage", name, None, opts)
        self._name = name
        self._args = args
        self.ns = namespace(self, args, f"{name}-ns", catalogue.STORAGE)
        default = default_class_name(args) if marks_default(args) else None
        self.classes: list[k8s.storage.v1.StorageClass] = []
        if args.nfs is not None:
            self._nfs(args.nfs, default)
        if args.cfg.spec.storage.gluster.enabled:
            self._gluster(default)
        if args.cfg.spec.profile != "gcp":
            self._node_local()
        # The platform's shared class (default on hosts; on gcp a named class beside GKE's default).
        self.default_class = pulumi.Output.from_input(default_class_name(args))
        self.register_outputs({"default_class": self.default_class})

    def _nfs(self, export: NfsExport, default: str | None) -> None:
        chart = helm_release(self, self._args, "csi-driver-nfs", ns=NAMESPACE, depends_on=[self.ns])
        params = {"server": export.server, "share": export.share, "subDir": NFS_SUBDIR, "onDelete": "archive"}
        self.classes.append(self._storage_class(f"{self._name}-nfs", export.class_name, NFS_PROVISIONER,
                                                params=params, mount_options=export.mount_options, default=default,
                                                depends_on=[chart]))

    def _gluster(self, default: str | None) -> None:
        gluster = self._args.cfg.spec.storage.gluster
        shared = {"nodePathMap": [], "sharedFileSystemPath": gluster.mount_path}
        provisioner = _local_path_provisioner(self, self._args, GLUSTER_LPP, shared)
        self.classes.append(self._storage_class(f"{self._name}-gluster", gluster.storage_class,
                                                GLUSTER_PROVISIONER, params={}, mount_options=[], default=default,
                                                depends_on=provisioner))

    def _node_local(self) -> None:
        # Node mode: the provisioner needs the node the scheduler picked (it refuses to provision
        # without one), hence WaitForFirstConsumer; never the default (RWO only, tied to one node).
        node_mode = {"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [NODE_LOCAL_PATH]}]}
        provisioner = _local_path_provisioner(self, self._args, NODE_LOCAL_LPP, node_mode)
        self.classes.append(self._storage_class(f"{self._name}-node-local", NODE_LOCAL_CLASS, NODE_LOCAL_PROVISIONER,
                                                params={}, mount_options=[], default=None, depends_on=provisioner,
                                                binding="WaitForFirstConsumer"))

    def _storage_class(self, logical: str, class_name: str, provisioner: str, *, params: dict[str, Any],
                       mount_options: list[str], default: str | None, depends_on: list[pulumi.Resource],
                       binding: str = "Immediate") -> k8s.storage.v1.StorageClass:
        annotations = {DEFAULT_CLASS_ANNOTATION: "true" if class_name == default else "false"}
        return k8s.storage.v1.StorageClass(
            logical, metadata=k({"name": class_name, "labels": labels("storage"), "annotations": annotations}),
            provisioner=provisioner, parameters=params or None, mount_options=mount_options or None,
            reclaim_policy="Delete", volume_binding_mode=binding, allow_volume_expansion=False,
            opts=child_opts(self, self._args, depends_on))


@dataclass(frozen=True)
class LocalPathInstance:
    """One local-path-provisioner: its provisioner name and the Kubernetes names of its objects."""

    logical: str
    provisioner: str
    account: str
    cluster_role: str
    config_map: str
    deployment: str
    app: str
    setup: str


# The GlusterFS instance keeps the names it always had (renaming would replace live objects).
GLUSTER_LPP = LocalPathInstance(
    logical="local-path", provisioner=GLUSTER_PROVISIONER, account="local-path-provisioner",
    cluster_role="kfinstall-local-path-provisioner", config_map="local-path-config",
    deployment="local-path-provisioner", app="local-path-provisioner",
    setup="#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n")
# Node mode: the volume directory stays 0777 (hostPath volumes get no fsGroup, and Prometheus and the
# hub run as non-root), but its parent becomes 0700 so no node account can walk into the TSDB or the
# hub's database; containers reach the volume through its own bind mount, not through the parent.
NODE_LOCAL_LPP = LocalPathInstance(
    logical="node-local", provisioner=NODE_LOCAL_PROVISIONER, account="node-local-provisioner",
    cluster_role="kfinstall-node-local-provisioner", config_map="node-local-config",
    deployment="node-local-provisioner", app="node-local-provisioner",
    setup="#!/bin/sh\nset -eu\nmkdir -p \"$VOL_DIR\"\nchmod 0700 \"$(dirname \"$VOL_DIR\")\"\n"
          "chmod 0777 \"$VOL_DIR\"\n")


def _lpp_config(paths: dict[str, Any], setup: str, helper_image: str) -> dict[str, str]:
    """local-path-provisioner's ConfigMap: where volumes go, setup/teardown scripts and the helper pod.

    `paths` is either shared mode (sharedFileSystemPath with an empty nodePathMap, which upstream
    requires) or node mode (nodePathMap) (rancher/local-path-provisioner README, "Configuration").
    """
    teardown = "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n"
    helper = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
              "spec": {"priorityClassName": "system-node-critical",
                       "tolerations": [{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists",
                                        "effect": "NoSchedule"}],
                       "containers": [{"name": "helper-pod", "image": helper_image, "imagePullPolicy": "IfNotPresent",
                                       "resources": resources("10m", "32Mi")}]}}
    return {"config.json": json.dumps(paths, indent=2), "setup": setup, "teardown": teardown,
            "helperPod.yaml": json.dumps(helper, indent=2)}


def _local_path_provisioner(parent: Storage, args: ComponentArgs, lpp: LocalPathInstance,
                            paths: dict[str, Any]) -> list[pulumi.Resource]:
    name, lbl = f"{parent._name}-{lpp.logical}", labels("storage", lpp.app)
    opts = child_opts(parent, args, [parent.ns])
    sa_meta = {"name": lpp.account, "namespace": NAMESPACE, "labels": lbl}
    sa = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=k(sa_meta), opts=opts)
    role_meta = {"name": lpp.cluster_role, "labels": lbl}
    role = k8s.rbac.v1.ClusterRole(f"{name}-role", metadata=k(role_meta), rules=k(_LPP_RULES), opts=opts)
    binding = k8s.rbac.v1.ClusterRoleBinding(
        f"{name}-binding", metadata=k({"name": lpp.cluster_role, "labels": lbl}),
        role_ref=k({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_meta["name"]}),
        subjects=k([{"kind": "ServiceAccount", "name": lpp.account, "namespace": NAMESPACE}]), opts=opts)
    config = k8s.core.v1.ConfigMap(f"{name}-config", metadata=k({"name": lpp.config_map, "namespace": NAMESPACE,
                                                                   "labels": lbl}),
                                   data=_lpp_config(paths, lpp.setup, image(args.cfg, "busybox")), opts=opts)
    deployment = k8s.apps.v1.Deployment(f"{name}-deployment", metadata=k({"name": lpp.deployment,
                                                                            "namespace": NAMESPACE, "labels": lbl}),
                                        spec=k(_lpp_deployment(args, lpp, lbl)),
                                        opts=child_opts(parent, args, [sa, role, binding, config]))
    return [deployment]


_LPP_RULES = [
    {"apiGroups": [""], "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["persistentvolumes", "pods"], "verbs": ["get", "list", "watch", "create", "patch",
                                                                              "update", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list", "watch"]},
]


def _lpp_deployment(args: ComponentArgs, lpp: LocalPathInstance, lbl: dict[str, str]) -> dict[str, Any]:
    command = ["local-path-provisioner", "--debug", "start", "--config", "/etc/config/config.json",
               "--provisioner-name", lpp.provisioner, "--service-account-name", lpp.account,
               "--configmap-name", lpp.config_map, "--helper-image", image(args.cfg, "busybox")]
    container = {
        "name": "local-path-provisioner", "image": image(args.cfg, "local-path-provisioner"),
        "imagePullPolicy": "IfNotPresent", "command": command,
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "CONFIG_MOUNT_PATH", "value": "/etc/config/"}],
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/config/"}],
        "resources": resources("50m", "64Mi", memory_limit="128Mi"),
    }
    selector = {"app.kubernetes.io/name": lpp.app}
    return {"replicas": 1, "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": {**lbl, **selector}},
                         "spec": {"serviceAccountName": lpp.account, "containers": [container],
                                  "volumes": [{"name": "config-volume",
                                               "configMap": {"name": lpp.config_map}}]}}}
