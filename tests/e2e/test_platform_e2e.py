"""End-to-end tier: the platform phase and `verify --demo` against a real cluster.

Runs only when KFINSTALL_E2E_SITE names a site folder (kfinstall.yaml, hosts.yml, secrets.yml)
whose cluster is up and reachable (STATE/kubeconfig or $KUBECONFIG), and the Pulumi CLI with its
provider plugins is installed. Otherwise every test is skipped with the exact reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
SITE_ENV = "KFINSTALL_E2E_SITE"


def _site() -> Path:
    value = os.environ.get(SITE_ENV)
    if not value:
        reason = f"no cluster: set {SITE_ENV} to a site folder whose cluster is up to run the end-to-end tier"
        print(reason)
        pytest.skip(reason)
    return Path(value)


@pytest.fixture(scope="module")
def cfg():
    from installer.config.load import load

    return load(_site())


@pytest.fixture(scope="module")
def ready(cfg):
    """Both preflights pass: the Pulumi CLI/plugins and a reachable API server."""
    from installer.adapters import pulumi as adapter
    from installer.errors import PreflightError
    from installer.verify import preflight as cluster_preflight

    for check in (adapter.preflight, cluster_preflight):
        try:
            check(cfg)
        except PreflightError as exc:
            print(exc.message)
            pytest.skip(exc.message)
    return cfg


def test_platform_up_converges(ready) -> None:
    from installer.adapters import pulumi as adapter

    first = adapter.up(ready)
    assert first.result == "succeeded"
    again = adapter.preview(ready)
    changed = {k: v for k, v in again.changes.items() if k != "same"}
    assert not changed, f"a second run would still change: {changed}"


def test_verify_demo_passes(ready) -> None:
    from installer.verify import verify

    report = verify(ready, demo=True)
    assert report.ok, report.as_dict()
    names = {c.name for c in report.checks if c.status == "ok"}
    assert {"nodes-ready", "default-storage-class", "tfjob-completes", "serving-answers"} <= names
