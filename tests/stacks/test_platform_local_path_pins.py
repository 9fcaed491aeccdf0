"""local-path-provisioner: the rendered Deployments and ConfigMaps fit the image each channel pins.

kfinstall renders local-path-provisioner itself (stacks/storage.py), pinning only its image
(installer/releases/<channel>.yaml `images.local-path-provisioner`), so upstream's facts about that
image are checked here on every profile x channel render (../shared/schemas/MANIFEST.md,
"local-path-provisioner"; rancher/local-path-provisioner):

- the image is upstream's own repository (`image.repository` of
  deploy/chart/local-path-provisioner/values.yaml at v0.0.36 and v0.0.37: docker.io/rancher/local-path-provisioner);
- the health server (`--health-port`/`HEALTH_PORT`, `/health` and `/ready` on 8080) exists from v0.0.37
  only (main.go at v0.0.37; absent at v0.0.36), so a probe on it needs a pin of v0.0.37 or later;
- config.json needs exactly one of `sharedFileSystemPath` and a non-empty `nodePathMap`: otherwise
  every volume request fails with "both nodePathMap and sharedFileSystemPath are defined" (or "are
  unconfigured") (provisioner.go `isSharedFilesystem` at v0.0.28 and v0.0.32; README "Configuration").
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, SHARED_SCHEMAS, containers

from installer.render import plain
from installer.versions import parse

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
HEALTH_SERVER_FROM = "v0.0.37"
HEALTH_PATHS = {"/health", "/ready"}


def _objects(rendered: Any, kind: str) -> list[dict[str, Any]]:
    return [o for o in (plain(r.inputs) for r in rendered.kubernetes_objects()) if o.get("kind") == kind]


def _provisioners(rendered: Any) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(Deployment, its local-path container) for every Deployment running the pinned image."""
    repository = rendered.cfg.release.images["local-path-provisioner"].image
    return [(d, c) for d in _objects(rendered, "Deployment") for c in containers(d)
            if c["image"].rpartition(":")[0] == repository]


def uses_health_server(container: dict[str, Any]) -> bool:
    probes = [container.get(p) or {} for p in ("livenessProbe", "readinessProbe", "startupProbe")]
    env = {e.get("name") for e in container.get("env") or []}
    args = [*container.get("command", []), *container.get("args", [])]
    return (any((p.get("httpGet") or {}).get("path") in HEALTH_PATHS for p in probes)
            or "HEALTH_PORT" in env or any(str(a).startswith("--health-port") for a in args))


def config_problem(config: dict[str, Any]) -> str | None:
    if config.get("sharedFileSystemPath") and config.get("nodePathMap"):
        return "sharedFileSystemPath with a non-empty nodePathMap"
    if not config.get("sharedFileSystemPath") and not config.get("nodePathMap"):
        return "neither sharedFileSystemPath nor nodePathMap"
    return None


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_local_path_objects_fit_the_pinned_image(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    pin = rendered.cfg.release.images["local-path-provisioner"]
    config_maps = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in _objects(rendered, "ConfigMap")}
    for deployment, container in _provisioners(rendered):
        name = deployment["metadata"]["name"]
        assert container["image"] == pin.ref, f"{name} runs {container['image']}, the channel pins {pin.ref}"
        if uses_health_server(container):
            assert parse(pin.tag) >= parse(HEALTH_SERVER_FROM), (
                f"{name} uses the health server, which local-path-provisioner has from {HEALTH_SERVER_FROM}; "
                f"channel {channel} pins {pin.tag}")
        pod = deployment["spec"]["template"]["spec"]
        namespace = deployment["metadata"]["namespace"]
        for volume in pod.get("volumes") or []:
            if "configMap" in volume:
                data = config_maps[(namespace, volume["configMap"]["name"])]["data"]
                assert config_problem(json.loads(data["config.json"])) is None, f"{name}: {data['config.json']}"


def test_the_pinned_repository_is_upstreams() -> None:
    path = SHARED_SCHEMAS / "local-path-provisioner" / HEALTH_SERVER_FROM / "values.yaml"
    if not SHARED_SCHEMAS.is_dir():
        pytest.skip(f"{SHARED_SCHEMAS} is absent: upstream chart files are not available on this machine")
    assert path.is_file(), f"{path} is missing (MANIFEST.md lists it)"
    upstream = yaml.safe_load(path.read_text())["image"]["repository"].removeprefix("docker.io/")
    from installer.releases import all_releases

    assert {r.images["local-path-provisioner"].image for r in all_releases()} == {upstream}


def test_some_render_runs_local_path(renders) -> None:
    assert any(_provisioners(renders.get(p, CHANNELS[-1])) for p in PROFILES)


def test_the_checks_catch_what_upstream_refuses() -> None:
    assert config_problem({"nodePathMap": [{"node": "n", "paths": ["/x"]}], "sharedFileSystemPath": "/y"})
    assert config_problem({"nodePathMap": [], "sharedFileSystemPath": "/y"}) is None
    assert uses_health_server({"readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}})
    assert not uses_health_server({"livenessProbe": {"tcpSocket": {"port": 8080}}})
