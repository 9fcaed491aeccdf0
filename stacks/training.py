"""training-operator v1 standalone (TFJob, PyTorchJob) at the channel's pinned image.

Kubeflow 1.11+ ships Trainer v2 by default, which has no TensorFlow runtime, so TFJob means the
v1 operator on every channel. CRDs go first with server-side apply and forced conflicts; the
controller only starts once they exist, and it runs with exactly the schemes whose CRDs we apply
(an enabled scheme without its CRD makes the manager exit with "no matches for kind").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer import catalogue
from stacks.base import (
    PATCH_FORCE,
    ComponentArgs,
    child_opts,
    image,
    k,
    labels,
    namespace,
    resources,
    restricted_container_security,
)
from stacks.training_crds import GROUP, all_crds

NAMESPACE = catalogue.TRAINING.name
NAME = "training-operator"
WEBHOOK_SECRET = "training-operator-webhook-cert"  # noqa: S105 - a Secret object name
WEBHOOK_CONFIG = "validator.training-operator.kubeflow.org"
SELECTOR = {"control-plane": "kubeflow-training-operator"}


@dataclass(frozen=True, kw_only=True)
class TrainingArgs(ComponentArgs):
    pass


class Training(pulumi.ComponentResource):
    """Namespace, CRDs, RBAC, the controller Deployment and its webhook Service."""

    def __init__(self, name: str, args: TrainingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Training", name, None, opts)
        self._name, self._args = name, args
        crds = all_crds()
        self.crds = [self._crd(scheme, body) for scheme, body in crds.items()]
        ns = namespace(self, args, f"{name}-ns", catalogue.TRAINING)
        rbac = self._rbac(ns, list(crds))
        cert = k8s.core.v1.Secret(f"{name}-webhook-cert", metadata=k(self._meta(WEBHOOK_SECRET)), type="Opaque",
                                  opts=child_opts(self, args, [ns]))
        service = k8s.core.v1.Service(f"{name}-service", metadata=k(self._meta(NAME)), spec=k(_service_spec()),
                                      opts=child_opts(self, args, [ns]))
        webhook = self._webhook(list(crds))
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment", metadata=k(self._meta(NAME)), spec=k(self._deployment_spec(list(crds))),
            opts=child_opts(self, args, [*self.crds, *rbac, cert, service, webhook]))
        self.register_outputs({"namespace": NAMESPACE, "crds": [c["metadata"]["name"] for c in crds.values()]})

    def _meta(self, name: str, namespaced: bool = True) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": labels("training", NAME)}
        if namespaced:
            meta["namespace"] = NAMESPACE
        return meta

    def _crd(self, scheme: str, body: dict[str, Any]) -> k8s.apiextensions.v1.CustomResourceDefinition:
        meta = dict(body["metadata"], labels=labels("training", NAME), annotations=PATCH_FORCE)
        return k8s.apiextensions.v1.CustomResourceDefinition(
            f"{self._name}-crd-{scheme}", metadata=k(meta), spec=k(body["spec"]),
            opts=child_opts(self, self._args))

    def _rbac(self, ns: pulumi.Resource, schemes: list[str]) -> list[pulumi.Resource]:
        opts = child_opts(self, self._args, [ns])
        sa = k8s.core.v1.ServiceAccount(f"{self._name}-sa", metadata=k(self._meta(NAME)), opts=opts)
        role = k8s.rbac.v1.ClusterRole(f"{self._name}-role", metadata=k(self._meta(NAME, False)),
                                       rules=k(_operator_rules(schemes)), opts=opts)
        binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{self._name}-binding", metadata=k(self._meta(NAME, False)),
            role_ref=k({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME}),
            subjects=k([{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]), opts=opts)
        # Lets anyone with `edit` in a namespace submit jobs there (aggregated into the built-in role).
        edit = k8s.rbac.v1.ClusterRole(
            f"{self._name}-edit", metadata=k({"name": "kubeflow-training-edit", "labels": {
                **labels("training", NAME), "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                "rbac.authorization.k8s.io/aggregate-to-admin": "true"}}),
            rules=k([{"apiGroups": [GROUP], "resources": [f"{s}s" for s in schemes] + [f"{s}s/status" for s in schemes],
                      "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]), opts=opts)
        return [sa, role, binding, edit]

    def _webhook(self, schemes: list[str]) -> pulumi.Resource:
        # caBundle is left out on purpose: the operator's cert controller writes it (and the Secret).
        hooks = [{"name": f"validation.{s}.training-operator.kubeflow.org", "admissionReviewVersions": ["v1"],
                  "clientConfig": {"service": {"name": NAME, "namespace": NAMESPACE,
                                               "path": f"/validate-kubeflow-org-v1-{s}"}},
                  "failurePolicy": "Fail", "sideEffects": "None",
                  "rules": [{"apiGroups": [GROUP], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                             "resources": [f"{s}s"]}]} for s in schemes]
        return k8s.admissionregistration.v1.ValidatingWebhookConfiguration(
            f"{self._name}-webhook", metadata=k(self._meta(WEBHOOK_CONFIG, False)), webhooks=k(hooks),
            opts=child_opts(self, self._args, self.crds))

    def _deployment_spec(self, schemes: list[str]) -> dict[str, Any]:
        probe = {"initialDelaySeconds": 15, "periodSeconds": 20, "timeoutSeconds": 3}
        container = {
            "name": NAME, "image": image(self._args.cfg, "training-operator"), "imagePullPolicy": "IfNotPresent",
            "command": ["/manager"], "args": [f"--enable-scheme={s}" for s in schemes],
            "env": [{"name": "MY_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "MY_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "ports": [{"name": "metrics", "containerPort": 8080}, {"name": "webhook-server", "containerPort": 9443}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8081}, **probe},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8081}, **probe},
            "resources": resources("100m", "256Mi", memory_limit="512Mi"),
            "securityContext": restricted_container_security(),
            "volumeMounts": [{"name": "cert", "mountPath": "/tmp/k8s-webhook-server/serving-certs",  # noqa: S108 - fixed path controller-runtime reads
                              "readOnly": True}],
        }
        pod = {"serviceAccountName": NAME, "containers": [container], "terminationGracePeriodSeconds": 10,
               "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                   "seccompProfile": {"type": "RuntimeDefault"}},
               "volumes": [{"name": "cert", "secret": {"secretName": WEBHOOK_SECRET, "defaultMode": 420}}]}
        return {"replicas": 1, "selector": {"matchLabels": SELECTOR},
                "template": {"metadata": {"labels": {**labels("training", NAME), **SELECTOR}}, "spec": pod}}


def _service_spec() -> dict[str, Any]:
    return {"selector": SELECTOR, "ports": [
        {"name": "monitoring-port", "port": 8080, "targetPort": 8080},
        {"name": "webhook-server", "port": 443, "targetPort": 9443, "protocol": "TCP"}]}


def _operator_rules(schemes: list[str]) -> list[dict[str, Any]]:
    every = ["create", "delete", "get", "list", "patch", "update", "watch"]
    jobs = [f"{s}s" for s in schemes]
    return [
        {"apiGroups": [""], "resources": ["configmaps", "events", "pods", "pods/exec", "serviceaccounts", "services"],
         "verbs": every},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "update", "watch"]},
        {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
         "verbs": ["get", "list", "update", "watch"]},
        {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": every},
        {"apiGroups": [GROUP], "resources": jobs, "verbs": every},
        {"apiGroups": [GROUP], "resources": [f"{j}/status" for j in jobs], "verbs": ["get", "patch", "update"]},
        {"apiGroups": [GROUP], "resources": [f"{j}/finalizers" for j in jobs], "verbs": ["update"]},
        {"apiGroups": ["scheduling.volcano.sh", "scheduling.x-k8s.io"], "resources": ["podgroups"], "verbs": every},
    ]
