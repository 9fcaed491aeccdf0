"""Networking: MetalLB with the address pool from the model (bare metal) and an ingress controller.

The controller is the one the channel pins: ingress-nginx up to 1.11, Traefik from 26.03 on, because
ingress-nginx was retired in March 2026 and gets no more releases or security fixes (Kubernetes
Steering and Security Response Committees' statement, kubernetes.io blog 2026-01-29). Traefik serves
the same networking.k8s.io/v1 Ingress objects through its kubernetesIngress provider
(https://doc.traefik.io/traefik/providers/kubernetes-ingress/), so every channel has one TLS path
(stacks/tls.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer import catalogue
from installer.catalogue import IngressController, ingress_controller, tls_enabled
from installer.config.resolved import ClusterConfig
from stacks.base import ComponentArgs, child_opts, helm_release, k, labels, namespace

METALLB_NAMESPACE = catalogue.METALLB.name
POOL_NAME = "kfinstall"
# The IngressClass name each controller (its chart key in installer/releases) gets when
# spec.networking.ingress.className is empty.
DEFAULT_CLASS: dict[IngressController, str] = {"ingress-nginx": "nginx", "traefik": "traefik"}


def ingress_class(cfg: ClusterConfig) -> str | None:
    """The IngressClass every UI Ingress names; None without an ingress controller."""
    ingress = cfg.spec.networking.ingress
    if not ingress.enabled:
        return None
    return ingress.class_name or DEFAULT_CLASS[ingress_controller(cfg.release)]


@dataclass(frozen=True, kw_only=True)
class NetworkingArgs(ComponentArgs):
    pass


class Networking(pulumi.ComponentResource):
    """LoadBalancer addresses (MetalLB) and HTTP(S) routing (the channel's ingress controller)."""

    def __init__(self, name: str, args: NetworkingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Networking", name, None, opts)
        self._name, self._args = name, args
        net = args.cfg.spec.networking
        self.ingress_class = ingress_class(args.cfg)
        if net.metallb.enabled:
            self._metallb(net.metallb.addresses)
        if net.ingress.enabled:
            self._ingress()
        self.register_outputs({"ingress_class": self.ingress_class})

    def _metallb(self, addresses: list[str]) -> None:
        ns = namespace(self, self._args, f"{self._name}-metallb-ns", catalogue.METALLB)
        release = helm_release(self, self._args, "metallb", ns=METALLB_NAMESPACE, depends_on=[ns])
        # The pool and advertisement are CRs validated by MetalLB's webhook: they need the release ready.
        opts = child_opts(self, self._args, [release])
        meta = {"name": POOL_NAME, "namespace": METALLB_NAMESPACE, "labels": labels("networking")}
        k8s.apiextensions.CustomResource(
            f"{self._name}-pool", api_version="metallb.io/v1beta1", kind="IPAddressPool",
            metadata=k(meta), spec=k({"addresses": list(addresses), "autoAssign": True}), opts=opts)
        k8s.apiextensions.CustomResource(
            f"{self._name}-l2", api_version="metallb.io/v1beta1", kind="L2Advertisement",
            metadata=k(meta), spec=k({"ipAddressPools": [POOL_NAME]}), opts=opts)

    @property
    def service_type(self) -> str:
        """LoadBalancer where something answers for it (MetalLB, GKE), NodePort elsewhere."""
        # Without MetalLB or a cloud LB controller a LoadBalancer Service stays <pending> forever;
        # private clouds usually point their own load balancer at node ports instead.
        cfg = self._args.cfg
        return "LoadBalancer" if cfg.spec.networking.metallb.enabled or cfg.spec.profile == "gcp" else "NodePort"

    def _ingress(self) -> None:
        controller = ingress_controller(self._args.cfg.release)
        ns_name = catalogue.INGRESS[controller].name
        # Each controller's namespace has its own logical name: on the hop to Traefik, ingress-nginx's is
        # deleted with its release after Traefik serves, instead of being replaced (renamed) in place.
        logical = f"{self._name}-ingress-ns" if controller == "ingress-nginx" else f"{self._name}-{controller}-ns"
        ns = namespace(self, self._args, logical, catalogue.INGRESS[controller])
        computed = self._nginx_values() if controller == "ingress-nginx" else self._traefik_values()
        helm_release(self, self._args, controller, ns=ns_name, computed=computed,
                     depends_on=[ns, *self._args.depends_on])

    def _nginx_values(self) -> dict[str, Any]:
        # ingress-nginx redirects HTTP to HTTPS by itself for an Ingress with tls (ssl-redirect defaults to true).
        return {"controller": {
            "ingressClassResource": {"name": self.ingress_class, "default": True},
            "ingressClass": self.ingress_class,
            "service": {"type": self.service_type},
        }}

    def _traefik_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "ingressClass": {"enabled": True, "isDefaultClass": True, "name": self.ingress_class},
            # Only Ingresses naming this class (or none): the same selection ingress-nginx made.
            "providers": {"kubernetesIngress": {"enabled": True, "ingressClass": self.ingress_class,
                                                "publishedService": {"enabled": True}}},
            "service": {"spec": {"type": self.service_type}},
        }
        if tls_enabled(self._args.cfg):
            # Traefik does not redirect by itself: the web entry point sends every plain HTTP request
            # to websecure (https://doc.traefik.io/traefik/routing/entrypoints/#redirection).
            values["ports"] = {"web": {"http": {"redirections": {"entryPoint": {
                "to": "websecure", "scheme": "https", "permanent": True}}}}}
        return values
