"""TensorFlow Serving: a Deployment reading SavedModels from the shared `models` volume, a Service
(gRPC 8500, REST 8501) and an HPA.

Healthy with no model, and a model picked up without a restart (upstream facts, with citations, in
installer/serving.py): the server opens its ports only once every model in its config has a loaded
version, so its config lists only the configured models that already have one. An init container
writes that first config (possibly `model_config_list {}`) into an emptyDir; a busybox sidecar
rewrites it (atomically) when a version appears; the server re-reads it every
MODEL_CONFIG_POLL_S. The configured models are a ConfigMap file the sidecar re-reads, so adding a
model is a ConfigMap change, not a rollout. Probes use the server's ports, never a model's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer.config.model import ServedModel
from installer.serving import (
    FILE_SYSTEM_POLL_S,
    GRPC_PORT,
    LISTER_INTERVAL_S,
    LISTER_SCRIPT,
    MODEL_CONFIG_POLL_S,
    PROBE_PERIOD_S,
    REST_PORT,
    replica_bounds,
    startup_failure_threshold,
)
from stacks.base import ComponentArgs, child_opts, helm_release, image, k, labels, resources
from stacks.gpu import gpu_pod_settings
from stacks.workspace import MODELS_PVC, NAMESPACE

NAME = "tf-serving"
CONFIG_DIR = "/etc/tf-serving"  # the ConfigMap: configured models + the lister script
MODEL_CONFIG_DIR = "/run/tf-serving"  # the emptyDir the lister writes and the server polls
MODEL_CONFIG_FILE = f"{MODEL_CONFIG_DIR}/models.config"
MODELS_MOUNT = "/models"
SELECTOR = {"app.kubernetes.io/name": NAME}


@dataclass(frozen=True, kw_only=True)
class ServingArgs(ComponentArgs):
    pass


def base_path(model: ServedModel) -> str:
    return model.base_path or f"{MODELS_MOUNT}/{model.name}"


def configured_models(models: list[ServedModel]) -> str:
    """One `name base_path` line per configured model: the lister's input (names are DNS labels,
    base paths are validated to plain absolute paths under the models volume)."""
    return "".join(f"{m.name} {base_path(m)}\n" for m in models)


class Serving(pulumi.ComponentResource):
    """TF Serving for every model in spec.components.serving.models."""

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Serving", name, None, opts)
        self._name, self._args = name, args
        spec = args.cfg.spec.components.serving
        meta = {"name": NAME, "namespace": NAMESPACE, "labels": labels("serving", NAME)}
        opts_ = child_opts(self, args, args.depends_on)
        config = k8s.core.v1.ConfigMap(f"{name}-config", metadata=k(dict(meta, name=f"{NAME}-config")),
                                       data={"models": configured_models(list(spec.models)),
                                             "list-models.sh": LISTER_SCRIPT}, opts=opts_)
        deployment = k8s.apps.v1.Deployment(f"{name}-deployment", metadata=k(meta),
                                            spec=k(self._deployment_spec()),
                                            opts=child_opts(self, args, [config, *args.depends_on]))
        k8s.core.v1.Service(f"{name}-service", metadata=k(meta), spec=k({"selector": SELECTOR, "ports": [
            {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
            {"name": "http", "port": REST_PORT, "targetPort": REST_PORT}]}), opts=opts_)
        bounds = replica_bounds(args.cfg)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(f"{name}-hpa", metadata=k(meta), spec=k({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": bounds.min_replicas, "maxReplicas": bounds.max_replicas,
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
        pin = "tensorflow-serving-gpu" if spec.gpu else "tensorflow-serving"
        return {
            "name": NAME, "image": image(self._args.cfg, pin),
            "imagePullPolicy": "IfNotPresent", "command": ["tensorflow_model_server"],
            "args": [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}",
                     f"--model_config_file={MODEL_CONFIG_FILE}",
                     f"--model_config_file_poll_wait_seconds={MODEL_CONFIG_POLL_S}",
                     f"--file_system_poll_wait_seconds={FILE_SYSTEM_POLL_S}"],
            "ports": [{"name": "grpc", "containerPort": GRPC_PORT}, {"name": "http", "containerPort": REST_PORT}],
            # The REST port opens last in Server::BuildAndStart, after the models listed at start are
            # loaded: the startup budget covers that load; no probe asks for a model (404 until one exists).
            "startupProbe": {"tcpSocket": {"port": REST_PORT}, "periodSeconds": PROBE_PERIOD_S,
                             "failureThreshold": startup_failure_threshold()},
            "readinessProbe": {"tcpSocket": {"port": REST_PORT}, "periodSeconds": PROBE_PERIOD_S},
            "livenessProbe": {"tcpSocket": {"port": GRPC_PORT}, "periodSeconds": 2 * PROBE_PERIOD_S,
                              "failureThreshold": 3},
            "resources": res,
            "securityContext": {"allowPrivilegeEscalation": False},
            "volumeMounts": [{"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True},
                             {"name": "model-config", "mountPath": MODEL_CONFIG_DIR, "readOnly": True}],
        }

    def _lister(self, name: str, every: str) -> dict[str, Any]:
        """The lister (busybox): `once` as the init container, every LISTER_INTERVAL_S as the sidecar."""
        return {
            "name": name, "image": image(self._args.cfg, "busybox"), "imagePullPolicy": "IfNotPresent",
            "command": ["sh", f"{CONFIG_DIR}/list-models.sh", f"{CONFIG_DIR}/models", MODEL_CONFIG_FILE, every],
            "resources": resources("10m", "16Mi", cpu_limit="100m", memory_limit="32Mi"),
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True},
                             {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                             {"name": "model-config", "mountPath": MODEL_CONFIG_DIR}],
        }

    def _deployment_spec(self) -> dict[str, Any]:
        spec = self._args.cfg.spec.components.serving
        pod: dict[str, Any] = {
            # Nothing here talks to the API server; a SavedModel's graph can read files (ReadFile op),
            # so no service account token is mounted for it to read.
            "automountServiceAccountToken": False,
            "initContainers": [self._lister("model-config-init", "once")],
            "containers": [self._container(), self._lister("model-lister", str(LISTER_INTERVAL_S))],
            "volumes": [
                {"name": "models", "persistentVolumeClaim": {"claimName": MODELS_PVC, "readOnly": True}},
                {"name": "config", "configMap": {"name": f"{NAME}-config"}},
                {"name": "model-config", "emptyDir": {"sizeLimit": "1Mi"}}]}
        if spec.gpu:
            # The GPU toleration, and the `nvidia` RuntimeClass where containerd's default is runc.
            pod.update(gpu_pod_settings(self._args.cfg))
        # No `replicas`: the HPA owns the scale. On create the API server defaults it to 1 and the HPA
        # raises it to minReplicas; an applied `replicas` would reset the HPA's scale on every update.
        # CPU: maxUnavailable 0, a new pod must be Ready (the models listed at its start loaded) before an
        # old one goes. GPU: no surge, an old pod gives up its GPU first: the scheduler never overcommits
        # nvidia.com/gpu, so with every GPU in use a surge pod stays Pending and the rollout never ends.
        rolling = {"maxUnavailable": 1, "maxSurge": 0} if spec.gpu else {"maxUnavailable": 0, "maxSurge": 1}
        return {"selector": {"matchLabels": SELECTOR},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
                "template": {"metadata": {"labels": {**labels("serving", NAME), **SELECTOR}}, "spec": pod}}
