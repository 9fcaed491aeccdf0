"""End-to-end tier: `kfinstall secrets rotate` on a real cluster (issue 15 item 7).

Preconditions (each checked; when one is missing every test is skipped and the reason printed):
    KFINSTALL_E2E_SITE   a site folder whose platform is up (`kfinstall up` done), secrets.yml 0600;
                         its secrets are rotated by these tests (that is what they check)
    a kubeconfig         STATE/kubeconfig whose API server answers; kubectl on PATH (installer.verify.preflight)
    the Pulumi CLI       with the provider plugins (installer.adapters.pulumi.preflight)
On this project's build machine there is no cluster and no Pulumi CLI, so the tier is skipped here with
that reason; the order, the kept old value and the redaction are unit-tested (tests/unit/test_secrets_rotate.py).

What runs: the crypt key rotates and the hub's configuration then holds both keys, the new one first
(JupyterHub's CryptKeeper: the first key encrypts, every key decrypts: jupyterhub/jupyterhub
jupyterhub/crypto.py); the Grafana admin password rotates and Grafana's Deployment is restarted;
the Pulumi passphrase rotates and the new one opens the stack (a preview changes nothing).
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2esite import site_from_env, skip

pytestmark = pytest.mark.e2e


def _site() -> Path:
    return site_from_env("whose platform is up", "the secrets rotation end to end")


@pytest.fixture(scope="module")
def kubectl() -> Any:
    from installer.adapters import pulumi as adapter
    from installer.config.load import load
    from installer.errors import PreflightError
    from installer.verify import preflight as cluster_preflight

    cfg = load(_site())
    try:
        adapter.preflight(cfg)
        return cluster_preflight(cfg)
    except PreflightError as exc:
        skip(exc.message)


def _rotate(key: str) -> None:
    done = subprocess.run([sys.executable, "-m", "installer", "secrets", "rotate", key, "-i", str(_site()), "--yes"],
                          capture_output=True, text=True, timeout=3600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _hub_crypt_keys(kubectl: Any) -> list[str]:
    """z2jh hands the hub its keys in the Secret `hub`, key hub.config.CryptKeeper.keys, joined with ';'
    (jupyterhub/zero-to-jupyterhub-k8s jupyterhub/templates/hub/secret.yaml and _helpers-passwords.tpl)."""
    data = kubectl.json("get", "secret", "hub", "-n", "jupyterhub")["data"]["hub.config.CryptKeeper.keys"]
    return base64.b64decode(data).decode("ascii").split(";")


def test_crypt_key_rotation_keeps_the_old_key_after_the_new_one(kubectl: Any) -> None:
    from installer.config.load import load

    old = load(_site()).secrets.jupyterhub_crypt_key.get_secret_value()
    _rotate("jupyterhub_crypt_key")
    new = load(_site()).secrets.jupyterhub_crypt_key.get_secret_value()
    keys = _hub_crypt_keys(kubectl)
    assert keys[:2] == [new, old]
    kubectl.run("rollout", "status", "deployment/hub", "-n", "jupyterhub", "--timeout=300s")


def test_grafana_password_rotation_rolls_grafana_out(kubectl: Any) -> None:
    """kubectl rollout restart stamps the pod template with kubectl.kubernetes.io/restartedAt."""

    def restarted_at() -> tuple[str, str | None]:
        deploy = kubectl.json("get", "deploy", "-n", "monitoring", "-l", "app.kubernetes.io/name=grafana")["items"][0]
        annotations = deploy["spec"]["template"]["metadata"].get("annotations") or {}
        return deploy["metadata"]["name"], annotations.get("kubectl.kubernetes.io/restartedAt")

    name, before = restarted_at()
    _rotate("grafana_admin_password")
    assert restarted_at()[1] not in (None, before)
    kubectl.run("rollout", "status", f"deployment/{name}", "-n", "monitoring", "--timeout=300s")


def test_pulumi_passphrase_rotation_opens_the_stack_with_the_new_one(kubectl: Any) -> None:
    from installer.adapters import pulumi as adapter
    from installer.config.load import load

    old = load(_site()).secrets.pulumi_passphrase.get_secret_value()
    _rotate("pulumi_passphrase")
    cfg = load(_site())
    assert cfg.secrets.pulumi_passphrase.get_secret_value() != old
    preview = adapter.preview(cfg)
    changed = {k: v for k, v in preview.changes.items() if k != "same"}
    assert not changed, f"after the passphrase rotation a preview would change: {changed}"
