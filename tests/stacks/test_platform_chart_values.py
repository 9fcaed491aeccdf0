"""Every chart release kfinstall records, and every chart pin of every channel, checked against upstream.

The upstream files are ../shared/schemas (read in place, never copied; MANIFEST.md there names the
repository, path, tag and git blob of each). For each Helm release of each profile x channel render
(plus the `spec.gpu.stack: device-plugin` render, the only one with the nvidia-device-plugin and
dcgm-exporter charts):

- a chart that ships a values schema (z2jh `jupyterhub/values.schema.yaml`, cert-manager
  `deploy/charts/cert-manager/values.schema.json`: JSON Schema draft-07; traefik
  `traefik/values.schema.json`: draft 2020-12) validates kfinstall's values merged over the chart's
  defaults, as Helm does before rendering;
- every other chart has no schema at the pinned tags, so Helm would ignore a misspelled key: each key
  path kfinstall sets must exist in the chart's default values.yaml, down to where the default is
  free-form (an empty map or null), with a compatible kind (map, list or scalar). The only keys
  allowed beyond the defaults are the ones MANIFEST.md's "Notes for test writers" documents.

A pinned version without its data folder fails (it is a pin nobody checked), except a chart
MANIFEST.md says was not collected (ingress-nginx), which is skipped with that reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, SHARED_SCHEMAS

from installer.releases import all_releases, load_release
from installer.render import evaluate, plain
from installer.versions import minor_tuple


def _bare(version: str) -> str:
    return version.removeprefix("v")


def _with_v(version: str) -> str:
    return "v" + _bare(version)


@dataclass(frozen=True)
class ChartData:
    """Where MANIFEST.md keeps one chart's upstream files, and what its notes allow beyond the defaults."""

    folder: str
    with_v: bool  # the data folder is named after the upstream tag: "v4.12.1" or "0.18.1"
    defaults: str = "values.yaml"
    schema: str | None = None
    draft: type[jsonschema.protocols.Validator] = jsonschema.Draft7Validator
    # Top-level keys handed to a subchart whose defaults were not collected: open below.
    subcharts: frozenset[str] = frozenset()
    # Valid key paths absent from values.yaml (commented out, or read by Chart.yaml conditions).
    extra: frozenset[str] = field(default_factory=frozenset)

    def version_dir(self, version: str) -> Path:
        return SHARED_SCHEMAS / self.folder / (_with_v(version) if self.with_v else _bare(version))


# Keyed by chart name (ChartPin.chart). MANIFEST.md's "Tag naming" table gives each folder rule.
UPSTREAM = {
    "jupyterhub": ChartData("jupyterhub-chart", False, schema="values.schema.yaml"),
    # Subcharts grafana, kube-state-metrics, prometheus-node-exporter, prometheus-windows-exporter
    # (charts/kube-prometheus-stack/Chart.yaml dependencies; MANIFEST: "treat grafana.* ... as open").
    "kube-prometheus-stack": ChartData("kube-prometheus-stack", False, subcharts=frozenset(
        {"grafana", "kube-state-metrics", "prometheus-node-exporter", "prometheus-windows-exporter"})),
    # charts/vX/csi-driver-nfs keeps the v in its folder (MANIFEST: csi-driver-nfs chart version strings).
    "csi-driver-nfs": ChartData("csi-driver-nfs", True),
    "gpu-operator": ChartData("gpu-operator", True, subcharts=frozenset({"node-feature-discovery"})),
    # Chart.yaml pulls node-feature-discovery as `nfd` with `condition: nfd.enabled,gfd.enabled`.
    "nvidia-device-plugin": ChartData("nvidia-device-plugin", False, extra=frozenset({"nfd.enabled"})),
    "dcgm-exporter": ChartData("dcgm-exporter", False),
    "metallb": ChartData("metallb", False, subcharts=frozenset({"frr-k8s"})),
    # resources defaults to requests only; limits is a plain ResourceRequirements field (toYaml).
    "metrics-server": ChartData("metrics-server", False, extra=frozenset({"resources.limits"})),
    "cert-manager": ChartData("cert-manager", True, schema="values.schema.json"),
    "traefik": ChartData("traefik", False, schema="values.schema.json", draft=jsonschema.Draft202012Validator),
    "gateway-helm": ChartData("envoy-gateway", True, defaults="values.tmpl.yaml"),
    "oauth2-proxy": ChartData("oauth2-proxy", False, subcharts=frozenset({"redis-ha"}),
                              extra=frozenset({"config.existingSecret"})),
    "local-path-provisioner": ChartData("local-path-provisioner", True, extra=frozenset({"sharedFileSystemPath"})),
}
NOT_COLLECTED = {
    "ingress-nginx": "ingress-nginx is pinned but was not requested and is not collected "
                     "(../shared/schemas/MANIFEST.md, the paragraph after the file table): its values go unchecked",
}
# Pins of one version that ../shared/schemas does not hold, each with why that version is pinned anyway.
# cert-manager: MANIFEST.md holds v1.20.3 and v1.21.1 only, whose supported Kubernetes range starts at 1.32
# (cert-manager/website content/docs/releases/README.md, PR #2007); channels 1.9 (Kubernetes 1.29-1.31) and
# 1.10 (1.31-1.33) keep Kubeflow's own pins (kubeflow/manifests@v1.9.0 and @v1.10.0 common/cert-manager).
NOT_COLLECTED_VERSIONS = {
    ("cert-manager", "v1.14.5"): "Kubeflow 1.9's cert-manager pin; upstream data not collected (newer versions do "
                                 "not support Kubernetes 1.29-1.31): its values go unchecked",
    ("cert-manager", "v1.16.1"): "Kubeflow 1.10's cert-manager pin; upstream data not collected (v1.20 does not "
                                 "support Kubernetes 1.31): its values go unchecked",
}


