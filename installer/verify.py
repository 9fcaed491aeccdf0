"""`kfinstall verify`: live checks of a deployed platform, through kubectl and the API server.

Every check goes through the API server (service proxy for HTTP endpoints), so verify needs only
a kubeconfig and kubectl, no port-forwards or ingress DNS. With `demo=True` it also runs the
issue-summarization demo (examples/issue-summarization): a TFJob that trains and exports a model,
a PyTorchJob smoke test, and a prediction through TF Serving.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

import yaml

from installer import catalogue
from installer.adapters import kube
from installer.adapters.kube import Kubectl, KubectlFailed
from installer.config.resolved import ClusterConfig
from installer.errors import PreflightError
from installer.interrupt import pause
from installer.serving import PROBE_PERIOD_S, model_pickup_s

# The repository's examples/ folder, or its copy in an installed wheel (installer/_data/examples).
_DEMO_CANDIDATES = (Path(__file__).resolve().parent.parent / "examples" / "issue-summarization",
                    Path(__file__).resolve().parent / "_data" / "examples" / "issue-summarization")
DEMO_DIR = next((p for p in _DEMO_CANDIDATES if p.is_dir()), _DEMO_CANDIDATES[0])
DEMO_MODEL = "issue-summarization"
DEMO_NAMESPACE = catalogue.WORKSPACE.name  # the catalogue, not stacks/: verify must not load Pulumi
PROMETHEUS = (f"/api/v1/namespaces/{catalogue.MONITORING.name}/services/{catalogue.PROMETHEUS_SERVICE}:9090"
              "/proxy/api/v1/query")
HUB_LOGIN = (f"/api/v1/namespaces/{catalogue.JUPYTERHUB.name}/services/{catalogue.HUB_PROXY_SERVICE}:http"
             "/proxy/hub/login")
SERVING = f"/api/v1/namespaces/{DEMO_NAMESPACE}/services/{{service}}:http/proxy/v1/models/{DEMO_MODEL}"
REQUEST_TIMEOUT = "10s"


@dataclass
class Check:
    name: str
    status: str  # ok | failed | skipped
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class VerifyReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.as_dict() for c in self.checks]}


class CheckFailed(Exception):
    """A check's own failure (turned into a `failed` row, never raised out of verify)."""


def preflight(cfg: ClusterConfig) -> Kubectl:
    """kubectl, the site's kubeconfig and a reachable API server; PreflightError names what is missing (exit 3)."""
    problems = [p for p in (kube.kubectl_problem(cfg.kubernetes_minor), kube.missing_kubeconfig(cfg)) if p]
    if not problems:
        kubectl = Kubectl(kube.kubeconfig_path(cfg), request_timeout=REQUEST_TIMEOUT)
        try:
            kubectl.run("version", "-o", "json")
        except KubectlFailed as exc:
            problems.append(f"the API server in {kubectl.kubeconfig} does not answer ({exc}); "
                            "is the cluster up and reachable?")
        else:
            return kubectl
    raise PreflightError("verify needs a live cluster:\n  - " + "\n  - ".join(problems))


def demo_objects(cfg: ClusterConfig, epochs: int = 60) -> list[dict[str, Any]]:
    """The demo's objects for this site: code ConfigMap plus the templated manifests."""
    variables = {"NAMESPACE": DEMO_NAMESPACE, "STORAGE_CLASS": _platform_class(cfg), "EPOCHS": str(epochs),
                 "TENSORFLOW_IMAGE": cfg.release.images["tensorboard"].ref,
                 "SERVING_IMAGE": cfg.release.images["tensorflow-serving"].ref}
    code = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "issue-summarization-code", "namespace": DEMO_NAMESPACE,
                         "labels": {"app.kubernetes.io/part-of": "kfinstall-demo"}},
            "data": {name: (DEMO_DIR / name).read_text(encoding="utf-8") for name in ("train.py", "sample_issues.csv")}}
    objects = [code]
    for path in sorted((DEMO_DIR / "manifests").glob("*.yaml")):
        text = Template(path.read_text(encoding="utf-8")).substitute(variables)
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def _platform_serves_demo(cfg: ClusterConfig) -> bool:
    serving = cfg.spec.components.serving
    return serving.enabled and any(m.name == DEMO_MODEL for m in serving.models)


def _nodes_ready(k: Kubectl, cfg: ClusterConfig) -> str:
    nodes = k.json("get", "nodes")["items"]
    not_ready = [n["metadata"]["name"] for n in nodes
                 if not any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))]
    if not nodes or not_ready:
        raise CheckFailed(f"not Ready: {', '.join(not_ready) or 'no nodes'}")
    return f"{len(nodes)} node(s) Ready"


