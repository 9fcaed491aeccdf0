"""TensorFlow Serving: a Deployment reading SavedModels from the shared `models` volume, a Service
(gRPC 8500, REST 8501) and an HPA. Models are listed in a model_config_file from a ConfigMap, which
the server re-reads every minute, so adding a model is a ConfigMap change, not a rollout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer.config.model import ServedModel
from stacks.base import ComponentArgs, child_opts, helm_release, image, k, labels, resources
from stacks.workspace import MODELS_PVC, NAMESPACE

NAME = "tf-serving"
GRPC_PORT = 8500
REST_PORT = 8501
CONFIG_DIR = "/etc/tf-serving"
SELECTOR = {"app.kubernetes.io/name": NAME}


@dataclass(frozen=True, kw_only=True)
class ServingArgs(ComponentArgs):
    pass


def base_path(model: ServedModel) -> str:
    return model.base_path or f"/models/{model.name}"


def model_config(models: list[ServedModel]) -> str:
    """The text-format ModelServerConfig (tensorflow_serving/g3doc/serving_config.md)."""
    entries = "".join(f"  config {{\n    name: '{m.name}'\n    base_path: '{base_path(m)}'\n"
                      "    model_platform: 'tensorflow'\n  }\n" for m in models)
    return f"model_config_list {{\n{entries}}}\n"


class Serving(pulumi.ComponentResource):
    """TF Serving for every model in spec.components.serving.models."""

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Serving", name, None, opts)
        self._name, self._args = name, args
        spec = args.cfg.spec.components.serving
        meta = {"name": NAME, "namespace": NAMESPACE, "labels": labels("serving", NAME)}
        opts_ = child_opts(self, args, args.depends_on)
        config = k8s.core.v1.ConfigMap(f"{name}-config", metadata=k(dict(meta, name=f"{NAME}-config")),
                                       data={"models.config": model_config(list(spec.models))}, opts=opts_)
        deployment = k8s.apps.v1.Deployment(f"{name}-deployment", metadata=k(meta),
                                            spec=k(self._deployment_spec()),
                                            opts=child_opts(self, args, [config, *args.depends_on]))
        k8s.core.v1.Service(f"{name}-service", metadata=k(meta), spec=k({"selector": SELECTOR, "ports": [
            {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
            {"name": "http", "port": REST_PORT, "targetPort": REST_PORT}]}), opts=opts_)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(f"{name}-hpa", metadata=k(meta), spec=k({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": spec.replicas, "maxReplicas": spec.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 70}}}]}),
            opts=child_opts(self, args, [deployment]))
        if args.cfg.spec.profile != "gcp":  # GKE runs its own metrics-server
            # The autoscaler's CPU metric comes from the resource metrics API; without it the HPA never scales.
            helm_release(self, args, "metrics-server", ns="kube-system", depends_on=args.depends_on)
        self.endpoint = f"http://{NAME}.{NAMESPACE}.svc:{REST_PORT}"
        self.register_outputs({"endpoint": self.endpoint, "models": [m.name for m in spec.models]})

    def _container(self) -> dict[str, Any]:
        spec = self._args.cfg.spec.components.serving
        res = resources("500m", "1Gi", cpu_limit="2", memory_limit="4Gi")
        if spec.gpu:
            res["limits"]["nvidia.com/gpu"] = "1"
        first = spec.models[0].name
        pin = "tensorflow-serving-gpu" if spec.gpu else "tensorflow-serving"
        return {
            "name": NAME, "image": image(self._args.cfg, pin),
            "imagePullPolicy": "IfNotPresent", "command": ["tensorflow_model_server"],
            "args": [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}",
                     f"--model_config_file={CONFIG_DIR}/models.config",
                     "--model_config_file_poll_wait_seconds=60", "--file_system_poll_wait_seconds=30"],
            "ports": [{"name": "grpc", "containerPort": GRPC_PORT}, {"name": "http", "containerPort": REST_PORT}],
            # Model Status API: 200 once a version of the model is loaded (g3doc/api_rest.md).
            "readinessProbe": {"httpGet": {"path": f"/v1/models/{first}", "port": REST_PORT},
                               "initialDelaySeconds": 5, "periodSeconds": 10},
            "livenessProbe": {"tcpSocket": {"port": GRPC_PORT}, "initialDelaySeconds": 30, "periodSeconds": 20},
            "resources": res,
            "securityContext": {"allowPrivilegeEscalation": False},
            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True},
                             {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        }

    def _deployment_spec(self) -> dict[str, Any]:
        spec = self._args.cfg.spec.components.serving
        pod: dict[str, Any] = {"containers": [self._container()], "volumes": [
            {"name": "models", "persistentVolumeClaim": {"claimName": MODELS_PVC, "readOnly": True}},
            {"name": "config", "configMap": {"name": f"{NAME}-config"}}]}
        if spec.gpu:
            pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        # maxUnavailable 0: a new pod must pass readiness (model loaded) before an old one goes.
        return {"replicas": spec.replicas, "selector": {"matchLabels": SELECTOR},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {"metadata": {"labels": {**labels("serving", NAME), **SELECTOR}}, "spec": pod}}
