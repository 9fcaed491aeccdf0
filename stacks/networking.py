"""Networking: MetalLB with the address pool from the model (bare metal) and an ingress controller."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from stacks.base import ComponentArgs, child_opts, helm_release, k, labels, namespace

METALLB_NAMESPACE = "metallb-system"
INGRESS_NAMESPACE = "ingress-nginx"
POOL_NAME = "kfinstall"


@dataclass(frozen=True, kw_only=True)
class NetworkingArgs(ComponentArgs):
    pass


class Networking(pulumi.ComponentResource):
    """LoadBalancer addresses (MetalLB) and HTTP routing (ingress-nginx)."""

    def __init__(self, name: str, args: NetworkingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Networking", name, None, opts)
        self._name, self._args = name, args
        net = args.cfg.spec.networking
        self.ingress_class = net.ingress.class_name if net.ingress.enabled else None
        if net.metallb.enabled:
            self._metallb(net.metallb.addresses)
        if net.ingress.enabled:
            self._ingress()
        self.register_outputs({"ingress_class": self.ingress_class})

    def _metallb(self, addresses: list[str]) -> None:
        ns = namespace(self, self._args, f"{self._name}-metallb-ns", METALLB_NAMESPACE, level="privileged",
                       component="networking")
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
        ingress = self._args.cfg.spec.networking.ingress
        ns = namespace(self, self._args, f"{self._name}-ingress-ns", INGRESS_NAMESPACE, level="baseline",
                       component="networking")
        computed = {"controller": {
            "ingressClassResource": {"name": ingress.class_name, "default": True},
            "ingressClass": ingress.class_name,
            "service": {"type": self.service_type},
        }}
        helm_release(self, self._args, "ingress-nginx", ns=INGRESS_NAMESPACE, computed=computed,
                     depends_on=[ns, *self._args.depends_on])
