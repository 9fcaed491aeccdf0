"""Helpers of the stacks tier: sample sites, cached renders and object walkers (imported by tests)."""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.config.load import load
from installer.config.resolved import ClusterConfig
from installer.config.secrets import generate_secrets
from installer.releases import channel_names
from installer.render import Recorded, RenderSummary, evaluate, write

REPO = Path(__file__).resolve().parents[2]
SHARED_SCHEMAS = REPO.parent / "shared" / "schemas"
PROFILES = ["bare-metal", "private-cloud", "private-gpu", "gcp", "lab"]
CHANNELS = channel_names()
LDAP_TEST_PASSWORD = "ldap-bind-password-for-stack-tests"


def sample_site(profile: str, dest: Path) -> Path:
    """A copy of inventories/<profile> with a generated secrets.yml (samples ship none)."""
    source = REPO / "inventories" / profile
    if not (source / "kfinstall.yaml").is_file():
        pytest.skip(f"sample inventory inventories/{profile} is absent")
    site = dest / profile
    if not site.exists():
        shutil.copytree(source, site)
        generate_secrets(site / "secrets.yml")
        data = yaml.safe_load((site / "secrets.yml").read_text())
        data["ldap_bind_password"] = LDAP_TEST_PASSWORD
        (site / "secrets.yml").write_text(yaml.safe_dump(data))
        (site / "secrets.yml").chmod(0o600)
    return site


@dataclass
class Rendered:
    cfg: ClusterConfig
    records: list[Recorded]
    out: Path
    summary: RenderSummary

    def kubernetes_objects(self) -> list[Recorded]:
        return [r for r in self.records if r.is_kubernetes_object]

    def helm(self) -> list[Recorded]:
        return [r for r in self.records if r.typ == "kubernetes:helm.sh/v3:Release"]

    def files(self) -> list[Path]:
        return sorted(p for p in self.out.rglob("*.yaml"))

    def secrets(self) -> list[str]:
        assert self.cfg.secrets is not None
        return self.cfg.secrets.values()


class RenderCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._done: dict[tuple[str, str], Rendered] = {}

    def config(self, profile: str, channel: str, sets: tuple[str, ...] = ()) -> ClusterConfig:
        site = sample_site(profile, self.root / "sites")
        return load(site, [f"spec.channel={channel}", *sets])

    def get(self, profile: str, channel: str) -> Rendered:
        key = (profile, channel)
        if key not in self._done:
            cfg = self.config(profile, channel)
            out = self.root / "out" / f"{profile}-{channel}"
            records = evaluate(cfg)
            self._done[key] = Rendered(cfg, records, out, write(cfg, records, out))
        return self._done[key]


def helm_merge(base: Any, override: Any) -> Any:
    """Helm's coalescing of user values over chart defaults: maps merge, a null deletes, the rest replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = helm_merge(base.get(key), value)
        return out
    return copy.deepcopy(override)


def docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container and init container of a workload object (Deployment, DaemonSet, Pod, ...)."""
    spec = obj.get("spec") or {}
    pod = spec.get("template", {}).get("spec") if "template" in spec else (spec if obj.get("kind") == "Pod" else None)
    if not pod:
        return []
    return list(pod.get("containers") or []) + list(pod.get("initContainers") or [])
