"""kfinstall's values for charts without a values schema: every key path we set exists upstream.

kube-prometheus-stack and csi-driver-nfs ship no values.schema.json at the pinned tags, so a typo
would be ignored by Helm. Each key path kfinstall sets must exist in the chart's default
values.yaml (read in place from ../shared/schemas), down to where the default is free-form
(an empty map or null). Grafana's keys belong to a subchart whose defaults are not collected.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from stackhelpers import CHANNELS, SHARED_SCHEMAS

from installer.render import plain

CHARTS = {"kube-prometheus-stack": "kube-prometheus-stack", "csi-driver-nfs": "csi-driver-nfs"}  # chart -> folder
SUBCHART_KEYS = {"grafana", "kube-state-metrics", "prometheus-node-exporter"}


def missing_paths(values: Any, defaults: Any, path: str = "") -> list[str]:
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []  # a leaf, or a free-form map upstream (resources: {}, storageSpec: {})
    missing = []
    for key, value in values.items():
        if not path and key in SUBCHART_KEYS:
            continue
        if key not in defaults:
            missing.append(f"{path}.{key}")
        else:
            missing += missing_paths(value, defaults[key], f"{path}.{key}")
    return missing


def _defaults(folder: str, version: str) -> dict[str, Any]:
    path = SHARED_SCHEMAS / folder / version / "values.yaml"
    if not SHARED_SCHEMAS.is_dir():
        pytest.skip(f"{SHARED_SCHEMAS} is absent")
    if not path.is_file():
        pytest.skip(f"no upstream defaults for {folder} {version} at {path}")
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("chart", sorted(CHARTS))
@pytest.mark.parametrize("channel", CHANNELS)
def test_values_keys_exist_in_the_chart_defaults(renders, chart: str, channel: str) -> None:
    rendered = renders.get("private-gpu", channel)
    folder = CHARTS[chart]
    defaults = _defaults(folder, rendered.cfg.release.charts[chart].version)
    release = next(h for h in rendered.helm() if h.inputs["name"] == chart)
    assert not missing_paths(plain(release.inputs)["values"], defaults)


def test_the_key_check_catches_a_typo() -> None:
    defaults = {"prometheus": {"prometheusSpec": {"retention": "10d", "resources": {}}}}
    ours = {"prometheus": {"prometheusSpec": {"retension": "15d", "resources": {"limits": {"cpu": 1}}}}}
    assert missing_paths(ours, defaults) == [".prometheus.prometheusSpec.retension"]


def test_every_chart_folder_is_pinned_and_documented() -> None:
    from stackhelpers import REPO

    from installer.releases import all_releases

    folders = {p.name for p in (REPO / "charts").iterdir() if p.is_dir()}
    readme = (REPO / "charts" / "README.md").read_text()
    for release in all_releases():
        unpinned = folders - set(release.charts)
        assert not unpinned, f"channel {release.channel} pins no chart for {unpinned}"
    assert all(f"`{name}`" in readme for name in folders)
    for name in folders:
        assert isinstance(yaml.safe_load((REPO / "charts" / name / "values.yaml").read_text()), dict)
