"""Release channels: the one catalogue of versions, charts and images (one YAML file per channel).

No other module carries a version literal (tests/unit/test_no_version_literals.py enforces it).
Channel files are package data, read once per process and validated strictly.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field

from installer.versions import minor_tuple

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ImagePin(BaseModel):
    """A container image at a fixed tag; `release` names the upstream release it came from."""

    model_config = _STRICT
    image: str
    tag: str
    release: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.image}:{self.tag}"


class ChartPin(BaseModel):
    """A Helm chart at a fixed version from its upstream repository."""

    model_config = _STRICT
    repository: str
    chart: str
    version: str
    app_version: str | None = Field(default=None, alias="appVersion")


class KubernetesPins(BaseModel):
    model_config = _STRICT
    min_minor: str = Field(alias="minMinor")
    max_minor: str = Field(alias="maxMinor")
    default_minor: str = Field(alias="defaultMinor")
    cni: dict[str, str]
    kube_vip: ImagePin = Field(alias="kubeVip")

    def supports(self, version: str) -> bool:
        """True when the minor of `version` (1.34 or 1.34.2) lies inside this channel's range."""
        return minor_tuple(self.min_minor) <= minor_tuple(version) <= minor_tuple(self.max_minor)

    def minors(self) -> list[str]:
        """Every supported minor, oldest first (ranges never cross a major)."""
        major, low = minor_tuple(self.min_minor)
        _, high = minor_tuple(self.max_minor)
        return [f"{major}.{m}" for m in range(low, high + 1)]


class ContainerdPins(BaseModel):
    model_config = _STRICT
    version: str
    minimum_distro: str = Field(alias="minimumDistro")


class NvidiaPins(BaseModel):
    model_config = _STRICT
    driver_branch: str = Field(alias="driverBranch")
    container_toolkit: str = Field(alias="containerToolkit")


class Release(BaseModel):
    """Everything one channel pins. Loaded from installer/releases/<channel>.yaml."""

    model_config = _STRICT
    channel: str
    order: int
    kubeflow_ref: str = Field(alias="kubeflowRef")
    released: str
    notes: str
    upgrades_from: tuple[str, ...] = Field(alias="upgradesFrom")
    kubernetes: KubernetesPins
    containerd: ContainerdPins
    nvidia: NvidiaPins
    charts: dict[str, ChartPin]
    images: dict[str, ImagePin]

    @property
    def ingress_controller(self) -> str:
        """The ingress controller's chart key: traefik where the channel pins it (26.03 on, ingress-nginx
        being retired), else ingress-nginx. A channel pins one of the two."""
        return "traefik" if "traefik" in self.charts else "ingress-nginx"


def channel_names() -> list[str]:
    """All channel names, oldest first (by the `order` field, not by string sorting)."""
    return [r.channel for r in all_releases()]


@cache
def all_releases() -> tuple[Release, ...]:
    folder = resources.files(__name__)
    loaded = [
        Release.model_validate(yaml.safe_load(entry.read_text(encoding="utf-8")))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    ]
    return tuple(sorted(loaded, key=lambda r: r.order))


def load_release(channel: str) -> Release:
    """The release for `channel`; KeyError when there is no such channel."""
    for release in all_releases():
        if release.channel == channel:
            return release
    raise KeyError(channel)