def _gpus(k: Kubectl, cfg: ClusterConfig) -> str:
    nodes = k.json("get", "nodes")["items"]
    total = sum(int(n["status"].get("allocatable", {}).get("nvidia.com/gpu", "0")) for n in nodes)
    if total == 0:
        raise CheckFailed("no node advertises nvidia.com/gpu (device plugin or GPU Operator not running?)")
    return f"{total} GPU(s) allocatable"


def _platform_class(cfg: ClusterConfig) -> str:
    """The class of the platform's shared volumes (spec.storage.defaultClass), as stacks/storage.py names it."""
    storage = cfg.spec.storage
    return {"nfs": storage.nfs.storage_class, "gluster": storage.gluster.storage_class,
            "filestore": "filestore"}[storage.default_class]


def _default_class(k: Kubectl, cfg: ClusterConfig) -> str:
    """Exactly one default class: kfinstall's on hosts; on GKE, GKE's own (Filestore stays a named class).

    stacks/storage.py marks spec.storage.defaultClass default on hosts and marks nothing on gcp, where
    GKE ships its default class; every volume the platform creates names its class either way.
    """
    classes = k.json("get", "storageclass")["items"]
    defaults = [c["metadata"]["name"] for c in classes
                if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    if len(defaults) != 1:
        raise CheckFailed(f"expected exactly one default StorageClass, found {defaults or 'none'}")
    ours = _platform_class(cfg)
    if cfg.spec.profile == "gcp" and defaults[0] == ours:
        raise CheckFailed(f"{ours} is marked default: on GKE the default stays GKE's own class; "
                          f"remove the annotation from {ours} and mark GKE's class (standard-rwo) default")
    if cfg.spec.profile != "gcp" and defaults[0] != ours:
        raise CheckFailed(f"the default StorageClass is {defaults[0]}, not {ours} (spec.storage.defaultClass); "
                          f"remove the default annotation from {defaults[0]}")
    return f"default StorageClass {defaults[0]}"


def _hub_login(k: Kubectl, cfg: ClusterConfig) -> str:
    page = k.raw(HUB_LOGIN)
    if "<form" not in page:
        raise CheckFailed("the hub's /hub/login page has no login form")
    return "JupyterHub login page reachable"


def _serving_up(k: Kubectl, cfg: ClusterConfig) -> str:
    """tf-serving is Available with or without a model: a fresh platform has none until one is trained."""
    deployment = k.json("get", "deployment", catalogue.SERVING_NAME, "-n", DEMO_NAMESPACE)
    conditions = {c["type"]: c["status"] for c in deployment.get("status", {}).get("conditions", [])}
    if conditions.get("Available") != "True":
        raise CheckFailed(f"deployment tf-serving is not Available (see `kubectl -n {DEMO_NAMESPACE} "
                          "describe deployment tf-serving`)")
    if not _platform_serves_demo(cfg):
        return "tf-serving Available"
    try:
        return f"tf-serving Available; {_serving_status(k, cfg)}"
    except (CheckFailed, KubectlFailed):  # tf-serving answers 404 until a model exists
        return f"tf-serving Available; no version of model {DEMO_MODEL} yet (train one: verify --demo)"


def _serving_status(k: Kubectl, cfg: ClusterConfig, service: str = catalogue.SERVING_NAME) -> str:
    status = json.loads(k.raw(SERVING.format(service=service)))
    states = [v.get("state") for v in status.get("model_version_status", [])]
    if "AVAILABLE" not in states:
        raise CheckFailed(f"model {DEMO_MODEL} not AVAILABLE ({states or 'no versions'}); train one: verify --demo")
    return f"model {DEMO_MODEL} AVAILABLE"


def _dcgm(k: Kubectl, cfg: ClusterConfig) -> str:
    answer = json.loads(k.raw(f"{PROMETHEUS}?query=DCGM_FI_DEV_GPU_UTIL"))
    series = answer.get("data", {}).get("result", [])
    if not series:
        raise CheckFailed("Prometheus has no DCGM_FI_DEV_GPU_UTIL series (dcgm-exporter scraped?)")
    return f"{len(series)} GPU series in Prometheus"


def _wait_job(k: Kubectl, kind: str, name: str, timeout_s: int) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = k.json("get", kind, name, "-n", DEMO_NAMESPACE)
        conditions = {c["type"]: c["status"] for c in job.get("status", {}).get("conditions", [])}
        if conditions.get("Succeeded") == "True":
            return f"{kind} {name} Succeeded"
        if conditions.get("Failed") == "True":
            logs = f"kubectl -n {DEMO_NAMESPACE} logs -l training.kubeflow.org/job-name={name}"
            raise CheckFailed(f"{kind} {name} Failed (see `{logs}`)")
        pause(10)
    raise CheckFailed(f"{kind} {name} did not finish within {timeout_s} s")


def _predict(k: Kubectl, service: str) -> str:
    body = {"instances": ["The export button throws a 500 error after clicking it. Logs attached below."]}
    answer = json.loads(k.post(SERVING.format(service=service) + ":predict", body))
    title = answer.get("predictions", [None])[0]
    if not isinstance(title, str):
        raise CheckFailed(f"unexpected prediction {answer!r}")
    return f"predicted title: {title!r}"


def _run_check(report: VerifyReport, name: str, fn: Callable[[], str]) -> bool:
    try:
        report.checks.append(Check(name, "ok", fn()))
        return True
    except (CheckFailed, KubectlFailed, json.JSONDecodeError, KeyError) as exc:
        report.checks.append(Check(name, "failed", re.sub(r"\s+", " ", str(exc))))
        return False


def _skip(report: VerifyReport, name: str, why: str) -> None:
    report.checks.append(Check(name, "skipped", why))


def _platform_checks(k: Kubectl, cfg: ClusterConfig, report: VerifyReport) -> None:
    comps = cfg.spec.components
    _run_check(report, "nodes-ready", lambda: _nodes_ready(k, cfg))
    if cfg.spec.gpu.enabled:
        _run_check(report, "gpus-allocatable", lambda: _gpus(k, cfg))
    else:
        _skip(report, "gpus-allocatable", "spec.gpu.enabled is false")
    _run_check(report, "default-storage-class", lambda: _default_class(k, cfg))
    if comps.jupyterhub.enabled:
        _run_check(report, "jupyterhub-login", lambda: _hub_login(k, cfg))
    if cfg.spec.gpu.stack == "gke":
        # GKE's managed GPU stack has no dcgm-exporter in the cluster (its DCGM metrics go to Cloud Monitoring).
        _skip(report, "dcgm-metrics", "GKE-managed GPUs: DCGM metrics are in Cloud Monitoring, not this Prometheus")
    elif cfg.spec.gpu.enabled and comps.monitoring.enabled:
        _run_check(report, "dcgm-metrics", lambda: _dcgm(k, cfg))
    else:
        _skip(report, "dcgm-metrics", "needs the GPU stack and monitoring")


def _demo_checks(k: Kubectl, cfg: ClusterConfig, report: VerifyReport, timeout_s: int) -> None:
    objects = demo_objects(cfg)
    service = catalogue.SERVING_NAME if _platform_serves_demo(cfg) else "issue-summarization-serving"
    if service == catalogue.SERVING_NAME:
        objects = [o for o in objects if o["metadata"]["name"] != "issue-summarization-serving"]
    if not _run_check(report, "demo-apply", lambda: _apply(k, objects)):
        return
    trained = _run_check(report, "tfjob-completes", lambda: _wait_job(k, "tfjob", "issue-summarization", timeout_s))
    _run_check(report, "pytorchjob-completes", lambda: _wait_job(k, "pytorchjob", "pytorchjob-smoke", timeout_s))
    if not trained:
        _skip(report, "serving-answers", "no trained model (the TFJob failed)")
        return
    _run_check(report, "serving-answers", lambda: _loaded_then_predict(k, cfg, service))


def _apply(k: Kubectl, objects: list[dict[str, Any]]) -> str:
    k.apply(objects, field_manager="kfinstall-verify")  # server-side, like the platform; the demo owns these
    return f"{len(objects)} demo objects applied"


def _loaded_then_predict(k: Kubectl, cfg: ClusterConfig, service: str, wait_s: int | None = None) -> str:
    # A new model reaches tf-serving through the lister sidecar, the server's config poll and its
    # file-system poll, then loads: wait that long (the Deployment's own timings) before calling it missing.
    deadline = time.monotonic() + (model_pickup_s() if wait_s is None else wait_s)
    while True:
        try:
            _serving_status(k, cfg, service)
            break
        except (CheckFailed, KubectlFailed):
            if time.monotonic() > deadline:
                raise
            pause(PROBE_PERIOD_S)
    return _predict(k, service)


def verify(cfg: ClusterConfig, demo: bool = False, timeout_s: int = 1800) -> VerifyReport:
    """Run every check that applies to the site; `demo` adds the TFJob, PyTorchJob and prediction."""
    kubectl = preflight(cfg)
    report = VerifyReport()
    _platform_checks(kubectl, cfg, report)
    if demo:
        _demo_checks(kubectl, cfg, report, timeout_s)
    elif cfg.spec.components.serving.enabled:
        _run_check(report, "serving-answers", lambda: _serving_up(kubectl, cfg))
    return report
