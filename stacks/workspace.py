"""The workload namespace and the shared volumes jobs, serving and TensorBoard meet on.

A TFJob writes event logs to `training-logs` and its SavedModel export to `models`; TensorBoard
reads the first, TF Serving the second. PVCs are namespaced, so the three share one namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from installer import catalogue
from stacks.base import ComponentArgs, child_opts, k, labels, namespace

NAMESPACE = catalogue.WORKSPACE.name
MODELS_PVC = "models"
LOGS_PVC = "training-logs"


@dataclass(frozen=True, kw_only=True)
class WorkspaceArgs(ComponentArgs):
    storage_class: str
    """The default StorageClass: it must offer ReadWriteMany (NFS, Filestore or GlusterFS)."""


class Workspace(pulumi.ComponentResource):
    """Namespace `kubeflow-user` with the ReadWriteMany `models` and `training-logs` volumes."""

    def __init__(self, name: str, args: WorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Workspace", name, None, opts)
        self._name, self._args = name, args
        components = args.cfg.spec.components
        self.ns = namespace(self, args, f"{name}-ns", catalogue.WORKSPACE)
        deps = [self.ns, *args.depends_on]
        self.models = self._claim("models", MODELS_PVC, components.serving.models_storage_size, deps)
        self.logs = self._claim("logs", LOGS_PVC, components.tensorboard.logs_storage_size, deps)
        self.register_outputs({"namespace": NAMESPACE, "models": MODELS_PVC, "logs": LOGS_PVC})

    def _claim(self, suffix: str, claim: str, size: str,
               deps: list[pulumi.Resource]) -> k8s.core.v1.PersistentVolumeClaim:
        meta = {"name": claim, "namespace": NAMESPACE, "labels": labels("workspace")}
        return k8s.core.v1.PersistentVolumeClaim(
            f"{self._name}-{suffix}", metadata=k(meta),
            spec=k({"accessModes": ["ReadWriteMany"], "storageClassName": self._args.storage_class,
                    "resources": {"requests": {"storage": size}}}),
            opts=child_opts(self, self._args, deps))
