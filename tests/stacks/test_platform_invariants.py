"""Platform invariants on every profile x channel: images, resources, pins, secrets, namespaces, auth."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, containers, docs

from installer.render import SECRET_SIG_KEY, manifest, plain

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
PSS_MODES = ("enforce", "audit", "warn")
SYSTEM_NAMESPACES = {"kube-system", "default"}


def _tag_ok(ref: str) -> bool:
    name = ref.rsplit("/", 1)[-1]
    if "@sha256:" in ref:
        return True
    return ":" in name and not name.endswith(":latest")


def _image_values(values: Any) -> list[str]:
    """Every image a Helm values tree names explicitly (`image: ref` or `image: {repository, tag}`)."""
    found: list[str] = []
    if isinstance(values, dict):
        for key, value in values.items():
            if key == "image" and isinstance(value, str):
                found.append(value)
            elif key == "image" and isinstance(value, dict) and "tag" in value:
                found.append(f"{value.get('repository') or value.get('name')}:{value['tag']}")
            else:
                found += _image_values(value)
    elif isinstance(values, list):
        for item in values:
            found += _image_values(item)
    return found


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_images_are_tagged_and_never_latest(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    refs = [c["image"] for r in rendered.kubernetes_objects() for c in containers(plain(r.inputs))]
    refs += [ref for h in rendered.helm() for ref in _image_values(plain(h.inputs.get("values")))]
    assert refs, "no images found at all"
    bad = [ref for ref in refs if not _tag_ok(ref)]
    assert not bad, f"untagged or :latest images: {bad}"
    pinned = {pin.ref for pin in rendered.cfg.release.images.values()}
    unpinned = [c["image"] for r in rendered.kubernetes_objects() for c in containers(plain(r.inputs))
                if c["image"] not in pinned]
    assert not unpinned, f"images not from installer/releases/{channel}.yaml: {unpinned}"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_every_container_has_requests_and_limits(renders, profile: str, channel: str) -> None:
    missing = []
    for record in renders.get(profile, channel).kubernetes_objects():
        for container in containers(plain(record.inputs)):
            res = container.get("resources") or {}
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part) or {}):
                    missing.append(f"{record.name}/{container['name']}: {part}")
    assert not missing, missing


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_chart_versions_equal_the_channel_pins(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    for record in rendered.helm():
        inputs = plain(record.inputs)
        pin = rendered.cfg.release.charts[inputs["name"]]
        assert (inputs["chart"], inputs["version"], inputs["repositoryOpts"]["repo"]) == (
            pin.chart, pin.version, pin.repository)


def _unwrapped_secret_paths(value: Any, secrets: list[str], path: str = "") -> list[str]:
    """Paths where a secret value appears without Pulumi's secret wrapper around it."""
    if isinstance(value, dict):
        if SECRET_SIG_KEY in value:
            return []  # everything below is a Pulumi secret
        return [p for k, v in value.items() for p in _unwrapped_secret_paths(v, secrets, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _unwrapped_secret_paths(v, secrets, f"{path}[{i}]")]
    if isinstance(value, str) and any(s in value for s in secrets):
        return [path]
    return []


def _wrapped_strings(value: Any, inside: bool = False) -> list[str]:
    if isinstance(value, dict):
        wrapped = inside or SECRET_SIG_KEY in value
        return [s for k, v in value.items() if k != SECRET_SIG_KEY for s in _wrapped_strings(v, wrapped)]
    if isinstance(value, list):
        return [s for v in value for s in _wrapped_strings(v, inside)]
    return [value] if inside and isinstance(value, str) else []


def _expected_secrets(cfg: Any) -> set[str]:
    keys = {"jupyterhub_proxy_secret_token", "jupyterhub_cookie_secret", "jupyterhub_crypt_key",
            "grafana_admin_password"}
    keys.add("lab_user_password" if cfg.spec.auth.type == "dummy" else "ldap_bind_password")
    return {getattr(cfg.secrets, key).get_secret_value() for key in keys}


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_every_secret_input_is_a_pulumi_secret(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    secrets = rendered.secrets()
    leaks = [f"{r.typ} {r.name}{p}" for r in rendered.records for p in _unwrapped_secret_paths(r.inputs, secrets)]
    assert not leaks, f"secret values passed as plain inputs: {leaks}"
    wrapped = {s for r in rendered.records for s in _wrapped_strings(r.inputs)}
    missing = [s[:4] + "..." for s in _expected_secrets(rendered.cfg) if not any(s in w for w in wrapped)]
    assert not missing, "secrets from secrets.yml that the program never used as Pulumi secrets"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_no_secret_value_in_rendered_files_outside_secret_objects(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    secrets = rendered.secrets()
    for path in rendered.files():
        text = path.read_text()
        if any(d.get("kind") == "Secret" for d in docs(path) if isinstance(d, dict) and "apiVersion" in d):
            assert path.stat().st_mode & 0o077 == 0, f"{path.name} holds secrets but is readable by others"
            continue
        assert not [s for s in secrets if s in text], f"secret value written to {path.relative_to(rendered.out)}"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_platform_namespaces_carry_pod_security_labels(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    objects = [manifest(r, rendered.secrets()) for r in rendered.kubernetes_objects()]
    namespaces = {o["metadata"]["name"]: o["metadata"].get("labels", {}) for o in objects if o["kind"] == "Namespace"}
    for name, labels in namespaces.items():
        for mode in PSS_MODES:
            assert labels.get(f"pod-security.kubernetes.io/{mode}") in {"privileged", "baseline", "restricted"}, (
                f"namespace {name} lacks pod-security {mode}")
    used = {o["metadata"].get("namespace") for o in objects} | {plain(h.inputs)["namespace"] for h in rendered.helm()}
    strays = used - set(namespaces) - SYSTEM_NAMESPACES - {None}
    assert not strays, f"objects in namespaces kfinstall does not create: {strays}"


def _hub_config(rendered: Any) -> dict[str, Any]:
    hub = next(h for h in rendered.helm() if plain(h.inputs)["name"] == "jupyterhub")
    return plain(hub.inputs)["values"]["hub"]["config"]


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_dummy_authenticator_only_on_lab(renders, profile: str, channel: str) -> None:
    config = _hub_config(renders.get(profile, channel))
    authenticator = config["JupyterHub"]["authenticator_class"]
    if profile == "lab":
        assert authenticator == "dummy"
    else:
        assert authenticator == "ldapauthenticator.LDAPAuthenticator"
        assert "DummyAuthenticator" not in config


def test_the_stacks_refuse_dummy_auth_outside_lab_even_past_the_loader(renders) -> None:
    from installer.render import evaluate

    cfg = renders.config("bare-metal", CHANNELS[-1])
    spec = cfg.cluster.spec.model_copy(update={"auth": cfg.spec.auth.model_copy(update={"type": "dummy"})})
    forged = type(cfg)(**{**cfg.__dict__, "cluster": cfg.cluster.model_copy(update={"spec": spec})})
    with pytest.raises(Exception, match="dummy authenticator is only allowed in the lab profile"):
        evaluate(forged)


def _by_name(rendered: Any, name: str) -> Any:
    return next(r for r in rendered.records if r.name == name)


def _depends(rendered: Any, name: str, on: str) -> bool:
    target = _by_name(rendered, on).urn
    return target in _by_name(rendered, name).dependencies


@pytest.mark.parametrize("channel", CHANNELS)
def test_crds_and_charts_come_before_their_users(renders, channel: str) -> None:
    rendered = renders.get("private-gpu", channel)
    for crd in ("training-crd-tfjob", "training-crd-pytorchjob"):
        assert _depends(rendered, "training-deployment", crd)
        assert _depends(rendered, "training-webhook", crd)
    assert _depends(rendered, "networking-pool", "networking-metallb")
    assert _depends(rendered, "networking-l2", "networking-metallb")
    assert _depends(rendered, "gpu-gpu-operator", "monitoring-kube-prometheus-stack")
    assert _depends(rendered, "jupyterhub-jupyterhub", "storage-nfs")
    assert _depends(rendered, "workspace-models", "storage-nfs")


def test_crds_are_server_side_applied_with_force(renders) -> None:
    rendered = renders.get("bare-metal", CHANNELS[-1])
    crds = [r for r in rendered.kubernetes_objects() if r.inputs["kind"] == "CustomResourceDefinition"]
    assert {r.inputs["metadata"]["name"] for r in crds} == {"tfjobs.kubeflow.org", "pytorchjobs.kubeflow.org"}
    assert all(r.inputs["metadata"]["annotations"]["pulumi.com/patchForce"] == "true" for r in crds)
    provider = next(r for r in rendered.records if r.typ == "pulumi:providers:kubernetes")
    assert provider.inputs["enableServerSideApply"] in ("true", True)


def test_gpu_stack_per_profile(renders) -> None:
    channel = CHANNELS[-1]
    gpu_releases = {"gpu-operator", "nvidia-device-plugin", "dcgm-exporter"}
    names = {p: {plain(h.inputs)["name"] for h in renders.get(p, channel).helm()} for p in PROFILES}
    assert not names["gcp"] & gpu_releases, "GKE installs the driver and device plugin itself"
    assert not names["bare-metal"] & gpu_releases
    assert "gpu-operator" in names["private-gpu"]
    values = plain(next(h for h in renders.get("private-gpu", channel).helm()
                        if h.inputs["name"] == "gpu-operator").inputs)["values"]
    assert values["driver"]["enabled"] is False and values["toolkit"]["enabled"] is False
    assert values["dcgmExporter"]["serviceMonitor"]["additionalLabels"] == {"release": "kube-prometheus-stack"}


def test_device_plugin_stack_brings_dcgm_exporter_and_a_service_monitor(renders) -> None:
    from installer.render import evaluate

    cfg = renders.config("private-gpu", CHANNELS[0], ("spec.gpu.stack=device-plugin", "spec.gpu.timeSlicingReplicas=4"))
    records = evaluate(cfg)
    releases = {plain(r.inputs)["name"] for r in records if r.typ == "kubernetes:helm.sh/v3:Release"}
    assert {"nvidia-device-plugin", "dcgm-exporter"} <= releases and "gpu-operator" not in releases
    monitor = next(r for r in records if r.inputs.get("kind") == "ServiceMonitor")
    assert monitor.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    config = next(r for r in records if r.name == "gpu-time-slicing")
    assert yaml.safe_load(config.inputs["data"]["any"])["sharing"]["timeSlicing"]["resources"][0]["replicas"] == 4


def test_storage_classes_per_profile(renders) -> None:
    channel = CHANNELS[-1]

    def classes(profile: str) -> dict[str, dict[str, Any]]:
        rendered = renders.get(profile, channel)
        return {r.inputs["metadata"]["name"]: plain(r.inputs) for r in rendered.kubernetes_objects()
                if r.inputs["kind"] == "StorageClass"}

    gpu = classes("private-gpu")
    assert gpu["nfs"]["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert gpu["nfs"]["parameters"]["server"] == "192.0.2.31"
    assert gpu["gluster-rwx"]["provisioner"] == "kfinstall.io/gluster-local-path"
    assert gpu["gluster-rwx"]["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "false"
    gcp = classes("gcp")
    assert set(gcp) == {"filestore"} and gcp["filestore"]["parameters"]["share"] == "/kfinstall"
    objects = renders.get("private-gpu", channel).kubernetes_objects()
    lpp = next(r for r in objects if r.name == "storage-local-path-config")
    assert '"sharedFileSystemPath": "/mnt/gluster/kfinstall"' in lpp.inputs["data"]["config.json"]


def test_serving_contract(renders) -> None:
    rendered = renders.get("private-gpu", CHANNELS[-1])
    objects = {(r.inputs["kind"], r.inputs["metadata"]["name"]): plain(r.inputs) for r in rendered.kubernetes_objects()}
    service = objects[("Service", "tf-serving")]
    assert {p["port"] for p in service["spec"]["ports"]} == {8500, 8501}
    container = objects[("Deployment", "tf-serving")]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["tcpSocket"] == {"port": 8501}  # no model needed (test_class_serving)
    assert any(a.startswith("--model_config_file=") for a in container["args"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    models = objects[("ConfigMap", "tf-serving-config")]["data"]["models"]
    assert models == "issue-summarization /models/issue-summarization\n"
    assert ("HorizontalPodAutoscaler", "tf-serving") in objects
    volumes = objects[("Deployment", "tf-serving")]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in volumes


def test_the_autoscaler_has_a_metrics_api_except_on_gke(renders) -> None:
    """An HPA on CPU needs the resource metrics API: metrics-server on hosts, GKE's own on gcp."""
    channel = CHANNELS[-1]
    for profile in PROFILES:
        helm = {plain(h.inputs)["name"]: plain(h.inputs) for h in renders.get(profile, channel).helm()}
        if profile == "gcp":
            assert "metrics-server" not in helm
            continue
        release = helm["metrics-server"]
        assert release["namespace"] == "kube-system"
        assert "--kubelet-insecure-tls" in release["values"]["args"]


def test_components_never_read_pulumi_config() -> None:
    # The model is the one source of settings (style guide 23); pulumi.Config() would be a second one.
    from stackhelpers import REPO

    offenders = [p.name for p in (REPO / "stacks").rglob("*.py") if "pulumi.Config(" in p.read_text()]
    assert not offenders
