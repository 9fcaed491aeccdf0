"""The real run path without a CLI: the preflight names every missing piece and its exact fix.

No Pulumi CLI or plugin exists on this machine; a fake `pulumi` script on PATH stands in for a
CLI of the wrong (or right) version. Nothing here contacts a cluster or the network.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from stackhelpers import CHANNELS

from installer.adapters import pulumi as adapter
from installer.errors import PreflightError


@pytest.fixture
def bare_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH with nothing on it but an empty bin folder; PULUMI_HOME in tmp."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "home"))
    return bin_dir


def _fake_cli(bin_dir: Path, version: str) -> Path:
    cli = bin_dir / "pulumi"
    cli.write_text(f"#!/bin/sh\nif [ \"$1\" = version ]; then echo {version}; exit 0; fi\necho fake >&2; exit 2\n")
    cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
    return cli


def _install_plugin(home: Path, name: str) -> None:
    version = adapter.plugin_version(name)
    exe = home / "plugins" / f"resource-{name}-v{version}" / f"pulumi-resource-{name}"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)


def test_cli_absent_lists_cli_and_plugin_fixes(renders, bare_env: Path) -> None:
    cfg = renders.config("bare-metal", CHANNELS[-1])
    with pytest.raises(PreflightError) as caught:
        adapter.preflight(cfg)
    message, sdk = caught.value.message, adapter.sdk_version()
    print(message)
    assert caught.value.exit_code == 3
    assert "Pulumi CLI not found: no `pulumi` on PATH" in message
    assert f"--version {sdk}" in message and f"pulumi-v{sdk}-linux-x64.tar.gz" in message
    k8s = adapter.plugin_version("kubernetes")
    assert f"provider plugin kubernetes v{k8s} missing" in message
    assert f"pulumi plugin install resource kubernetes v{k8s} --file pulumi-resource-kubernetes-v{k8s}" in message
    assert str(bare_env.parent / "home" / "plugins" / f"resource-kubernetes-v{k8s}") in message
    assert "gcp" not in message, "a bare-metal site must not need the gcp plugin"


def test_cli_of_the_wrong_version(renders, bare_env: Path) -> None:
    _fake_cli(bare_env, "v3.1.0")
    cfg = renders.config("bare-metal", CHANNELS[-1])
    with pytest.raises(PreflightError, match=rf"is v3\.1\.0, kfinstall's SDK needs v{adapter.sdk_version()} or newer"):
        adapter.preflight(cfg)


def test_cli_with_garbage_version(renders, bare_env: Path) -> None:
    _fake_cli(bare_env, "garbage")
    with pytest.raises(PreflightError, match="reports an unreadable version 'garbage'"):
        adapter.preflight(renders.config("bare-metal", CHANNELS[-1]))


def test_gcp_also_needs_the_gcp_plugin(renders, bare_env: Path) -> None:
    _fake_cli(bare_env, f"v{adapter.sdk_version()}")
    _install_plugin(bare_env.parent / "home", "kubernetes")
    with pytest.raises(PreflightError) as caught:
        adapter.preflight(renders.config("gcp", CHANNELS[-1]))
    assert f"provider plugin gcp v{adapter.plugin_version('gcp')} missing" in caught.value.message
    assert "Pulumi CLI" not in caught.value.message and "kubernetes" not in caught.value.message


def test_everything_present_passes(renders, bare_env: Path) -> None:
    from installer.config.load import load

    _fake_cli(bare_env, f"v{adapter.sdk_version()}")
    _install_plugin(bare_env.parent / "home", "kubernetes")
    site = renders.config("bare-metal", CHANNELS[-1]).site
    cfg = load(site, [f"spec.channel={CHANNELS[-1]}"], state_dir=bare_env.parent / "state")
    missing = re.escape(f"no kubeconfig at {cfg.state_dir / 'kubeconfig'}: run `kfinstall up -i {cfg.site}`")
    with pytest.raises(PreflightError, match=missing):
        adapter.preflight(cfg)
    cfg.state_dir.mkdir(parents=True)
    (cfg.state_dir / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    found = adapter.preflight(cfg)
    assert found.cli_version == f"v{adapter.sdk_version()}"
    assert [p.name for p in found.plugins] == ["kubernetes"]


def test_up_fails_with_the_preflight_not_a_file_not_found(renders, bare_env: Path) -> None:
    cfg = renders.config("bare-metal", CHANNELS[-1])
    with pytest.raises(PreflightError):
        adapter.up(cfg)
    assert not (cfg.state_dir / "pulumi").exists(), "nothing may be created before the preflight passes"


def test_missing_secrets_is_named(renders, bare_env: Path, tmp_path: Path) -> None:
    import shutil

    from installer.config.load import load

    site = shutil.copytree(renders.config("bare-metal", CHANNELS[-1]).site, tmp_path / "site")
    (site / "secrets.yml").unlink()
    without = load(site, [f"spec.channel={CHANNELS[-1]}"], need_secrets=False)
    with pytest.raises(PreflightError, match="no pulumi_passphrase: secrets.yml is missing"):
        adapter.preflight(without)


def test_engine_env_keeps_the_passphrase_out_of_os_environ(renders) -> None:
    cfg = renders.config("bare-metal", CHANNELS[-1])
    env = adapter.engine_env(cfg)
    assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"
    assert env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert env["PULUMI_BACKEND_URL"] == (cfg.state_dir / "pulumi").as_uri()
    assert "PULUMI_CONFIG_PASSPHRASE" not in os.environ


def test_only_the_adapter_imports_the_automation_api() -> None:
    repo = Path(__file__).resolve().parents[2]
    offenders = [p for top in ("installer", "stacks") for p in (repo / top).rglob("*.py")
                 if "pulumi.automation" in p.read_text() or "from pulumi import automation" in p.read_text()]
    assert [p.relative_to(repo).as_posix() for p in offenders] == ["installer/adapters/pulumi.py"]
