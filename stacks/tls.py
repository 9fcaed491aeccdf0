"""HTTPS for every UI: one certificate Secret per UI namespace, filled by cert-manager or by kfinstall.

Two sources, chosen by spec.networking.tls:
- site CA (default): cert-manager (channel-pinned chart) with a ClusterIssuer of type CA whose key pair is
  the site CA `kfinstall init` generated (secrets.yml key site_ca). Every UI Ingress carries the
  ingress-shim annotation `cert-manager.io/cluster-issuer` and a `tls` entry for the ingress host;
  cert-manager then creates a Certificate per Ingress and keeps the named Secret filled and renewed
  (https://cert-manager.io/docs/usage/ingress/).
- your certificate (certFile/keyFile): kfinstall writes it as a kubernetes.io/tls Secret of that name in
  each UI namespace; installer.config.tlsfiles checked it (PEM, key matches, host in SAN, not expired).

The lab profile may turn TLS off: then `ingress_tls` is empty and the UIs stay plain HTTP.
CONTRACT (issue 12): `ingress_tls(cfg)` is what any Ingress of the platform needs for TLS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer import catalogue
from installer.catalogue import tls_enabled, uses_site_ca
from installer.config.resolved import ClusterConfig
from installer.config.siteca import split_site_ca
from stacks.base import ComponentArgs, child_opts, helm_release, k, labels, namespace, secret

CERT_MANAGER_NAMESPACE = catalogue.CERT_MANAGER.name
CERT_MANAGER_CHART = "cert-manager"
CLUSTER_ISSUER = "kfinstall-site-ca"
# The CA issuer of a ClusterIssuer reads its Secret from cert-manager's cluster resource namespace,
# which is the namespace cert-manager runs in (https://cert-manager.io/docs/configuration/#cluster-resource-namespace).
CA_SECRET = "kfinstall-site-ca"  # noqa: S105 - a Secret object name
UI_TLS_SECRET = "kfinstall-ui-tls"  # noqa: S105 - a Secret object name
ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
# ingress-shim copies this into the Certificate's spec.usages. Without it cert-manager issues no extended key
# usage at all (DefaultKeyUsages, pkg/apis/certmanager/v1/types.go), and macOS/iOS refuse a TLS server
# certificate without serverAuth (Apple HT210176). The first two are cert-manager's defaults, kept.
USAGES_ANNOTATION = "cert-manager.io/usages"
SERVER_USAGES = "digital signature,key encipherment,server auth"
PLACEHOLDER_PEM = "<site_ca>"


def ingress_tls(cfg: ClusterConfig) -> dict[str, Any]:
    """What an Ingress for spec.networking.ingress.host needs for TLS: {'annotations': {...}, 'tls': [...]}.

    Both keys are always present (empty with TLS off). The `tls` entry names one Secret,
    UI_TLS_SECRET, in the Ingress's own namespace (an Ingress can only use a Secret of its namespace):
    cert-manager's ingress-shim fills it from the annotation, or kfinstall writes the operator's
    certificate there (`Tls.ui_namespaces`).
    """
    if not tls_enabled(cfg):
        return {"annotations": {}, "tls": []}
    host = cfg.spec.networking.ingress.host
    annotations = {ISSUER_ANNOTATION: CLUSTER_ISSUER, USAGES_ANNOTATION: SERVER_USAGES} if uses_site_ca(cfg) else {}
    return {"annotations": annotations, "tls": [{"hosts": [host], "secretName": UI_TLS_SECRET}]}


def crd_values() -> dict[str, Any]:
    """The chart value that makes cert-manager's chart install its CRDs (the ClusterIssuer needs its type).

    `installCRDs` is the one key every pinned chart reads: the 1.14 chart (channel 1.9) knows nothing
    else, and from 1.15 on it is deprecated but kept, equal to `crds.enabled` plus `crds.keep` (CRDs
    survive an uninstall; cert-manager 1.15's release notes, chart templates `or .Values.crds.enabled
    .Values.installCRDs`). One key on every channel also keeps upgrades from rewriting the value.
    """
    return {"installCRDs": True}


def _ca_pair(bundle: str) -> tuple[str, str]:
    """(certificate PEM, key PEM) of secrets.yml's site_ca; placeholders for a render without secrets.yml."""
    return split_site_ca(bundle) or (PLACEHOLDER_PEM, PLACEHOLDER_PEM)


@dataclass(frozen=True, kw_only=True)
class TlsArgs(ComponentArgs):
    ui_namespaces: list[str] = field(default_factory=list)
    """Namespaces holding a UI Ingress: the operator's certificate is written into each."""


class Tls(pulumi.ComponentResource):
    """cert-manager + the site CA ClusterIssuer, or the operator's certificate as Secrets."""

    def __init__(self, name: str, args: TlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Tls", name, None, opts)
        self._name, self._args = name, args
        if uses_site_ca(args.cfg):
            self._site_ca()
        elif tls_enabled(args.cfg):
            self._provided(args.ui_namespaces)
        self.register_outputs({"issuer": CLUSTER_ISSUER if uses_site_ca(args.cfg) else None})

    def _site_ca(self) -> None:
        args = self._args
        ns = namespace(self, args, f"{self._name}-cert-manager-ns", catalogue.CERT_MANAGER)
        release = helm_release(self, args, CERT_MANAGER_CHART, ns=CERT_MANAGER_NAMESPACE,
                               computed=crd_values(),
                               depends_on=[ns])
        pair = secret(args.cfg, "site_ca").apply(_ca_pair)
        ca = k8s.core.v1.Secret(
            f"{self._name}-site-ca", metadata=k({"name": CA_SECRET, "namespace": CERT_MANAGER_NAMESPACE,
                                                 "labels": labels("tls")}),
            type="kubernetes.io/tls",
            string_data={"tls.crt": pulumi.Output.secret(pair[0]), "tls.key": pulumi.Output.secret(pair[1])},
            opts=child_opts(self, args, [ns]))
        k8s.apiextensions.CustomResource(
            f"{self._name}-issuer", api_version="cert-manager.io/v1", kind="ClusterIssuer",
            metadata=k({"name": CLUSTER_ISSUER, "labels": labels("tls")}),
            spec=k({"ca": {"secretName": CA_SECRET}}), opts=child_opts(self, args, [release, ca]))

    def _provided(self, namespaces: list[str]) -> None:
        material = self._args.cfg.tls_material
        if material is None:
            raise ValueError("spec.networking.tls.certFile is set but no certificate was loaded")
        for ns in namespaces:
            k8s.core.v1.Secret(
                f"{self._name}-ui-tls-{ns}",
                metadata=k({"name": UI_TLS_SECRET, "namespace": ns, "labels": labels("tls")}),
                type="kubernetes.io/tls",
                string_data={"tls.crt": material.certificate_pem,
                             "tls.key": pulumi.Output.secret(material.key_pem.get_secret_value())},
                opts=child_opts(self, self._args, self._args.depends_on))
