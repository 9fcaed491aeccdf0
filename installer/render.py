"""`kfinstall render`: evaluate the real platform program under Pulumi's mock engine and write
every Kubernetes object it would create, plus one file per Helm release.

No cluster, CLI, provider plugin or Helm binary is involved: the program runs in-process and each
resource registration is answered by `PlatformMocks`. Helm releases are recorded with their
inputs only (chart, repository, version, values); the chart itself is never rendered.

Layout of OUT:
    <component>/<NN>-<kind>-[<namespace>-]<name>.yaml    one object per file, NN = apply order by kind
    helm/<release>.yaml                                  chart, repository, version, full values
    cloud/<type>-<name>.yaml                             cloud resources (gcp profile)
Secret values appear only inside Secret objects (files 0600); elsewhere a value the program marked
secret is written as `<secret>`. OUT/.kfinstall-files.json records what render wrote (installer.owned).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

from installer.config.resolved import ClusterConfig
from installer.config.secrets import KNOWN_KEYS
from installer.owned import NewFile, replace_folder

# pulumi.runtime.rpc._special_sig_key: the marker of a secret value in serialized inputs.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"  # noqa: S105 - a protocol constant, not a password
SECRET_PLACEHOLDER = "<secret>"  # noqa: S105 - the placeholder written instead of a secret
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
COMPONENT_PREFIX = "kfinstall:platform:"
# Helm's install order (pkg/releaseutil/kind_sorter.go): `kubectl apply -f` over a sorted folder
# creates namespaces, CRDs and RBAC before what uses them. Kinds not listed sort last.
KIND_ORDER = ("Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodDisruptionBudget", "ServiceAccount",
              "Secret", "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
              "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
              "DaemonSet", "Pod", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job",
              "CronJob", "IngressClass", "Ingress", "APIService")
# Program order, so summaries read the same on every run (registration order is concurrent).
COMPONENT_ORDER = ("gke", "storage", "networking", "monitoring", "gpu", "training", "jupyterhub", "workspace",
                   "serving", "tensorboard", "stack")


@dataclass(frozen=True)
class Recorded:
    """One registered resource: its URN (parent chain), type, logical name and inputs as sent."""

    urn: str
    typ: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    dependencies: tuple[str, ...] = ()
    """URNs this resource waits for (depends_on and input Outputs, components expanded)."""

    @property
    def component(self) -> str:
        """The kfinstall component it belongs to (`storage`, `gpu`, ...), or `stack` at top level."""
        chain = self.urn.split("::")[2].split("$")
        for typ in chain[:-1]:
            if typ.startswith(COMPONENT_PREFIX):
                return _component_folder(typ)
        return _component_folder(self.typ) if self.typ.startswith(COMPONENT_PREFIX) else "stack"

    @property
    def is_kubernetes_object(self) -> bool:
        return self.custom and self.typ.startswith("kubernetes:") and self.typ != HELM_RELEASE

    @property
    def is_cloud(self) -> bool:
        return self.custom and not self.typ.startswith(("kubernetes:", "pulumi:"))


def _component_folder(typ: str) -> str:
    name = typ.removeprefix(COMPONENT_PREFIX)
    return "gke" if name == "GkeCluster" else name.lower()


class PlatformMocks(Mocks):
    """Answers the engine's questions the way a fresh cluster and cloud would, deterministically."""

    def __init__(self) -> None:
        self.inputs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()  # new_resource runs on the SDK's executor threads

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        with self._lock:
            self.inputs.setdefault((args.typ, args.name), []).append(args.inputs)
        state = dict(args.inputs)
        state.update(_computed_outputs(args))
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None


def _computed_outputs(args: MockResourceArgs) -> dict[str, Any]:
    """Outputs a real provider computes and the program reads (everything else echoes inputs)."""
    if args.typ == "random:index/randomPassword:RandomPassword":
        length = int(args.inputs.get("length", 16))
        return {"result": {SECRET_SIG_KEY: "1b47061264138c4ac30d75fd1eb44270", "value": "r" * length}}
    if args.typ == "gcp:container/cluster:Cluster":
        return {"endpoint": "203.0.113.10", "masterAuth": {"clusterCaCertificate": "bW9jay1jYQ=="}}
    if args.typ == "gcp:filestore/instance:Instance":
        networks = [dict(n, ipAddresses=["10.0.0.2"]) for n in args.inputs.get("networks", [{}])]
        return {"networks": networks}
    if args.typ == "kubernetes:core/v1:Service":
        return {"spec": dict(args.inputs.get("spec") or {}, clusterIP="10.96.0.10")}
    return {}


class RecordingMonitor(MockMonitor):
    """The stock mock monitor, also keeping each registration's URN (which encodes the parent)."""

    def __init__(self, mocks: PlatformMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[tuple[str, str, str, bool, tuple[str, ...]]] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        with self._lock:
            deps = tuple(request.dependencies)
            self.registrations.append((response.urn, request.type, request.name, bool(request.custom), deps))
        return response


def evaluate(cfg: ClusterConfig, installed: dict[str, Any] | None = None) -> list[Recorded]:
    """Run `stacks.program(cfg)` under mocks; every registered resource, in registration order.

    `installed` stands for the outputs of a previous deployment (None: a new stack, as `render` shows).
    """
    from stacks.program import export_outputs, program

    mocks = PlatformMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="kfinstall", stack=cfg.name, preview=False, monitor=monitor)

    @pulumi.runtime.test
    def run() -> None:
        export_outputs(program(cfg, installed))

    run()
    return _join(monitor, mocks)


