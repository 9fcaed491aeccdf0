"""`kfinstall render`: the files it writes, their determinism, and the command on every sample site."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from stackhelpers import CHANNELS, PROFILES, REPO, docs

from installer.cli.render import render as render_command
from installer.render import render


@pytest.mark.parametrize("profile", PROFILES)
def test_render_command_on_every_sample_inventory(profile: str, tmp_path: Path) -> None:
    # The samples ship without secrets.yml: render must still work, with placeholders.
    site = shutil.copytree(REPO / "inventories" / profile, tmp_path / "site")
    result = CliRunner().invoke(render_command, ["-i", str(site), "--out", str(tmp_path / "out"), "--output", "json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["total"] == sum(summary["objects"].values()) > 20
    assert {"storage", "training", "jupyterhub"} <= set(summary["objects"])
    assert (tmp_path / "out" / "helm" / "jupyterhub.yaml").is_file()
    if profile == "gcp":
        assert summary["cloud"] == len(list((tmp_path / "out" / "cloud").glob("*.yaml"))) >= 4


def test_render_text_output(tmp_path: Path) -> None:
    site = shutil.copytree(REPO / "inventories" / "private-gpu", tmp_path / "site")
    args = ["-i", str(site), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(render_command, args, catch_exceptions=False)
    assert result.exit_code == 0
    assert "training: 11 object(s)" in result.output
    assert "Kubernetes objects written to" in result.output


@pytest.mark.parametrize("profile", PROFILES)
def test_one_object_per_file_and_helm_documents(renders, profile: str) -> None:
    rendered = renders.get(profile, CHANNELS[-1])
    objects = [p for p in rendered.files() if p.parent.name not in {"helm", "cloud"}]
    assert len(objects) == rendered.summary.total
    for path in objects:
        (doc,) = docs(path)
        assert {"apiVersion", "kind", "metadata"} <= set(doc)
        assert path.parent.name == doc["metadata"]["labels"]["kfinstall.io/component"]
    for path in (rendered.out / "helm").glob("*.yaml"):
        (doc,) = docs(path)
        pin = rendered.cfg.release.charts[doc["release"]]
        assert (doc["chart"], doc["repository"], doc["version"]) == (pin.chart, pin.repository, pin.version)
        assert isinstance(doc["values"], dict) and doc["values"]


def test_helm_values_show_placeholders_for_secrets(renders) -> None:
    rendered = renders.get("lab", CHANNELS[-1])
    values = yaml.safe_load((rendered.out / "helm" / "jupyterhub.yaml").read_text())["values"]
    assert values["proxy"]["secretToken"] == "<secret>"
    assert values["hub"]["cookieSecret"] == "<secret>"
    assert values["hub"]["config"]["DummyAuthenticator"]["password"] == "<secret>"
    secret = yaml.safe_load((rendered.out / "monitoring" / "06-secret-monitoring-grafana-admin.yaml").read_text())
    assert secret["stringData"]["admin-password"] == rendered.cfg.secrets.grafana_admin_password.get_secret_value()


def test_render_is_deterministic_and_replaces_stale_files(renders, tmp_path: Path) -> None:
    cfg = renders.config("private-gpu", CHANNELS[0])

    def snapshot(out: Path) -> dict[str, str]:
        return {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*.yaml"))}

    # Stale files are ones render wrote itself (another site's objects); a file render did not
    # write is never its to delete (tests/unit/test_render_safety.py).
    render(renders.config("gcp", CHANNELS[-1]), tmp_path / "a")
    assert (tmp_path / "a" / "cloud").is_dir()
    render(cfg, tmp_path / "a")
    render(cfg, tmp_path / "b")
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert not (tmp_path / "a" / "cloud").exists()


def test_render_refuses_an_invalid_site(tmp_path: Path) -> None:
    from installer.errors import KfinstallError

    site = shutil.copytree(REPO / "inventories" / "bare-metal", tmp_path / "site")
    with pytest.raises(KfinstallError) as caught:
        args = ["-i", str(site), "--out", str(tmp_path / "out"), "--set", "spec.channel=no-such-channel"]
        CliRunner().invoke(render_command, args, catch_exceptions=False)
    assert caught.value.exit_code == 2
