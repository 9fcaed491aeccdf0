"""The demo's TFJob and PyTorchJob against upstream training-operator CRDs, and its other objects.

Upstream CRD schemas come from ../shared/schemas/training-operator/<operator release>/ for the
release the channel pins (images.training-operator.release). They contain no
`additionalProperties: false`, so a plain JSON Schema validator would accept any typo; the test
walks the schema itself and rejects every field the schema does not declare (what the API server
does under strict field validation).
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
import types
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kvalidate
import pytest
import yaml
from podsecurity import evaluate, parse_version, pods_of
from stackhelpers import CHANNELS, PROFILES, SHARED_SCHEMAS, containers

from installer.render import plain
from installer.serving import LISTER_SCRIPT
from installer.verify import DEMO_DIR, DEMO_MODEL, DEMO_NAMESPACE, demo_objects
from stacks.training_crds import all_crds

JOB_KINDS = {"TFJob": "kubeflow.org_tfjobs.yaml", "PyTorchJob": "kubeflow.org_pytorchjobs.yaml"}


def unknown_fields(schema: dict[str, Any], data: Any, path: str = "") -> list[str]:
    """Fields in `data` that `schema` does not declare (preserve-unknown-fields subtrees excepted)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(data, dict):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        for key, value in data.items():
            if props is not None and key in props:
                found += unknown_fields(props[key], value, f"{path}.{key}")
            elif isinstance(extra, dict):
                found += unknown_fields(extra, value, f"{path}.{key}")
            elif props is not None or extra is False:
                found.append(f"{path}.{key}")
    elif isinstance(data, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(data):
            found += unknown_fields(schema["items"], item, f"{path}[{index}]")
    return found


def upstream_schema(release: str, kind: str) -> dict[str, Any]:
    path = SHARED_SCHEMAS / "training-operator" / release / JOB_KINDS[kind]
    if not SHARED_SCHEMAS.is_dir():
        pytest.skip(f"{SHARED_SCHEMAS} is absent: upstream CRDs are not available on this machine")
    if not path.is_file():
        pytest.skip(f"no upstream {kind} CRD for training-operator {release} at {path}")
    return copy.deepcopy(_load_schema(path))


@cache
def _load_schema(path: Path) -> dict[str, Any]:
    # 600 kB each: parsed once per session, with libyaml when available.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(path.read_text(), Loader=loader)  # noqa: S506 - a safe loader
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _jobs(cfg: Any) -> list[dict[str, Any]]:
    return [o for o in demo_objects(cfg) if o["kind"] in JOB_KINDS]


@pytest.mark.parametrize("channel", CHANNELS)
def test_demo_jobs_validate_against_upstream_crds(renders, channel: str) -> None:
    cfg = renders.config("private-gpu", channel)
    release = cfg.release.images["training-operator"].release
    jobs = _jobs(cfg)
    assert {j["kind"] for j in jobs} == set(JOB_KINDS)
    for job in jobs:
        schema = upstream_schema(release, job["kind"])
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in jsonschema.Draft7Validator(schema).iter_errors(job)]
        assert not errors, f"{job['kind']} vs training-operator {release}:\n" + "\n".join(errors)
        assert not unknown_fields(schema, job), f"{job['kind']}: fields unknown to {release}"


@pytest.mark.parametrize("channel", CHANNELS)
def test_demo_jobs_validate_against_kfinstalls_own_crds(renders, channel: str) -> None:
    crds = {c["spec"]["names"]["kind"]: c for c in all_crds().values()}
    for job in _jobs(renders.config("bare-metal", channel)):
        schema = crds[job["kind"]]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert not list(jsonschema.Draft7Validator(schema).iter_errors(job))
        assert not unknown_fields(schema, job)


def test_the_unknown_field_check_catches_a_typo(renders) -> None:
    cfg = renders.config("private-gpu", CHANNELS[-1])
    job = next(j for j in _jobs(cfg) if j["kind"] == "TFJob")
    job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    job["spec"]["runPolicy"]["cleanupPolicy"] = "All"
    schema = upstream_schema(cfg.release.images["training-operator"].release, "TFJob")
    assert sorted(unknown_fields(schema, job)) == [
        ".spec.runPolicy.cleanupPolicy", ".spec.tfReplicaSpecs.Worker.template.spec.containers[0].imagePullPolicyy"]


def _job_containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    specs = spec.get("tfReplicaSpecs") or spec.get("pytorchReplicaSpecs") or {}
    pods = [replica["template"]["spec"] for replica in specs.values()]
    return [c for pod in pods for c in pod["containers"] + pod.get("initContainers", [])]


@pytest.mark.parametrize("channel", CHANNELS)
def test_demo_objects_validate_and_keep_the_invariants(renders, channel: str) -> None:
    cfg = renders.config("private-gpu", channel)
    pinned = {pin.ref for pin in cfg.release.images.values()}
    for obj in demo_objects(cfg):
        if obj["kind"] not in JOB_KINDS:
            assert not kvalidate.errors(obj, cfg.kubernetes_minor), obj["metadata"]["name"]
        for container in containers(obj) + _job_containers(obj):
            assert container["image"] in pinned
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])


# --- the demo on the rendered platform ----------------------------------------------------------------

DEMO_MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [pod["spec"] for _, pod in pods_of(obj)]


def _claims(spec: dict[str, Any]) -> dict[str, str]:
    """volume name -> PVC name."""
    return {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes", [])
            if "persistentVolumeClaim" in v}


def _mount(container: dict[str, Any], spec: dict[str, Any], claim: str) -> str:
    names = {name for name, pvc in _claims(spec).items() if pvc == claim}
    (path,) = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in names]
    return path