def _join(monitor: RecordingMonitor, mocks: PlatformMocks) -> list[Recorded]:
    seen: set[str] = set()
    taken: dict[tuple[str, str], int] = {}
    out = []
    for urn, typ, name, custom, deps in monitor.registrations:
        if urn in seen:  # the real engine refuses duplicate URNs; the mock monitor would not
            raise ValueError(f"duplicate resource {urn}")
        seen.add(urn)
        index = taken.get((typ, name), 0)
        taken[(typ, name)] = index + 1
        inputs = mocks.inputs.get((typ, name), [{}])
        out.append(Recorded(urn, typ, name, inputs[min(index, len(inputs) - 1)], custom, deps))
    return out


def secret_strings(cfg: ClusterConfig) -> list[str]:
    """The secret values the program may carry (placeholders when the site has no secrets.yml)."""
    if cfg.secrets is not None:
        return cfg.secrets.values()
    return [f"<{key}>" for key in KNOWN_KEYS]


def plain(value: Any, secrets: list[str] | None = None) -> Any:
    """Mock inputs to a plain manifest: secrets unwrapped, whole floats back to ints.

    With `secrets`, known secret strings inside a secret-wrapped subtree become `<secret>`.
    """
    if isinstance(value, dict):
        if SECRET_SIG_KEY in value:
            inner = value.get("value")
            return _mask(plain(inner), secrets) if secrets is not None else plain(inner)
        # Sorted: inputs arrive in protobuf order, and rendered files must not churn between runs.
        return {key: plain(value[key], secrets) for key in sorted(value)}
    if isinstance(value, list):
        return [plain(item, secrets) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _mask(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {key: _mask(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item, secrets) for item in value]
    if isinstance(value, str):
        for text in secrets:
            if text and text in value:
                value = value.replace(text, SECRET_PLACEHOLDER)
    return value


def manifest(record: Recorded, secrets: list[str]) -> dict[str, Any]:
    """The Kubernetes object as it would be applied; only Secret objects keep secret values."""
    is_secret_object = record.inputs.get("kind") == "Secret"
    body = plain(record.inputs, None if is_secret_object else secrets)
    ordered = {key: body.pop(key) for key in ("apiVersion", "kind", "metadata") if key in body}
    ordered.update(body)
    return ordered


def helm_document(record: Recorded, secrets: list[str]) -> dict[str, Any]:
    inputs = plain(record.inputs, secrets)
    return {"release": inputs.get("name", record.name), "component": record.component,
            "namespace": inputs.get("namespace"), "chart": inputs.get("chart"),
            "repository": (inputs.get("repositoryOpts") or {}).get("repo"),
            "version": inputs.get("version"), "values": inputs.get("values") or {}}


@dataclass
class RenderSummary:
    """What `render` wrote: objects per component, Helm releases per component, cloud resources."""

    out: Path
    objects: dict[str, int] = field(default_factory=dict)
    helm: dict[str, list[str]] = field(default_factory=dict)
    cloud: int = 0

    @property
    def total(self) -> int:
        return sum(self.objects.values())

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "objects": dict(self.objects), "helm": {k: list(v) for k, v in self.helm.items()},
                "cloud": self.cloud, "total": self.total}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-")


def _object_filename(body: dict[str, Any]) -> str:
    meta = body.get("metadata") or {}
    kind = body.get("kind", "object")
    order = KIND_ORDER.index(kind) if kind in KIND_ORDER else 99
    parts = [kind, meta.get("namespace") or "", meta.get("name") or "unnamed"]
    return f"{order:02d}-" + "-".join(_slug(p) for p in parts if p) + ".yaml"


def _document(data: dict[str, Any], private: bool = False) -> NewFile:
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    return NewFile(text.encode("utf-8"), 0o600 if private else 0o644)


def render(cfg: ClusterConfig, out: Path) -> RenderSummary:
    """Evaluate the program under mocks and write OUT as described in the module docstring."""
    return write(cfg, evaluate(cfg), out)


def write(cfg: ClusterConfig, records: list[Recorded], out: Path) -> RenderSummary:
    """Write already evaluated records to OUT (tests keep the records for their own checks).

    OUT is kfinstall's only through its record of files (installer.owned): a re-render replaces the
    files it wrote and removes those no longer produced; a folder with anything else is refused.
    """
    secrets = secret_strings(cfg)
    files: dict[str, NewFile] = {}
    summary = RenderSummary(out=out)
    for record in records:
        if record.is_kubernetes_object:
            body = manifest(record, secrets)
            files[f"{record.component}/{_object_filename(body)}"] = _document(body, body.get("kind") == "Secret")
            summary.objects[record.component] = summary.objects.get(record.component, 0) + 1
        elif record.typ == HELM_RELEASE:
            doc = helm_document(record, secrets)
            files[f"helm/{_slug(str(doc['release']))}.yaml"] = _document(doc)
            summary.helm.setdefault(record.component, []).append(str(doc["release"]))
        elif record.is_cloud:
            body = {"type": record.typ, "name": record.name, "inputs": plain(record.inputs, secrets)}
            files[f"cloud/{_slug(record.typ.split(':')[-1])}-{_slug(record.name)}.yaml"] = _document(body)
            summary.cloud += 1
    replace_folder(out, files, command="render --out")
    summary.objects = _in_program_order(summary.objects)
    summary.helm = _in_program_order(summary.helm)
    return summary


def _in_program_order(counts: dict[str, Any]) -> dict[str, Any]:
    rank = {name: index for index, name in enumerate(COMPONENT_ORDER)}
    return {key: counts[key] for key in sorted(counts, key=lambda k: (rank.get(k, len(rank)), k))}
