"""Storage: csi-driver-nfs with a StorageClass on the NFS export (or Filestore on gcp), and a
ReadWriteMany class over the GlusterFS node mount through local-path-provisioner.

GlusterFS lost its in-tree volume plugin in Kubernetes 1.26 and Heketi is archived, so Gluster is
mounted on every node by Ansible and local-path-provisioner's `sharedFileSystemPath` hands out
per-volume directories on that mount (all access modes work on a filesystem every node shares).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.base import ComponentArgs, child_opts, helm_release, image, k, labels, namespace, resources

NAMESPACE = "kfinstall-storage"
NFS_PROVISIONER = "nfs.csi.k8s.io"
GLUSTER_PROVISIONER = "kfinstall.io/gluster-local-path"
FILESTORE_CLASS = "filestore"  # the model has no name field for it (see the platform report)
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
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
        self.ns = namespace(self, args, f"{name}-ns", NAMESPACE, level="privileged", component="storage")
        default = default_class_name(args)
        self.classes: list[k8s.storage.v1.StorageClass] = []
        if args.nfs is not None:
            self._nfs(args.nfs, default)
        if args.cfg.spec.storage.gluster.enabled:
            self._gluster(default)
        self.default_class = pulumi.Output.from_input(default)
        self.register_outputs({"default_class": self.default_class})

    def _nfs(self, export: NfsExport, default: str) -> None:
        chart = helm_release(self, self._args, "csi-driver-nfs", ns=NAMESPACE, depends_on=[self.ns])
        params = {"server": export.server, "share": export.share, "subDir": NFS_SUBDIR, "onDelete": "archive"}
        self.classes.append(self._storage_class(f"{self._name}-nfs", export.class_name, NFS_PROVISIONER,
                                                params=params, mount_options=export.mount_options, default=default,
                                                depends_on=[chart]))

    def _gluster(self, default: str) -> None:
        gluster = self._args.cfg.spec.storage.gluster
        provisioner = _local_path_provisioner(self, self._args, gluster.mount_path)
        self.classes.append(self._storage_class(f"{self._name}-gluster", gluster.storage_class,
                                                GLUSTER_PROVISIONER, params={}, mount_options=[], default=default,
                                                depends_on=provisioner))

    def _storage_class(self, logical: str, class_name: str, provisioner: str, *, params: dict[str, Any],
                       mount_options: list[str], default: str,
                       depends_on: list[pulumi.Resource]) -> k8s.storage.v1.StorageClass:
        annotations = {DEFAULT_CLASS_ANNOTATION: "true" if class_name == default else "false"}
        return k8s.storage.v1.StorageClass(
            logical, metadata=k({"name": class_name, "labels": labels("storage"), "annotations": annotations}),
            provisioner=provisioner, parameters=params or None, mount_options=mount_options or None,
            reclaim_policy="Delete", volume_binding_mode="Immediate", allow_volume_expansion=False,
            opts=child_opts(self, self._args, depends_on))


def _lpp_config(mount_path: str, helper_image: str) -> dict[str, str]:
    """local-path-provisioner's ConfigMap: shared path, setup/teardown scripts and the helper pod."""
    setup = "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n"
    teardown = "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n"
    # nodePathMap must be empty when sharedFileSystemPath is set (rancher/local-path-provisioner README).
    config = {"nodePathMap": [], "sharedFileSystemPath": mount_path}
    helper = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
              "spec": {"priorityClassName": "system-node-critical",
                       "tolerations": [{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists",
                                        "effect": "NoSchedule"}],
                       "containers": [{"name": "helper-pod", "image": helper_image, "imagePullPolicy": "IfNotPresent",
                                       "resources": resources("10m", "32Mi")}]}}
    return {"config.json": json.dumps(config, indent=2), "setup": setup, "teardown": teardown,
            "helperPod.yaml": json.dumps(helper, indent=2)}


def _local_path_provisioner(parent: Storage, args: ComponentArgs, mount_path: str) -> list[pulumi.Resource]:
    name, lbl = f"{parent._name}-local-path", labels("storage", "local-path-provisioner")
    opts = child_opts(parent, args, [parent.ns])
    sa_meta = {"name": "local-path-provisioner", "namespace": NAMESPACE, "labels": lbl}
    sa = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=k(sa_meta), opts=opts)
    role_meta = {"name": "kfinstall-local-path-provisioner", "labels": lbl}
    role = k8s.rbac.v1.ClusterRole(f"{name}-role", metadata=k(role_meta), rules=k(_LPP_RULES), opts=opts)
    binding = k8s.rbac.v1.ClusterRoleBinding(
        f"{name}-binding", metadata=k({"name": "kfinstall-local-path-provisioner", "labels": lbl}),
        role_ref=k({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_meta["name"]}),
        subjects=k([{"kind": "ServiceAccount", "name": "local-path-provisioner", "namespace": NAMESPACE}]), opts=opts)
    config = k8s.core.v1.ConfigMap(f"{name}-config", metadata=k({"name": "local-path-config", "namespace": NAMESPACE,
                                                                   "labels": lbl}),
                                   data=_lpp_config(mount_path, image(args.cfg, "busybox")), opts=opts)
    deployment = k8s.apps.v1.Deployment(f"{name}-deployment", metadata=k({"name": "local-path-provisioner",
                                                                            "namespace": NAMESPACE, "labels": lbl}),
                                        spec=k(_lpp_deployment(args, lbl)),
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


def _lpp_deployment(args: ComponentArgs, lbl: dict[str, str]) -> dict[str, Any]:
    command = ["local-path-provisioner", "--debug", "start", "--config", "/etc/config/config.json",
               "--provisioner-name", GLUSTER_PROVISIONER, "--service-account-name", "local-path-provisioner",
               "--configmap-name", "local-path-config", "--helper-image", image(args.cfg, "busybox")]
    container = {
        "name": "local-path-provisioner", "image": image(args.cfg, "local-path-provisioner"),
        "imagePullPolicy": "IfNotPresent", "command": command,
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "CONFIG_MOUNT_PATH", "value": "/etc/config/"}],
        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/config/"}],
        "resources": resources("50m", "64Mi", memory_limit="128Mi"),
    }
    selector = {"app.kubernetes.io/name": "local-path-provisioner"}
    return {"replicas": 1, "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": {**lbl, **selector}},
                         "spec": {"serviceAccountName": "local-path-provisioner", "containers": [container],
                                  "volumes": [{"name": "config-volume",
                                               "configMap": {"name": "local-path-config"}}]}}}
