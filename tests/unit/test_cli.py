"""The CLI through click's CliRunner: help for every command, init, plan, channels, profiles."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from installer.cli import COMMANDS, cli
from installer.profiles import profile_names
from installer.releases import channel_names

REPO = Path(__file__).resolve().parents[2]
INVENTORIES = REPO / "inventories"


def _subcommands(group: click.Group) -> dict[str, click.Command]:
    """A group's verbs as click finds them (list_commands, get_command): installer.cli loads its verbs lazily."""
    ctx = click.Context(group)
    found = {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}
    return {name: command for name, command in found.items() if command is not None}


def _all_command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in sorted(_subcommands(group).items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += _all_command_paths(command, (*prefix, name))
    return paths


ALL_COMMANDS = _all_command_paths(cli)


def test_the_explicit_list_is_registered() -> None:
    found = _subcommands(cli)
    assert list(found) == list(COMMANDS), "kfinstall --help lists the verbs in the table's order"
    for name, command in found.items():
        assert command.name == name


def _modules_loaded_by(code: str) -> set[str]:
    """installer.cli.* modules imported after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nsys.stderr.write(' '.join(m for m in sys.modules if m.startswith('installer.cli.')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    return set(done.stderr.split())


def test_verbs_are_imported_only_when_used() -> None:
    """`kfinstall plan` imports plan's module, not upgrade's, backup's, lab's... (issue 13 benchmark)."""
    assert _modules_loaded_by("import installer.cli") == {"installer.cli.common"}
    ran = "from installer.cli import cli\ncli.main(['plan', '--help'], standalone_mode=False)"
    assert _modules_loaded_by(ran) == {"installer.cli.common", "installer.cli.plan"}


def test_every_site_verb_takes_the_vault_password_file() -> None:
    """Each verb gets --vault-password-file as it is loaded, as when every verb was imported at start."""
    site_verbs = 0
    for path in ALL_COMMANDS:
        command: click.Command = cli
        for name in path:
            command = _subcommands(command)[name]  # type: ignore[arg-type]
        if any(param.name == "inventory" for param in command.params):
            site_verbs += 1
            assert any("--vault-password-file" in getattr(p, "opts", ()) for p in command.params), path
    assert site_verbs >= 10


@pytest.mark.parametrize("path", [(), *ALL_COMMANDS], ids=lambda p: " ".join(p) or "kfinstall")
def test_help_of_every_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command: click.Command = cli
    for name in path:
        command = _subcommands(command)[name]  # type: ignore[arg-type]
    assert command.help, f"{path} has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in {"help", "version"}:
            assert param.help, f"{path} option {param.opts} has no help"


def test_init_creates_a_site_with_private_secrets(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = CliRunner().invoke(cli, ["init", "--profile", "private-gpu", str(site)])
    assert result.exit_code == 0, result.output
    assert (site / "hosts.yml").is_file() and (site / "kfinstall.yaml").is_file()
    assert (site / "group_vars" / "all.yml").is_file()
    secrets_file = site / "secrets.yml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    values = yaml.safe_load(secrets_file.read_text())
    generated = {k: v for k, v in values.items() if k != "ldap_bind_password"}
    assert all(len(v) >= 32 for v in generated.values()), "secrets must be long random values"
    assert not any(v in result.output for v in generated.values()), "a secret value was printed"


def test_init_twice_keeps_files_and_secrets(tmp_path: Path) -> None:
    site = tmp_path / "site"
    CliRunner().invoke(cli, ["init", "--profile", "lab", str(site)])
    (site / "kfinstall.yaml").write_text((site / "kfinstall.yaml").read_text() + "# my edit\n")
    before = (site / "secrets.yml").read_text()
    result = CliRunner().invoke(cli, ["init", "--profile", "lab", str(site)])
    assert result.exit_code == 0
    assert "kept" in result.output and "generated: none (all present)" in result.output
    assert (site / "secrets.yml").read_text() == before
    assert (site / "kfinstall.yaml").read_text().endswith("# my edit\n")


def test_two_inits_generate_different_secrets(tmp_path: Path) -> None:
    for name in ("a", "b"):
        CliRunner().invoke(cli, ["init", "--profile", "lab", str(tmp_path / name)])
    a = yaml.safe_load((tmp_path / "a" / "secrets.yml").read_text())
    b = yaml.safe_load((tmp_path / "b" / "secrets.yml").read_text())
    assert all(a[k] != b[k] for k in a if k != "ldap_bind_password")


def test_initialised_lab_site_validates_with_secrets(tmp_path: Path) -> None:
    site = tmp_path / "lab"
    CliRunner().invoke(cli, ["init", "--profile", "lab", str(site)])
    result = CliRunner().invoke(cli, ["inventory", "validate", "-i", str(site)])
    assert result.exit_code == 0, result.output
    assert "valid (3 hosts, profile lab, channel" in result.output


@pytest.mark.parametrize("profile", profile_names())
def test_plan_text_on_every_sample(profile: str) -> None:
    result = CliRunner().invoke(cli, ["plan", "-i", str(INVENTORIES / profile)])
    assert result.exit_code == 0, result.output
    assert f"profile {profile}" in result.output
    assert "1. preflight" in result.output and "platform" in result.output


PLAN_KEYS = ["apiVersion", "cluster", "profile", "channel", "kubeflowRef", "kubernetesVersion",
             "kubernetesVersionDefaulted", "hosts", "roles", "phases", "components", "namespaces", "storage", "auth",
             "warnings", "diff"]


def test_plan_json_is_stable() -> None:
    result = CliRunner().invoke(cli, ["plan", "-i", str(INVENTORIES / "private-gpu"), "--output", "json"])
    assert result.exit_code == 0
    plan = json.loads(result.stdout)
    assert list(plan) == PLAN_KEYS
    assert plan["apiVersion"] == "kfinstall.io/plan/v1"
    assert [p["name"] for p in plan["phases"]] == ["preflight", "hosts", "infrastructure", "platform", "verify"]
    assert plan["roles"]["gpu"] == ["gpu1", "gpu2"]
    by_name = {c["name"]: c for c in plan["components"]}
    assert by_name["jupyterhub"]["version"] == "4.4.0" and by_name["jupyterhub"]["kind"] == "chart"
    assert by_name["nvidia-driver"]["version"] == "580"
    assert by_name["metrics-server"]["kind"] == "chart"  # the serving autoscaler's metrics API
    assert set(plan["components"][0]) == {"name", "kind", "version", "source", "phase"}


def test_plan_versions_follow_the_channel_set_on_the_command_line() -> None:
    result = CliRunner().invoke(cli, ["plan", "-i", str(INVENTORIES / "private-gpu"), "-o", "json",
                                      "--set", "spec.channel=1.10"])
    plan = json.loads(result.stdout)
    by_name = {c["name"]: c for c in plan["components"]}
    assert plan["channel"] == "1.10" and by_name["jupyterhub"]["version"] == "4.2.0"
    assert plan["kubernetesVersion"] == "1.32"


def test_plan_of_gcp_skips_the_host_phase() -> None:
    plan = json.loads(CliRunner().invoke(cli, ["plan", "-i", str(INVENTORIES / "gcp"), "-o", "json"]).stdout)
    phases = {p["name"]: p for p in plan["phases"]}
    assert phases["hosts"]["runs"] is False and phases["infrastructure"]["runs"] is True
    assert not any(c["name"] == "gpu-operator" for c in plan["components"]), "GKE manages the GPU stack"
    assert not any(c["name"] == "metrics-server" for c in plan["components"]), "GKE runs its own"


def test_plan_bad_input_exits_2(make_site) -> None:
    site = make_site(cluster={"spec.gpu.enabled": "maybe"})
    result = CliRunner().invoke(cli, ["plan", "-i", str(site)])
    assert result.exit_code != 0 and result.exception is not None
    from installer.config.problems import InvalidConfig
    assert isinstance(result.exception, InvalidConfig) and result.exception.exit_code == 2


def test_channels_lists_every_channel() -> None:
    result = CliRunner().invoke(cli, ["channels", "-o", "json"])
    data = json.loads(result.stdout)
    assert [c["channel"] for c in data] == channel_names()
    text = CliRunner().invoke(cli, ["channels"]).output
    for channel in channel_names():
        assert channel in text


@pytest.mark.parametrize("profile", profile_names())
def test_profile_show(profile: str) -> None:
    result = CliRunner().invoke(cli, ["profile", "show", profile, "-o", "json"])
    data = json.loads(result.stdout)
    assert data["profile"] == profile
    assert data["spec"]["profile"] == profile


def test_profile_show_applies_the_overlay() -> None:
    lab = json.loads(CliRunner().invoke(cli, ["profile", "show", "lab", "-o", "json"]).stdout)
    gpu = json.loads(CliRunner().invoke(cli, ["profile", "show", "private-gpu", "-o", "json"]).stdout)
    assert lab["spec"]["auth"]["type"] == "dummy" and lab["spec"]["storage"]["nfs"]["implementation"] == "ganesha"
    assert gpu["spec"]["gpu"]["enabled"] is True and gpu["spec"]["storage"]["gluster"]["enabled"] is True


def test_status_without_state(make_site) -> None:
    result = CliRunner().invoke(cli, ["status", "-i", str(make_site()), "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] is None


def test_down_refuses_without_purge_data(make_site) -> None:
    result = CliRunner().invoke(cli, ["down", "-i", str(make_site()), "--yes"])
    assert result.exception is not None and result.exception.exit_code == 3
    assert "pass --purge-data to confirm" in str(result.exception)


def test_down_without_pulumi_cli_says_how_to_fix(make_site, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    result = CliRunner().invoke(cli, ["down", "-i", str(make_site()), "--purge-data", "--yes"])
    assert result.exception is not None and result.exception.exit_code == 3
    assert "the platform phase cannot run" in str(result.exception)
    assert "pulumi" in str(result.exception).lower()


def test_up_platform_without_pulumi_cli_is_refused_before_any_host(make_site, monkeypatch) -> None:
    """Preflight checks the platform's tools first: no SSH connection is attempted (hosts are unroutable)."""
    monkeypatch.setenv("PATH", "/nonexistent")
    site = make_site()
    result = CliRunner().invoke(cli, ["up", "-i", str(site), "--yes", "-o", "json"])
    assert result.exception is not None and result.exception.exit_code == 3, result.output
    assert "the platform phase cannot run" in str(result.exception)
    run = next((site / ".kfinstall" / "test" / "runs").iterdir())
    # preflight.yml runs alone (ansible-preflight/) or as the first play of the host phase's run (ansible/)
    assert not (run / "ansible-preflight").exists() and not (run / "ansible").exists(), \
        "preflight reached for the hosts before refusing"