def not_collected(chart: str, version: str) -> str | None:
    """Why a pin has no upstream data to check against, or None when it must have some.

    A version exception holds only while its data folder is absent: once collected, it is checked.
    """
    if chart in NOT_COLLECTED:
        return NOT_COLLECTED[chart]
    data = UPSTREAM.get(chart)
    if data is not None and (data.version_dir(version) / data.defaults).is_file():
        return None
    return NOT_COLLECTED_VERSIONS.get((chart, version))
# appVersion of jupyterhub/Chart.yaml at each tag (jupyterhub/zero-to-jupyterhub-k8s, read at tags 3.3.8,
# 4.2.0, 4.3.2, 4.3.5 and 4.4.0; MANIFEST.md "jupyterhub 4.3.5" lists the 4.3.x ones).
UPSTREAM_APP_VERSIONS = {
    "jupyterhub": {"3.3.8": "4.1.6", "4.2.0": "5.3.0", "4.3.2": "5.4.3", "4.3.5": "5.4.6", "4.4.0": "5.5.0"},
}

PINS = [(r.channel, key) for r in all_releases() for key in sorted(r.charts)]
VARIANTS = [(p, c) for p in [*PROFILES, "private-gpu+device-plugin"] for c in CHANNELS]


def _require_shared() -> None:
    if not SHARED_SCHEMAS.is_dir():
        pytest.skip(f"{SHARED_SCHEMAS} is absent: upstream chart files are not available on this machine")


def chart_data(chart: str, version: str, where: str) -> tuple[ChartData, Path]:
    """The chart's upstream data folder for a pinned version; a missing one fails, naming the pin."""
    data = UPSTREAM.get(chart)
    if data is None:
        pytest.fail(f"{where}: no upstream data known for chart {chart!r}: add it to UPSTREAM in this test "
                    f"(see ../shared/schemas/MANIFEST.md) or, if MANIFEST says it was not collected, to NOT_COLLECTED")
    folder = data.version_dir(version)
    if not (folder / data.defaults).is_file():
        pytest.fail(f"{where}: chart {chart} {version} has no upstream data at {folder / data.defaults}: "
                    f"pin a version ../shared/schemas holds, or collect this one")
    if data.schema and not (folder / data.schema).is_file():
        pytest.fail(f"{where}: chart {chart} {version}: {folder / data.schema} is missing")
    return data, folder


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())


