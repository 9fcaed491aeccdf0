"""The upgrade thresholds, read from installer/releases/upgrade-rules.yml (never written in code)."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field

from installer.releases import Release, channel_names
from installer.versions import minor_tuple, parse

RULES_FILE = "upgrade-rules.yml"
_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SkewRules(BaseModel):
    model_config = _STRICT
    kubelet_max_minors_behind: int = Field(alias="kubeletMaxMinorsBehind")
    apiserver_max_minors_apart: int = Field(alias="apiserverMaxMinorsApart")


class RuntimeRequirement(BaseModel):
    """From Kubernetes `from_kubernetes` on, every node needs this containerd and cgroup version."""

    model_config = _STRICT
    from_kubernetes: str = Field(alias="fromKubernetes")
    containerd_min: str = Field(alias="containerdMin")
    cgroup_version: int = Field(alias="cgroupVersion")
    reason: str

    def applies_to(self, kubernetes: str) -> bool:
        return minor_tuple(kubernetes) >= minor_tuple(self.from_kubernetes)

    def containerd_ok(self, containerd: str) -> bool:
        return parse(containerd) >= parse(self.containerd_min)


class GpuOperatorRules(BaseModel):
    model_config = _STRICT
    max_majors_per_hop: int = Field(alias="maxMajorsPerHop")


class ChartMajorMigration(BaseModel):
    model_config = _STRICT
    from_major: int = Field(alias="fromMajor")
    to_major: int = Field(alias="toMajor")
    migration: str


class JupyterhubRules(BaseModel):
    model_config = _STRICT
    major_migrations: tuple[ChartMajorMigration, ...] = Field(alias="majorMigrations")


class TrainingOperatorRules(BaseModel):
    model_config = _STRICT
    standalone_from_channel: str = Field(alias="standaloneFromChannel")
    guarded_crds: tuple[str, ...] = Field(alias="guardedCrds")


class PodSecurityRules(BaseModel):
    model_config = _STRICT
    labels_from_channel: str = Field(alias="labelsFromChannel")


class UpgradeRules(BaseModel):
    model_config = _STRICT
    kubernetes: SkewRules
    runtime_requirements: tuple[RuntimeRequirement, ...] = Field(alias="runtimeRequirements")
    gpu_operator: GpuOperatorRules = Field(alias="gpuOperator")
    jupyterhub: JupyterhubRules
    training_operator: TrainingOperatorRules = Field(alias="trainingOperator")
    pod_security: PodSecurityRules = Field(alias="podSecurity")

    def requirements_for(self, kubernetes: str) -> list[RuntimeRequirement]:
        return [r for r in self.runtime_requirements if r.applies_to(kubernetes)]


@cache
def load_rules() -> UpgradeRules:
    text = resources.files("installer.releases").joinpath(RULES_FILE).read_text(encoding="utf-8")
    return UpgradeRules.model_validate(yaml.safe_load(text))


def channel_at_or_after(release: Release, channel: str) -> bool:
    """True when `release` is `channel` or newer (by the channels' `order`, not string sorting)."""
    names = channel_names()
    return names.index(release.channel) >= names.index(channel)
