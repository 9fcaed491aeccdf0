"""Notebook images: a TensorFlow image everywhere, its CUDA build on GPU profiles, pinned per channel.

z2jh's default user image is its sample (singleuser.image.name k8s-singleuser-sample in values.yaml
at every pinned tag), which has neither TensorFlow nor CUDA, so a GPU profile ran a CPU-only image.
Jupyter docker-stacks publishes tensorflow-notebook with a CUDA variant whose tags take the prefix
`cuda-` (jupyter/docker-stacks docs/using/selecting.md, "CUDA enabled variant", PR #2100), and date
tags YYYY-MM-DD that never move (the docker-stacks wiki "Images built during <month>" pages).
"""

from __future__ import annotations

import re

import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES
from test_platform_jupyterhub_values import _chart_files, _hub_values, _merge

from installer.releases import load_release

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
DOCKER_STACKS_TENSORFLOW = "quay.io/jupyter/tensorflow-notebook"
DATE_TAG = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# jupyter/docker-stacks images/docker-stacks-foundation/Dockerfile: ARG NB_UID="1000", ARG NB_GID="100"
# (user jovyan in group users); the home volume must be writable by that group.
NB_UID, NB_GID = 1000, 100


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_channel_pins_the_cpu_and_cuda_tensorflow_notebook_of_one_build(channel: str) -> None:
    """Both from the same weekly build, dated no later than the channel's release (chosen by date)."""
    release = load_release(channel)
    cpu, gpu = release.images.get("notebook"), release.images.get("notebook-gpu")
    assert cpu and gpu, f"installer/releases/{channel}.yaml pins no notebook or notebook-gpu image"
    assert cpu.image == gpu.image == DOCKER_STACKS_TENSORFLOW
    assert DATE_TAG.match(cpu.tag), cpu.tag
    assert gpu.tag == f"cuda-{cpu.tag}"
    assert cpu.tag <= release.released, "an image built after the channel's release"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_gpu_profiles_run_the_cuda_image_and_cpu_profiles_do_not(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    pins = rendered.cfg.release.images
    singleuser = _hub_values(rendered)["singleuser"]
    assert singleuser["image"] == {"name": pins["notebook"].image, "tag": pins["notebook"].tag}
    profiles = singleuser["profileList"]
    assert profiles
    gpu = [p for p in profiles if "nvidia.com/gpu" in p["kubespawner_override"].get("extra_resource_limits", {})]
    assert bool(gpu) == rendered.cfg.spec.gpu.enabled
    for entry in profiles:
        override = entry["kubespawner_override"]
        if entry in gpu:
            assert override["image"] == pins["notebook-gpu"].ref, entry["slug"]
        else:
            assert "image" not in override, f"CPU profile {entry['slug']} must use singleuser.image"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_the_image_user_fits_the_chart_uid_and_fs_gid(renders, profile: str, channel: str) -> None:
    """KubeSpawner runs the container as singleuser.uid and sets fsGroup singleuser.fsGid (z2jh
    files/hub/jupyterhub_config.py maps uid and fs_gid); docker-stacks images expect jovyan 1000:100."""
    rendered = renders.get(profile, channel)
    _, defaults = _chart_files(rendered.cfg.release.charts["jupyterhub"].version)
    singleuser = _merge(yaml.safe_load(defaults.read_text()), _hub_values(rendered))["singleuser"]
    assert (singleuser["uid"], singleuser["fsGid"]) == (NB_UID, NB_GID)
    for entry in singleuser["profileList"]:
        override = entry["kubespawner_override"]
        assert override.get("uid", NB_UID) == NB_UID and override.get("fs_gid", NB_GID) == NB_GID
