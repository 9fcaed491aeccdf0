"""`kfinstall verify` without a cluster: it stops before any check and names what is missing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from stackhelpers import CHANNELS

from installer.cli.verify import verify as verify_command
from installer.errors import PreflightError
from installer.verify import preflight


def test_no_kubectl_and_no_kubeconfig(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    cfg = renders.config("bare-metal", CHANNELS[-1])
    with pytest.raises(PreflightError) as caught:
        preflight(cfg)
    message = caught.value.message
    assert caught.value.exit_code == 3
    assert "kubectl not found on PATH" in message
    assert f"no kubeconfig at {cfg.state_dir / 'kubeconfig'}" in message


def test_gcp_names_the_get_credentials_command(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    cfg = renders.config("gcp", CHANNELS[-1])
    with pytest.raises(PreflightError, match=f"gcloud container clusters get-credentials {cfg.name}"):
        preflight(cfg)


def test_unreachable_api_server(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kubectl = tmp_path / "kubectl"
    said = "Unable to connect to the server: dial tcp 192.0.2.1:6443: i/o timeout"
    kubectl.write_text(f"#!/bin/sh\necho '{said}' >&2\nexit 1\n")
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(config))
    with pytest.raises(PreflightError, match="does not answer .*i/o timeout"):
        preflight(renders.config("bare-metal", CHANNELS[-1]))


def test_verify_command_exits_3_through_the_cli(renders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    site = renders.config("bare-metal", CHANNELS[-1]).site
    with pytest.raises(PreflightError):
        CliRunner().invoke(verify_command, ["-i", str(site), "--demo", "--output", "json"], catch_exceptions=False)
