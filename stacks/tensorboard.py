"""TensorBoard over every job's event logs (the shared `training-logs` volume), behind JupyterHub's login.

TensorBoard has no authentication of its own, so it listens on 127.0.0.1 only. The pod's one open
port is a small reverse proxy (files/tensorboard_auth.py, run in z2jh's hub image) that lets a
request through only with a JupyterHub login, using JupyterHub's own service OAuth (HubOAuth).
TensorBoard is registered as the JupyterHub service `tensorboard` and reached through the hub's
proxy at /services/tensorboard/, so it shares JupyterHub's address, ingress and certificate and has
no Ingress of its own. Every hub user may open it (the `user` role gets the service's access
scope); everyone sees the same runs.

Who reaches what (NetworkPolicy here, z2jh's own policies through `hub_values`): the hub's proxy and
the hub (its service health check) reach the proxy port; the pod reaches only the hub API and DNS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer import catalogue
from installer.config.resolved import ClusterConfig
from stacks.base import (
    ComponentArgs,
    child_opts,
    image,
    k,
    labels,
    resources,
    restricted_container_security,
    secret,
)
from stacks.workspace import LOGS_PVC, NAMESPACE

NAME = "tensorboard"
SELECTOR = {"app.kubernetes.io/name": NAME}
PORT = 8000
"""The Service's only port: the login proxy. TensorBoard itself is never exposed."""
TENSORBOARD_PORT = 6006  # on 127.0.0.1 inside the pod
SERVICE_NAME = "tensorboard"  # the JupyterHub service
SERVICE_PREFIX = f"/services/{SERVICE_NAME}/"  # where JupyterHub's proxy routes a service with a url
CLIENT_ID = f"service-{SERVICE_NAME}"  # JupyterHub's default (and required prefix) for a service's OAuth client
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
AUTH_SECRET = "tensorboard-hub-auth"  # noqa: S105 - the Secret's (and ConfigMap's) name
TOKEN_KEY = "api-token"  # noqa: S105 - the key's name in the Secret, not a value
SCRIPT = Path(__file__).resolve().parent / "files" / "tensorboard_auth.py"
SCRIPT_DIR = "/srv/tensorboard-auth"
# z2jh's release `jupyterhub` (fullnameOverride "") in namespace `jupyterhub`: Service `hub` on 8081,
# pods labelled with the chart's legacy match labels (jupyterhub/templates/_helpers.tpl, 3.3.8-4.4.0).
HUB_NAMESPACE = catalogue.JUPYTERHUB.name
HUB_API_URL = f"http://hub.{HUB_NAMESPACE}.svc:8081/hub/api"
HUB_PORT = 8081
HUB_POD = {"app": "jupyterhub", "release": "jupyterhub", "component": "hub"}
PROXY_POD = {"app": "jupyterhub", "release": "jupyterhub", "component": "proxy"}
# The hub image's user (images/hub/Dockerfile: NB_UID=1000). It is named, not numbered, in the
# image, so runAsNonRoot needs the number given (z2jh's hub.containerSecurityContext does the same).
HUB_IMAGE_UID = 1000


def hub_values(cfg: ClusterConfig) -> dict[str, Any]:
    """What the z2jh release needs for the `tensorboard` service (jupyterhub.py adds it: `with_hub_service`).

    - hub.services.tensorboard: an external service with a url, so JupyterHub routes
      /services/tensorboard/ to it and registers its OAuth client (redirect /services/tensorboard/
      oauth_callback, secret = api_token); kfinstall sets the token, so the chart does not generate one.
    - hub.loadRoles.user: the default `user` role has only `self` (JupyterHub 4.1 and 5.x,
      jupyterhub/roles.py), which does not include access to services; adding the service's access
      scope lets every user in. Leaving `users` out keeps the role on every user (app.py
      init_role_assignment).
    - network policies: z2jh's hub admits other namespaces only when told (hub.networkPolicy.ingress);
      explicit egress rules for the proxy and the hub do not depend on pod addresses being private.
    """
    to_tensorboard = {"to": [_pods_in(NAMESPACE, SELECTOR)], "ports": [{"port": PORT, "protocol": "TCP"}]}
    return {
        "hub": {
            "services": {SERVICE_NAME: {
                "url": f"http://{NAME}.{NAMESPACE}.svc:{PORT}",
                "api_token": secret(cfg, "jupyterhub_tensorboard_api_token"),
                "oauth_no_confirm": True,  # part of the platform: no "authorize access" page
                "display": True,
            }},
            "loadRoles": {"user": {"description": "Standard user privileges, and TensorBoard",
                                   "scopes": ["self", ACCESS_SCOPE]}},
            "networkPolicy": {
                "ingress": [{"from": [_pods_in(NAMESPACE, SELECTOR)], "ports": [{"port": "http"}]}],
                "egress": [to_tensorboard],
            },
        },
        "proxy": {"chp": {"networkPolicy": {"egress": [to_tensorboard]}}},
    }


def with_hub_service(values: dict[str, Any], cfg: ClusterConfig) -> dict[str, Any]:
    """The z2jh values plus `hub_values`: maps merge, rule lists are extended (rules set before stay)."""
    return _extend(values, hub_values(cfg))


