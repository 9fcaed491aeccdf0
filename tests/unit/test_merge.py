"""Merge order: built-in defaults <- profile <- kfinstall.yaml <- --set; the result is frozen."""

from __future__ import annotations

import dataclasses

import pydantic
import pytest

from installer.config.load import load
from installer.config.merge import deep_merge, parse_set_value, split_set


def test_profile_overrides_builtin_default(make_site) -> None:
    cfg = load(make_site(cluster={"spec.profile": "private-gpu",
                                  "spec.storage": {"gluster": {"enabled": False}}}))
    assert cfg.spec.gpu.enabled is True  # private-gpu profile, built-in default is True too
    assert cfg.spec.components.serving.gpu is True  # set by the profile only


def test_file_overrides_profile(make_site) -> None:
    cfg = load(make_site(cluster={"spec.gpu": {"enabled": True}}))
    assert cfg.spec.gpu.enabled is True  # bare-metal profile says false


def test_set_overrides_file(make_site) -> None:
    cfg = load(make_site(cluster={"spec.gpu": {"enabled": True}}), ["spec.gpu.enabled=false"])
    assert cfg.spec.gpu.enabled is False


def test_set_without_spec_prefix_and_later_wins(make_site) -> None:
    cfg = load(make_site(), ["gpu.timeSlicingReplicas=2", "spec.gpu.timeSlicingReplicas=4"])
    assert cfg.spec.gpu.time_slicing_replicas == 4


def test_maps_merge_and_lists_replace() -> None:
    merged = deep_merge({"a": {"x": 1, "y": [1, 2]}, "b": 1}, {"a": {"y": [3]}, "c": 2})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}


def test_merge_does_not_mutate_inputs() -> None:
    base = {"a": {"x": [1]}}
    deep_merge(base, {"a": {"x": [2]}})
    assert base == {"a": {"x": [1]}}


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("False", False), ("null", None), ("3", 3), ("1.10", "1.10"), ("no", "no"),
    ('["a","b"]', ["a", "b"]), ('{"k": 1}', {"k": 1}), ("[not json", "[not json"),
])
def test_set_values_keep_versions_as_text(text: str, value: object) -> None:
    assert parse_set_value(text) == value


def test_split_set_rejects_empty_segments() -> None:
    with pytest.raises(ValueError, match="empty segment"):
        split_set("spec..gpu=1")


def test_the_resolved_config_is_frozen(make_site) -> None:
    cfg = load(make_site())
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.site = cfg.site  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        cfg.spec.gpu.enabled = False  # type: ignore[misc]


def test_ansible_vars_are_cluster_wide_kf_keys(make_site) -> None:
    cfg = load(make_site())
    extra = cfg.ansible_vars()
    assert all(key.startswith("kf_") for key in extra)
    assert extra["kf_kubernetes_minor"] == cfg.release.kubernetes.default_minor
    assert extra["kf_containerd_version"] == cfg.release.containerd.version
    assert extra["kf_nvidia_driver_branch"] == cfg.release.nvidia.driver_branch


def test_redacted_config_has_no_secret_values(make_site) -> None:
    cfg = load(make_site())
    text = repr(cfg.redacted()) + repr(cfg) + str(cfg.secrets)
    assert cfg.secrets is not None
    for value in cfg.secrets.values():
        assert value not in text