def helm_merge(base: Any, override: Any) -> Any:
    """Helm's coalescing: maps merge key by key, lists and scalars replace, a null removes a default key."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            if value is None and key in base:
                out.pop(key)
            else:
                out[key] = helm_merge(base.get(key), value)
        return out
    return override


def _kind(value: Any) -> str:
    return "map" if isinstance(value, dict) else "list" if isinstance(value, list) else "scalar"


def key_problems(values: Any, defaults: Any, data: ChartData | None = None, path: str = "") -> list[str]:
    """Key paths of `values` that the defaults do not have, or give another kind, down to free-form maps."""
    data = data or ChartData("", False)
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []  # a leaf, or a free-form map upstream (resources: {}, storageSpec: {})
    problems = []
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        if (not path and key in data.subcharts) or here in data.extra:
            continue
        if key not in defaults and isinstance(value, dict) and any(e.startswith(f"{here}.") for e in data.extra):
            problems += [f"{here}.{k}: not in the chart's defaults" for k in value if f"{here}.{k}" not in data.extra]
        elif key not in defaults:
            problems.append(f"{here}: not in the chart's defaults")
        elif defaults[key] is not None and value is not None and _kind(value) != _kind(defaults[key]):
            problems.append(f"{here}: a {_kind(value)} where the chart's default is a {_kind(defaults[key])}")
        elif isinstance(defaults[key], bool) and not isinstance(value, bool):
            # Go templates treat any non-empty string as true: enabled: "false" would switch a thing on.
            problems.append(f"{here}: {value!r} where the chart's default is a boolean")
        else:
            problems += key_problems(value, defaults[key], data, here)
    return problems


def values_problems(chart: str, version: str, values: dict[str, Any], where: str) -> list[str]:
    data, folder = chart_data(chart, version, where)
    defaults = _load(folder / data.defaults)
    if data.schema:
        validator = data.draft(_load(folder / data.schema))
        return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
                for e in validator.iter_errors(helm_merge(defaults, values))]
    return key_problems(values, defaults, data)


_DEVICE_PLUGIN: dict[str, list[dict[str, Any]]] = {}


def _releases(renders, variant: str, channel: str) -> list[dict[str, Any]]:
    if variant == "private-gpu+device-plugin":
        if channel not in _DEVICE_PLUGIN:
            cfg = renders.config("private-gpu", channel, ("spec.gpu.stack=device-plugin",))
            records = evaluate(cfg)
            _DEVICE_PLUGIN[channel] = [plain(r.inputs) for r in records if r.typ == "kubernetes:helm.sh/v3:Release"]
        return _DEVICE_PLUGIN[channel]
    return [plain(h.inputs) for h in renders.get(variant, channel).helm()]


@pytest.mark.parametrize(("variant", "channel"), VARIANTS)
def test_values_fit_the_pinned_chart(renders, variant: str, channel: str) -> None:
    _require_shared()
    problems = []
    for release in _releases(renders, variant, channel):
        chart, version = release["chart"], release["version"]
        if not_collected(chart, version):
            continue  # test_every_pin_has_upstream_data skips it with the reason
        where = f"{variant} on channel {channel}, release {release['name']}"
        problems += [f"{chart} {version}: {p}" for p in values_problems(chart, version, release["values"], where)]
    assert not problems, "\n".join(problems)


def test_the_device_plugin_render_has_its_charts(renders) -> None:
    charts = {r["chart"] for r in _releases(renders, "private-gpu+device-plugin", CHANNELS[-1])}
    assert {"nvidia-device-plugin", "dcgm-exporter"} <= charts


@pytest.mark.parametrize(("channel", "key"), PINS)
def test_every_pin_has_upstream_data(channel: str, key: str) -> None:
    """Each chart pin names a version ../shared/schemas holds, and records upstream's own facts.

    kube-prometheus-stack's Chart.yaml (the only one collected) must carry the pinned version; a
    recorded appVersion must be upstream's (jupyterhub/Chart.yaml, see UPSTREAM_APP_VERSIONS).
    """
    pin = load_release(channel).charts[key]
    if not_collected(pin.chart, pin.version):
        pytest.skip(f"channel {channel}, chart {pin.chart} {pin.version}: {not_collected(pin.chart, pin.version)}")
    _require_shared()
    where = f"installer/releases/{channel}.yaml charts.{key}"
    _, folder = chart_data(pin.chart, pin.version, where)
    chart_yaml = folder / "Chart.yaml"
    if chart_yaml.is_file():
        meta = yaml.safe_load(chart_yaml.read_text())
        assert _bare(str(meta["version"])) == _bare(pin.version), where
        # Helm refuses to install a chart whose kubeVersion the cluster does not satisfy.
        if "kubeVersion" in meta:
            floor = re.fullmatch(r">=\s*(\d+)\.(\d+)(\.\d+)?(-0)?", str(meta["kubeVersion"]).strip())
            assert floor, f"{chart_yaml}: kubeVersion {meta['kubeVersion']!r} is not modelled here"
            lowest = load_release(channel).kubernetes.minors()[0]
            assert minor_tuple(lowest) >= (int(floor[1]), int(floor[2])), (
                f"{where}: Kubernetes {lowest} (the channel's lowest) is below the chart's kubeVersion")
    if pin.app_version is not None:
        known = UPSTREAM_APP_VERSIONS.get(pin.chart, {})
        assert _bare(pin.version) in known, f"{where}: add upstream's appVersion of {pin.chart} {pin.version}"
        assert pin.app_version == known[_bare(pin.version)], (
            f"{where}: appVersion {pin.app_version} is not chart {pin.version}'s ({known[_bare(pin.version)]})")


def git_blob_id(data: bytes) -> str:
    """The id git gives a file's content (`git hash-object`): sha1 of "blob <size>\\0" + content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def manifest_blobs() -> dict[str, str]:
    """Local file -> upstream blob id, from MANIFEST.md's file table.

    Rows read: | `file` | repository | path | tag | commit | size | `blob` | ... |
    """
    blobs = {}
    for line in (SHARED_SCHEMAS / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and "/" in cells[0] and re.fullmatch(r"[0-9a-f]{40}", cells[6]):
            blobs[cells[0]] = cells[6]
    return blobs


def test_git_blob_id_is_gits(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    sample.write_bytes(b"appVersion: 5.4.6\n\0binary")
    out = subprocess.run(["git", "hash-object", str(sample)], capture_output=True, text=True, check=True).stdout
    assert git_blob_id(sample.read_bytes()) == out.strip()


@pytest.mark.parametrize(("channel", "key"), PINS)
def test_the_upstream_files_read_are_the_recorded_blobs(channel: str, key: str) -> None:
    """Every file the checks above read for a pin is byte-for-byte upstream's at the tag MANIFEST.md names."""
    pin = load_release(channel).charts[key]
    if not_collected(pin.chart, pin.version):
        pytest.skip(f"channel {channel}, chart {pin.chart} {pin.version}: {not_collected(pin.chart, pin.version)}")
    _require_shared()
    data, folder = chart_data(pin.chart, pin.version, f"installer/releases/{channel}.yaml charts.{key}")
    blobs = manifest_blobs()
    for name in filter(None, (data.defaults, data.schema, "Chart.yaml")):
        path = folder / name
        if name == "Chart.yaml" and not path.is_file():
            continue
        local = path.relative_to(SHARED_SCHEMAS).as_posix()
        assert local in blobs, f"MANIFEST.md records no blob for {local}"
        assert git_blob_id(path.read_bytes()) == blobs[local], f"{local} is not the upstream file MANIFEST.md names"


@pytest.mark.parametrize("channel", CHANNELS)
def test_container_toolkit_is_the_gpu_operators_default(channel: str) -> None:
    """Hosts install the toolkit the channel names; the GPU Operator pinned beside it ships the same one.

    gpu-operator deployments/gpu-operator/values.yaml `toolkit.version` at each pinned tag
    (v1.16.2-ubuntu20.04, v1.17.8-ubuntu20.04, v1.18.1, v1.19.1; MANIFEST.md "gpu-operator").
    """
    _require_shared()
    release = load_release(channel)
    pin = release.charts["gpu-operator"]
    data, folder = chart_data(pin.chart, pin.version, f"installer/releases/{channel}.yaml charts.gpu-operator")
    shipped = str(_load(folder / data.defaults)["toolkit"]["version"])
    match = re.match(r"v?(\d+\.\d+\.\d+)", shipped)
    assert match, f"unexpected toolkit.version {shipped!r} in {folder}"
    assert release.nvidia.container_toolkit == match.group(1)


# The image of kubeflow/trainer's manifests/overlays/standalone at each tag (base deployment.yaml image
# with the overlay's images[].newTag), as ../shared/schemas/MANIFEST.md's overlay table records it.
TRAINING_OPERATOR_IMAGES = {
    "v1.8.1": "kubeflow/training-operator:v1-04f9f13",
    "v1.9.2": "ghcr.io/kubeflow/training-v1/training-operator:v1-3f15cb8",
    "v1.9.4": "ghcr.io/kubeflow/training-v1/training-operator:v1-93c5489",
}


@pytest.mark.parametrize("channel", CHANNELS)
def test_training_operator_pin_is_its_releases_image_with_crds(channel: str) -> None:
    """The operator image is the one upstream's standalone overlay ships at the recorded release, and the
    TFJob/PyTorchJob CRDs of that release are in ../shared/schemas (the demo's jobs are validated on them)."""
    pin = load_release(channel).images["training-operator"]
    where = f"installer/releases/{channel}.yaml images.training-operator"
    assert pin.release in TRAINING_OPERATOR_IMAGES, f"{where}: release {pin.release} has no recorded upstream image"
    assert pin.ref == TRAINING_OPERATOR_IMAGES[pin.release], where
    _require_shared()
    for crd in ("kubeflow.org_tfjobs.yaml", "kubeflow.org_pytorchjobs.yaml"):
        path = SHARED_SCHEMAS / "training-operator" / pin.release / crd
        if not path.is_file():
            pytest.fail(f"{where}: release {pin.release} has no upstream CRD at {path}")


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_z2jh_image_pin_is_the_pinned_charts_build(channel: str) -> None:
    """An image pin of one of z2jh's own images (the hub image, for TensorBoard's login proxy) is the
    build the pinned chart runs: z2jh's chartpress publishes quay.io/jupyterhub/k8s-<image> tagged with
    the chart version and writes that tag into the packaged values.yaml (jupyterhub/zero-to-jupyterhub-k8s
    chartpress.yaml `imagePrefix: quay.io/jupyterhub/k8s-`; jupyterhub/values.yaml `hub.image.name` at every
    pinned tag, its tag "set-by-chartpress" in git)."""
    _require_shared()
    release = load_release(channel)
    chart = release.charts["jupyterhub"]
    _, folder = chart_data(chart.chart, chart.version, f"installer/releases/{channel}.yaml charts.jupyterhub")
    hub_image = _load(folder / "values.yaml")["hub"]["image"]["name"]
    prefix = hub_image.rpartition("/")[0] + "/k8s-"
    for key, pin in release.images.items():
        if pin.image.startswith(prefix):
            assert pin.tag == chart.version, (
                f"installer/releases/{channel}.yaml images.{key}: {pin.ref} is not chart {chart.version}'s build")


def test_the_key_check_catches_a_typo_and_a_wrong_kind() -> None:
    defaults = {"prometheus": {"prometheusSpec": {"retention": "10d", "resources": {}}}, "tolerations": []}
    ours = {"prometheus": {"prometheusSpec": {"retension": "15d", "resources": {"limits": {"cpu": 1}}}},
            "tolerations": {"key": "x"}}
    assert key_problems(ours, defaults) == ["prometheus.prometheusSpec.retension: not in the chart's defaults",
                                            "tolerations: a map where the chart's default is a list"]
    assert key_problems({"crds": {"enabled": "false"}}, {"crds": {"enabled": True}}) == [
        "crds.enabled: 'false' where the chart's default is a boolean"]


def test_documented_exceptions_only_open_their_own_paths() -> None:
    data = UPSTREAM["nvidia-device-plugin"]
    defaults = {"gfd": {"enabled": False}, "migStrategy": None}
    assert key_problems({"nfd": {"enabled": True}}, defaults, data) == []
    assert key_problems({"nfd": {"enabled": True, "worker": {}}}, defaults, data) == [
        "nfd.worker: not in the chart's defaults"]
    assert key_problems({"gfd": {"enabled": True, "nfd": {"enabled": True}}}, defaults, data) == [
        "gfd.nfd: not in the chart's defaults"]


def test_a_pin_without_upstream_data_fails_instead_of_skipping() -> None:
    _require_shared()
    with pytest.raises(pytest.fail.Exception, match="no upstream data at"):
        chart_data("csi-driver-nfs", "v0.0.1", "a test pin")
    with pytest.raises(pytest.fail.Exception, match="no upstream data known"):
        chart_data("some-new-chart", "1.0.0", "a test pin")


def test_a_version_exception_lapses_once_its_data_is_collected() -> None:
    _require_shared()
    NOT_COLLECTED_VERSIONS[("cert-manager", "v1.21.1")] = "a test exception"
    try:
        assert not_collected("cert-manager", "v1.21.1") is None  # ../shared/schemas holds v1.21.1
    finally:
        del NOT_COLLECTED_VERSIONS[("cert-manager", "v1.21.1")]
    assert not_collected("ingress-nginx", "4.14.1")


def test_helm_merge_drops_a_default_set_to_null() -> None:
    assert helm_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}) == {"a": {"c": 2}, "l": [2]}


def test_every_chart_folder_is_pinned_and_documented() -> None:
    from stackhelpers import REPO

    folders = {p.name for p in (REPO / "charts").iterdir() if p.is_dir()}
    readme = (REPO / "charts" / "README.md").read_text()
    # A channel pins one ingress controller: ingress-nginx up to 1.11, Traefik from 26.03 on (docs/tls.md).
    controllers = {"ingress-nginx", "traefik"}
    for release in all_releases():
        unpinned = folders - set(release.charts) - controllers
        assert not unpinned, f"channel {release.channel} pins no chart for {unpinned}"
    assert all(any(name in release.charts for release in all_releases()) for name in folders & controllers)
    assert all(f"`{name}`" in readme for name in folders)
    for name in folders:
        assert isinstance(yaml.safe_load((REPO / "charts" / name / "values.yaml").read_text()), dict)