@pytest.mark.parametrize(("profile", "channel"), DEMO_MATRIX)
def test_demo_meets_the_rendered_workspace_and_serving(renders, profile: str, channel: str) -> None:
    """The demo's namespace, claims and class are the rendered Workspace's and Storage's, and the TFJob
    exports where the rendered tf-serving looks: the same `models` claim, and --export relative to the
    job's mount equal to the serving base path relative to the server's mount. TF Serving then finds
    `<base path>/<number>/` (tensorflow/serving file_system_storage_path_source.cc ParseVersionNumber)."""
    rendered = renders.get(profile, channel)
    objects = {(r.inputs["kind"], r.inputs["metadata"].get("namespace"), r.inputs["metadata"]["name"]): plain(r.inputs)
               for r in rendered.kubernetes_objects()}
    demo = demo_objects(rendered.cfg)
    namespace = {o["metadata"]["namespace"] for o in demo}
    assert namespace == {DEMO_NAMESPACE}
    assert ("Namespace", None, DEMO_NAMESPACE) in objects
    platform_claims = {name for kind, ns, name in objects if kind == "PersistentVolumeClaim" and ns == DEMO_NAMESPACE}
    demo_claims = {o["metadata"]["name"] for o in demo if o["kind"] == "PersistentVolumeClaim"}
    classes = {name for kind, _, name in objects if kind == "StorageClass"}
    for claim in (o for o in demo if o["kind"] == "PersistentVolumeClaim"):
        assert claim["spec"]["storageClassName"] in classes, claim["spec"]["storageClassName"]
    for obj in demo:
        for spec in _pod_specs(obj):
            assert set(_claims(spec).values()) <= platform_claims | demo_claims, obj["metadata"]["name"]

    tfjob = next(o for o in demo if o["kind"] == "TFJob")
    job_spec = tfjob["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]
    trainer = job_spec["containers"][0]
    export = next(a.split("=", 1)[1] for a in trainer["command"] if a.startswith("--export="))
    job_mount = _mount(trainer, job_spec, "models")
    if not rendered.cfg.spec.components.serving.enabled:
        return
    deployment = objects[("Deployment", DEMO_NAMESPACE, "tf-serving")]
    pod = deployment["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c.get("command") == ["tensorflow_model_server"])
    server_mount = _mount(server, pod, "models")
    lines = objects[("ConfigMap", DEMO_NAMESPACE, "tf-serving-config")]["data"]["models"].splitlines()
    base = dict(line.split(" ", 1) for line in lines)[DEMO_MODEL]
    assert PurePosixPath(export).relative_to(job_mount) == PurePosixPath(base).relative_to(server_mount)


@pytest.mark.parametrize(("profile", "channel"), DEMO_MATRIX)
def test_demo_pods_are_admitted_in_their_namespace(renders, profile: str, channel: str) -> None:
    """Every demo pod (TFJob and PyTorchJob replicas, the demo's own serving) passes the Pod Security
    level the rendered namespace enforces (kubernetes/pod-security-admission policy, tests/stacks/podsecurity.py)."""
    rendered = renders.get(profile, channel)
    namespace = next(plain(r.inputs) for r in rendered.kubernetes_objects()
                     if r.inputs["kind"] == "Namespace" and r.inputs["metadata"]["name"] == DEMO_NAMESPACE)
    level = namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    version = parse_version(rendered.cfg.kubernetes_minor)
    refused = [f"{o['kind']} {o['metadata']['name']} {label}: {v}" for o in demo_objects(rendered.cfg)
               for label, pod in pods_of(o) for v in evaluate(pod, level, version)]
    assert not refused, "\n".join(refused)


def _load_train(monkeypatch: pytest.MonkeyPatch, archive: type) -> Any:
    """train.py with a stand-in TensorFlow (the project venv has none): only export() is exercised."""
    fake = types.ModuleType("tensorflow")
    fake.keras = types.SimpleNamespace(Model=object, export=types.SimpleNamespace(ExportArchive=archive))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    spec = importlib.util.spec_from_file_location("demo_train", DEMO_DIR / "train.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "serving_fn", lambda *a: (lambda body: body))
    return module


def test_train_publishes_a_complete_numeric_version_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the SavedModel is being written, tf-serving's lister (and TF Serving, which takes any
    directory named by a number as a version) sees no version; afterwards `<export>/<number>/` holds
    saved_model.pb and nothing half-written is left."""
    base = tmp_path / "models" / DEMO_MODEL
    script = tmp_path / "list-models.sh"
    script.write_text(LISTER_SCRIPT)
    configured = tmp_path / "configured"
    configured.write_text(f"{DEMO_MODEL} {base}\n")
    out = tmp_path / "models.config"
    seen_while_writing: list[str] = []

    class Archive:
        def track(self, _: Any) -> None:
            pass

        def add_endpoint(self, **_: Any) -> None:
            pass

        def write_out(self, path: str) -> None:
            Path(path).mkdir(parents=True)
            (Path(path) / "saved_model.pb").write_bytes(b"\x08\x01")  # the variables would follow
            subprocess.run(["/bin/sh", str(script), str(configured), str(out), "once"], check=True, timeout=30)
            seen_while_writing.append(out.read_text())
            (Path(path) / "variables").mkdir()

    train = _load_train(monkeypatch, Archive)
    target = train.export(types.SimpleNamespace(export=base, title_len=12), None, None, None)
    assert seen_while_writing == ["model_config_list {\n}\n"]
    assert target.parent == base and target.name.isdigit()
    assert sorted(p.name for p in base.iterdir()) == [target.name]
    assert sorted(p.name for p in target.iterdir()) == ["saved_model.pb", "variables"]
