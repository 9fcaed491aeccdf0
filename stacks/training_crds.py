"""The TFJob and PyTorchJob CustomResourceDefinitions, written by kfinstall (kubeflow.org/v1).

Upstream's generated CRDs embed the whole PodTemplateSpec schema (600 kB each, over the
last-applied annotation limit since v1.9); ours type every job-level field the operator reads
and keep the pod template as `x-kubernetes-preserve-unknown-fields`, which the API server stores
as given and the operator then decodes with its own strict Go types. The field lists follow
kubeflow/trainer release-1.9 `pkg/apis/kubeflow.org/v1` (tensorflow_types.go, pytorch_types.go,
common_types.go); tests check the demo jobs against upstream's full schemas as well.
"""

from __future__ import annotations

from typing import Any

GROUP = "kubeflow.org"
VERSION = "v1"
_INT32 = {"type": "integer", "format": "int32"}
_INT64 = {"type": "integer", "format": "int64"}
_ANY_OBJECT = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _replica_spec() -> dict[str, Any]:
    return {"type": "object", "properties": {
        "replicas": dict(_INT32),
        "restartPolicy": {"type": "string", "enum": ["Always", "OnFailure", "Never", "ExitCode"]},
        "template": dict(_ANY_OBJECT, description="A PodTemplateSpec; decoded strictly by the operator."),
    }}


def _run_policy() -> dict[str, Any]:
    return {"type": "object", "properties": {
        "cleanPodPolicy": {"type": "string", "enum": ["All", "Running", "None"]},
        "ttlSecondsAfterFinished": dict(_INT32),
        "activeDeadlineSeconds": dict(_INT64),
        "backoffLimit": dict(_INT32),
        "schedulingPolicy": dict(_ANY_OBJECT),
        "suspend": {"type": "boolean"},
        "managedBy": {"type": "string"},
    }}


def _replica_specs(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "additionalProperties": _replica_spec()}


def _crd(kind: str, plural: str, spec_props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": spec_props, "required": required},
        "status": dict(_ANY_OBJECT),
    }}
    columns = [{"name": "State", "type": "string", "jsonPath": ".status.conditions[-1:].type"},
               {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower()},
                 "versions": [{"name": VERSION, "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": schema},
                               "subresources": {"status": {}}, "additionalPrinterColumns": columns}]},
    }


def tfjob_crd() -> dict[str, Any]:
    props = {
        "tfReplicaSpecs": _replica_specs("Replica type (PS, Worker, Chief, Master, Evaluator) to its spec."),
        "runPolicy": _run_policy(),
        "successPolicy": {"type": "string"},
        "enableDynamicWorker": {"type": "boolean"},
    }
    return _crd("TFJob", "tfjobs", props, ["tfReplicaSpecs"])


def pytorchjob_crd() -> dict[str, Any]:
    props = {
        "pytorchReplicaSpecs": _replica_specs("Replica type (Master, Worker) to its spec."),
        "runPolicy": _run_policy(),
        "elasticPolicy": dict(_ANY_OBJECT),
        "nprocPerNode": {"type": "string"},
    }
    return _crd("PyTorchJob", "pytorchjobs", props, ["pytorchReplicaSpecs"])


def all_crds() -> dict[str, dict[str, Any]]:
    """Scheme name (the operator's --enable-scheme value) to its CRD."""
    return {"tfjob": tfjob_crd(), "pytorchjob": pytorchjob_crd()}