def _extend(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            out[key] = _extend(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = [*old, *value]
        else:
            out[key] = value
    return out


def _pods_in(namespace: str, match: dict[str, str]) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "podSelector": {"matchLabels": dict(match)}}


@dataclass(frozen=True, kw_only=True)
class TensorboardArgs(ComponentArgs):
    pass


class Tensorboard(pulumi.ComponentResource):
    """TensorBoard (read-only over /logs) and its login proxy; a Service for the hub's proxy only."""

    def __init__(self, name: str, args: TensorboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Tensorboard", name, None, opts)
        self._name, self._args = name, args
        if not args.cfg.spec.components.jupyterhub.enabled:
            # Rules refuse this combination; this guard keeps a bypass of the loader from serving it unauthenticated.
            raise ValueError("TensorBoard is served only behind JupyterHub's login: JupyterHub must be enabled")
        meta = {"name": NAME, "namespace": NAMESPACE, "labels": labels("tensorboard", NAME)}
        opts_ = child_opts(self, args, args.depends_on)
        auth_meta = {**meta, "name": AUTH_SECRET}
        token = k8s.core.v1.Secret(f"{name}-auth-token", metadata=k(auth_meta), type="Opaque",
                                   string_data={TOKEN_KEY: secret(args.cfg, "jupyterhub_tensorboard_api_token")},
                                   opts=opts_)
        script = k8s.core.v1.ConfigMap(f"{name}-auth-script", metadata=k(auth_meta),
                                       data={SCRIPT.name: SCRIPT.read_text(encoding="utf-8")}, opts=opts_)
        k8s.apps.v1.Deployment(f"{name}-deployment", metadata=k(meta), spec=k(self._deployment_spec()),
                               opts=child_opts(self, args, [*args.depends_on, token, script]))
        k8s.core.v1.Service(f"{name}-service", metadata=k(meta), spec=k({
            "selector": SELECTOR, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}), opts=opts_)
        k8s.networking.v1.NetworkPolicy(f"{name}-netpol", metadata=k(meta), spec=k(network_policy()), opts=opts_)
        self.register_outputs({"service": f"{NAME}.{NAMESPACE}.svc:{PORT}", "path": SERVICE_PREFIX})

    def _deployment_spec(self) -> dict[str, Any]:
        cfg = self._args.cfg
        tensorboard = {
            "name": NAME, "image": image(cfg, "tensorboard"), "imagePullPolicy": "IfNotPresent",
            # 127.0.0.1 only: nothing outside the pod reaches TensorBoard except through the login proxy.
            "command": ["tensorboard", "--logdir=/logs", "--host=127.0.0.1", f"--port={TENSORBOARD_PORT}",
                        f"--path_prefix={SERVICE_PREFIX.rstrip('/')}"],
            "resources": resources("100m", "512Mi", cpu_limit="1", memory_limit="2Gi"),
            "securityContext": {"allowPrivilegeEscalation": False},
            "volumeMounts": [{"name": "logs", "mountPath": "/logs", "readOnly": True}],
        }
        auth = {
            "name": "hub-auth", "image": image(cfg, "tensorboard-auth"), "imagePullPolicy": "IfNotPresent",
            "command": ["python3", f"{SCRIPT_DIR}/{SCRIPT.name}", f"--port={PORT}",
                        f"--upstream=http://127.0.0.1:{TENSORBOARD_PORT}"],
            "env": auth_env(),
            "ports": [{"name": "http", "containerPort": PORT}],
            # /readyz is not under the service prefix, so the hub's proxy never routes to it.
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 10},
            "resources": resources("50m", "128Mi", cpu_limit="500m", memory_limit="256Mi"),
            "securityContext": {**restricted_container_security(), "runAsUser": HUB_IMAGE_UID,
                                "runAsGroup": HUB_IMAGE_UID, "readOnlyRootFilesystem": True},
            "volumeMounts": [{"name": "auth-script", "mountPath": SCRIPT_DIR, "readOnly": True}],
        }
        return {"replicas": 1, "selector": {"matchLabels": SELECTOR},
                "template": {"metadata": {"labels": {**labels("tensorboard", NAME), **SELECTOR}}, "spec": {
                    "automountServiceAccountToken": False,  # neither container talks to the Kubernetes API
                    "containers": [tensorboard, auth],
                    "volumes": [
                        {"name": "logs", "persistentVolumeClaim": {"claimName": LOGS_PVC, "readOnly": True}},
                        {"name": "auth-script", "configMap": {"name": AUTH_SECRET, "defaultMode": 0o444}},
                    ]}}}


def auth_env() -> list[dict[str, Any]]:
    """The login proxy's settings, under the names JupyterHub gives a service's environment."""
    plain = {
        "JUPYTERHUB_API_URL": HUB_API_URL,
        "JUPYTERHUB_SERVICE_NAME": SERVICE_NAME,
        "JUPYTERHUB_SERVICE_PREFIX": SERVICE_PREFIX,
        "JUPYTERHUB_CLIENT_ID": CLIENT_ID,
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{SERVICE_PREFIX}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps([ACCESS_SCOPE]),
    }
    token = {"name": "JUPYTERHUB_API_TOKEN",
             "valueFrom": {"secretKeyRef": {"name": AUTH_SECRET, "key": TOKEN_KEY}}}
    return [token, *({"name": key, "value": value} for key, value in plain.items())]


def network_policy() -> dict[str, Any]:
    """In: the hub's proxy (users) and the hub (service health check), on the login proxy's port only.
    Out: the hub API and DNS; TensorBoard needs nothing else."""
    ingress_from = [_pods_in(HUB_NAMESPACE, PROXY_POD), _pods_in(HUB_NAMESPACE, HUB_POD)]
    dns = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    return {
        "podSelector": {"matchLabels": dict(SELECTOR)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": ingress_from, "ports": [{"port": PORT, "protocol": "TCP"}]}],
        "egress": [
            {"to": [_pods_in(HUB_NAMESPACE, HUB_POD)], "ports": [{"port": HUB_PORT, "protocol": "TCP"}]},
            {"ports": dns},
        ],
    }
