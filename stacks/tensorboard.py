"""TensorBoard reading every job's event logs from the shared `training-logs` volume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.base import ComponentArgs, child_opts, image, k, labels, resources
from stacks.workspace import LOGS_PVC, NAMESPACE

NAME = "tensorboard"
PORT = 6006
PATH_PREFIX = "/tensorboard"
SELECTOR = {"app.kubernetes.io/name": NAME}


@dataclass(frozen=True, kw_only=True)
class TensorboardArgs(ComponentArgs):
    ingress_class: str | None = None


class Tensorboard(pulumi.ComponentResource):
    """A read-only TensorBoard over /logs; reachable by Service, and by Ingress when a host is set."""

    def __init__(self, name: str, args: TensorboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Tensorboard", name, None, opts)
        self._name, self._args = name, args
        meta = {"name": NAME, "namespace": NAMESPACE, "labels": labels("tensorboard", NAME)}
        opts_ = child_opts(self, args, args.depends_on)
        k8s.apps.v1.Deployment(f"{name}-deployment", metadata=k(meta), spec=k(self._deployment_spec()), opts=opts_)
        k8s.core.v1.Service(f"{name}-service", metadata=k(meta), spec=k({
            "selector": SELECTOR, "ports": [{"name": "http", "port": PORT, "targetPort": PORT}]}), opts=opts_)
        host = args.cfg.spec.networking.ingress.host
        if host and args.ingress_class:
            k8s.networking.v1.Ingress(f"{name}-ingress", metadata=k(meta), spec=k(_ingress(host, args.ingress_class)),
                                      opts=opts_)
        self.register_outputs({"service": f"{NAME}.{NAMESPACE}.svc:{PORT}"})

    def _deployment_spec(self) -> dict[str, Any]:
        prefix = PATH_PREFIX if self._args.cfg.spec.networking.ingress.host else ""
        command = ["tensorboard", "--logdir=/logs", "--bind_all", f"--port={PORT}"]
        if prefix:
            command.append(f"--path_prefix={prefix}")
        container = {
            "name": NAME, "image": image(self._args.cfg, "tensorboard"), "imagePullPolicy": "IfNotPresent",
            "command": command, "ports": [{"name": "http", "containerPort": PORT}],
            "readinessProbe": {"httpGet": {"path": f"{prefix}/", "port": PORT}, "periodSeconds": 10},
            "resources": resources("100m", "512Mi", cpu_limit="1", memory_limit="2Gi"),
            "securityContext": {"allowPrivilegeEscalation": False},
            "volumeMounts": [{"name": "logs", "mountPath": "/logs", "readOnly": True}],
        }
        return {"replicas": 1, "selector": {"matchLabels": SELECTOR},
                "template": {"metadata": {"labels": {**labels("tensorboard", NAME), **SELECTOR}}, "spec": {
                    "containers": [container],
                    "volumes": [{"name": "logs", "persistentVolumeClaim": {"claimName": LOGS_PVC, "readOnly": True}}]}}}


def _ingress(host: str, ingress_class: str) -> dict[str, Any]:
    backend = {"service": {"name": NAME, "port": {"number": PORT}}}
    return {"ingressClassName": ingress_class, "rules": [{"host": host, "http": {"paths": [
        {"path": PATH_PREFIX, "pathType": "Prefix", "backend": backend}]}}]}
