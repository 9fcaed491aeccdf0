"""The demo's TFJob and PyTorchJob against upstream training-operator CRDs, and its other objects.

Upstream CRD schemas come from ../shared/schemas/training-operator/<operator release>/ for the
release the channel pins (images.training-operator.release). They contain no
`additionalProperties: false`, so a plain JSON Schema validator would accept any typo; the test
walks the schema itself and rejects every field the schema does not declare (what the API server
does under strict field validation).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kvalidate
import pytest
import yaml
from stackhelpers import CHANNELS, SHARED_SCHEMAS, containers

from installer.verify import demo_objects
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
