"""Monitoring: kube-prometheus-stack, the Grafana admin password from secrets.yml, a GPU dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer import catalogue
from stacks.base import ComponentArgs, child_opts, helm_release, k, labels, namespace, secret
from stacks.tls import ingress_tls

NAMESPACE = catalogue.MONITORING.name
RELEASE = "kube-prometheus-stack"
GRAFANA_SECRET = "grafana-admin"  # noqa: S105 - a Secret object name
HPA_ALERT = "KubeHpaMaxedOut"
DASHBOARD = Path(__file__).resolve().parent / "dashboards" / "gpu.json"


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs(ComponentArgs):
    storage_class: str
    """StorageClass of Prometheus' TSDB: node-local or block storage, never NFS (storage.volume_classes)."""
    ingress_class: str | None = None


class Monitoring(pulumi.ComponentResource):
    """Prometheus (with the operator CRDs later components use), Grafana and Alertmanager."""

    release_name: str = RELEASE

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Monitoring", name, None, opts)
        self._name, self._args = name, args
        ns = namespace(self, args, f"{name}-ns", catalogue.MONITORING)
        admin = self._admin_secret(ns)
        dashboard = self._gpu_dashboard(ns)
        spec = args.cfg.spec.components.monitoring
        self.release = helm_release(self, args, RELEASE, ns=NAMESPACE, computed=self._values(), overrides=spec.values,
                                    depends_on=[ns, admin, dashboard, *args.depends_on])
        self._hpa_rule()
        self.register_outputs({"release": RELEASE, "namespace": NAMESPACE})

    def _admin_secret(self, ns: pulumi.Resource) -> k8s.core.v1.Secret:
        # A Secret object rather than a chart value: the password never enters Helm's release record.
        return k8s.core.v1.Secret(
            f"{self._name}-grafana-admin", metadata=k({"name": GRAFANA_SECRET, "namespace": NAMESPACE,
                                                       "labels": labels("monitoring", "grafana")}),
            type="Opaque", string_data={"admin-user": "admin",
                                        "admin-password": secret(self._args.cfg, "grafana_admin_password")},
            opts=child_opts(self, self._args, [ns]))

    def _gpu_dashboard(self, ns: pulumi.Resource) -> k8s.core.v1.ConfigMap:
        # Grafana's sidecar loads every ConfigMap labelled grafana_dashboard=1 (charts/kube-prometheus-stack).
        return k8s.core.v1.ConfigMap(
            f"{self._name}-gpu-dashboard", metadata=k({"name": "kfinstall-gpu-dashboard", "namespace": NAMESPACE,
                                                       "labels": {**labels("monitoring"), "grafana_dashboard": "1"}}),
            data={"kfinstall-gpu.json": DASHBOARD.read_text(encoding="utf-8")},
            opts=child_opts(self, self._args, [ns]))

    def _hpa_rule(self) -> k8s.apiextensions.CustomResource:
        """KubeHpaMaxedOut that stays quiet for an HPA whose floor is its ceiling.

        The chart's rule (templates/prometheus/rules-1.14/kubernetes-apps.yaml in the charts channels
        1.9-1.11 pin) is current == max for 15m: an HPA with minReplicas == maxReplicas (allowed by the
        model; on gcp replica_bounds caps both at the GPU pool) fires it for ever. The chart's copy is
        disabled (_values) and this one adds upstream's later max != min guard (helm-charts PR #6725;
        tests/stacks/test_platform_hpa_alert.py names the chart versions) on every channel.
        """
        ksm = 'job="kube-state-metrics"'
        expr = (f"kube_horizontalpodautoscaler_status_current_replicas{{{ksm}}}\n"
                f"  == kube_horizontalpodautoscaler_spec_max_replicas{{{ksm}}}\n"
                f"and kube_horizontalpodautoscaler_spec_max_replicas{{{ksm}}}\n"
                f"  != kube_horizontalpodautoscaler_spec_min_replicas{{{ksm}}}\n")
        rule = {"alert": HPA_ALERT, "expr": expr, "for": "15m", "labels": {"severity": "warning"},
                "annotations": {"summary": "HPA is running at max replicas",
                                "description": "HPA {{ $labels.namespace }}/{{ $labels.horizontalpodautoscaler }} "
                                               "has been running at max replicas for longer than 15 minutes."}}
        return k8s.apiextensions.CustomResource(
            f"{self._name}-hpa-rule", api_version="monitoring.coreos.com/v1", kind="PrometheusRule",
            metadata=k({"name": "kfinstall-hpa", "namespace": NAMESPACE,
                        "labels": {**labels("monitoring"), "release": RELEASE}}),
            spec=k({"groups": [{"name": "kfinstall-hpa", "rules": [rule]}]}),
            opts=child_opts(self, self._args, [self.release]))

    def _values(self) -> dict[str, Any]:
        spec = self._args.cfg.spec.components.monitoring
        claim = {"spec": {"storageClassName": self._args.storage_class, "accessModes": ["ReadWriteOnce"],
                          "resources": {"requests": {"storage": spec.storage_size}}}}
        values: dict[str, Any] = {
            "prometheus": {"prometheusSpec": {"retention": spec.retention,
                                              "storageSpec": {"volumeClaimTemplate": claim}}},
            "defaultRules": {"disabled": {HPA_ALERT: True}},  # kfinstall's own, guarded copy: _hpa_rule
            "grafana": {"admin": {"existingSecret": GRAFANA_SECRET, "userKey": "admin-user",
                                  "passwordKey": "admin-password"}},
        }
        host = self._args.cfg.spec.networking.ingress.host
        if host and self._args.ingress_class:
            tls = ingress_tls(self._args.cfg)  # HTTPS for the host (stacks/tls.py)
            values["grafana"]["ingress"] = {"enabled": True, "ingressClassName": self._args.ingress_class,
                                            "hosts": [host], "path": "/grafana",
                                            "annotations": tls["annotations"], "tls": tls["tls"]}
            # Grafana builds redirects from domain + root_url; without domain it sends browsers to localhost.
            # %(protocol)s is Grafana's own (http: TLS ends at the ingress), so the scheme is written out.
            scheme = "https" if tls["tls"] else "http"
            values["grafana"]["grafana.ini"] = {"server": {"domain": host, "root_url": f"{scheme}://%(domain)s/grafana",
                                                           "serve_from_sub_path": True}}
        return values
