"""Helpers every platform component shares: namespaces, labels, container resources, images, Helm.

Components receive the resolved model (ClusterConfig) and never read Pulumi config or files other
than kfinstall's own chart values (charts/<chart>/values.yaml). Versions come only from the
channel file (installer/releases/<channel>.yaml) through `cfg.release`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from installer.catalogue import Namespace, pod_security_labels
from installer.config.resolved import ClusterConfig
from stacks.values import chart_values

MANAGED_BY = {"app.kubernetes.io/managed-by": "kfinstall", "app.kubernetes.io/part-of": "kfinstall"}
# Force-conflicts for server-side apply: objects a previous kubectl/Helm run applied would otherwise
# fail with a field-manager conflict (prometheus-community/helm-charts#2489 is the same failure).
PATCH_FORCE = {"pulumi.com/patchForce": "true"}


@dataclass(frozen=True)
class ComponentArgs:
    """What every platform component receives: the model and how to reach the cluster."""

    cfg: ClusterConfig
    provider: k8s.Provider | None = None
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def k(value: dict[str, Any] | list[Any]) -> Any:
    """Pass a plain Kubernetes-shaped dict (camelCase keys, as in a manifest) to a typed input.

    The SDK forwards unknown dict keys unchanged, so manifests written as in kubectl YAML reach the
    provider intact; the cast only quiets mypy's TypedDict check for camelCase keys.
    """
    return value


def child_opts(parent: pulumi.Resource, args: ComponentArgs,
               depends_on: Sequence[pulumi.Resource] | None = None) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, provider=args.provider, depends_on=list(depends_on or []))


def labels(component: str, app: str | None = None) -> dict[str, str]:
    out = dict(MANAGED_BY, **{"kfinstall.io/component": component})
    if app:
        out["app.kubernetes.io/name"] = app
    return out


def namespace(parent: pulumi.Resource, args: ComponentArgs, logical: str, entry: Namespace) -> k8s.core.v1.Namespace:
    """A platform namespace as the catalogue (installer.catalogue) names and levels it."""
    return k8s.core.v1.Namespace(
        logical, metadata=k({"name": entry.name, "labels": {**labels(entry.component),
                                                            **pod_security_labels(entry.level)}}),
        opts=child_opts(parent, args))


def resources(cpu: str, memory: str, cpu_limit: str | None = None,
              memory_limit: str | None = None) -> dict[str, Any]:
    """requests and limits for one container; limits default to twice the CPU request and the memory request."""
    return {"requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu_limit or _double_cpu(cpu), "memory": memory_limit or memory}}


def _double_cpu(cpu: str) -> str:
    if cpu.endswith("m"):
        return f"{int(cpu[:-1]) * 2}m"
    return str(float(cpu) * 2).removesuffix(".0")


def restricted_container_security() -> dict[str, Any]:
    """The container securityContext the restricted Pod Security level asks for."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def image(cfg: ClusterConfig, key: str) -> str:
    """`image:tag` of a pinned image; a missing pin is a release-file bug, named clearly."""
    pin = cfg.release.images.get(key)
    if pin is None:
        channel = cfg.release.channel
        raise KeyError(f"channel {channel} pins no image {key!r} (installer/releases/{channel}.yaml)")
    return pin.ref


def secret(cfg: ClusterConfig, key: str) -> pulumi.Output[str]:
    """A value from secrets.yml as a Pulumi secret (encrypted in state, masked in diffs).

    Without secrets.yml (render of a sample site) a fixed placeholder stands in; `up` refuses to
    run without secrets, so the placeholder never reaches a cluster.
    """
    if cfg.secrets is None:
        return pulumi.Output.secret(f"<{key}>")
    value = getattr(cfg.secrets, key).get_secret_value()
    return pulumi.Output.secret(value)


def helm_release(parent: pulumi.Resource, args: ComponentArgs, chart_key: str, *, ns: str,
                 computed: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
                 depends_on: Sequence[pulumi.Resource] | None = None) -> k8s.helm.v3.Release:
    """A Helm release of a channel-pinned chart with kfinstall's values.

    Values are layered: charts/<chart>/values.yaml, then what the model computes, then the
    user's `spec.components.<x>.values`. The release is named after the chart key, and its logical
    name is f"{component}-{chart}". Helm Release (not Chart v4) because it keeps the release
    in Helm's own records, so `helm list` and rollbacks keep working next to kfinstall.
    """
    pin = args.cfg.release.charts[chart_key]
    return k8s.helm.v3.Release(
        f"{parent._name}-{chart_key}",
        name=chart_key,
        chart=pin.chart, version=pin.version, namespace=ns,
        repository_opts=k({"repo": pin.repository}),
        values=chart_values(chart_key, computed or {}, overrides or {}),
        atomic=False, cleanup_on_fail=True, max_history=5,
        opts=child_opts(parent, args, depends_on))
