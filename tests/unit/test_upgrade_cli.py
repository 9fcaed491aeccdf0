"""`kfinstall upgrade`: dry-run routes in text and JSON for sites built in tmp dirs, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from installer.cli import cli
from installer.errors import ConfigError, PreflightError
from installer.releases import load_release
from installer.state import State, write_state
from installer.upgrade.route import release_changes


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["upgrade", *args])


def _state(site: Path, channel: str, kubernetes: str) -> None:
    write_state(site / ".kfinstall" / "test", State(cluster="test", installed_channel=channel,
                                                    kubernetes_version=kubernetes))


def test_dry_run_text_prints_every_hop_with_its_parts(make_site) -> None:
    site = make_site({"spec.channel": "1.11"}, secrets=False)
    result = _invoke("-i", str(site), "--from", "1.9", "--to", "1.11", "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("cluster test: channel 1.9, Kubernetes 1.29 (from --from, Kubernetes assumed at the channel "
                        "default 1.29)")
    assert lines[1] == "route: 1.9@1.29 -> k8s 1.30 -> k8s 1.31 -> 1.10 -> k8s 1.32 -> 1.11"
    hops = [line for line in lines if line.startswith("hop ")]
    assert hops == [
        "hop 1  kubernetes  kubernetes 1.29 -> 1.30 (channel 1.9)",
        "hop 2  kubernetes  kubernetes 1.30 -> 1.31 (channel 1.9)",
        "hop 3  platform    platform 1.9 -> 1.10 (kubernetes 1.31)",
        "hop 4  kubernetes  kubernetes 1.31 -> 1.32 (channel 1.10)",
        "hop 5  platform    platform 1.10 -> 1.11 (kubernetes 1.32)",
    ]
    assert "    change: chart/jupyterhub 3.3.8 -> 4.2.0" in lines
    assert any(line.startswith("    migration: z2jh-values-3-to-4: ") for line in lines)
    backups = "    backups: etcd-snapshot, pki-kubeadm-config, jupyterhub-db, pulumi-stack, resolved-config"
    assert lines.count(backups) == 5
    # Every change of the channels is either carried out or skipped with its reason (installer.upgrade.site:
    # the GPU stack is off here); the pause counts what is carried out.
    hop3 = lines[lines.index("hop 3  platform    platform 1.9 -> 1.10 (kubernetes 1.31)"):
                 lines.index("hop 4  kubernetes  kubernetes 1.31 -> 1.32 (channel 1.10)")]
    changes = sum(1 for line in hop3 if line.startswith("    change: "))
    skipped = sum(1 for line in hop3 if line.startswith("    skipped: ") and "migration " not in line)
    assert changes + skipped == len(release_changes(load_release("1.9"), load_release("1.10"))) and skipped
    assert ("    skipped: chart/gpu-operator v24.6.2 -> v25.3.4: the site does not deploy this chart (its component "
            "is turned off, or another choice, in kfinstall.yaml)") in hop3
    assert f"    pause: before hop 3: {changes} component change(s) on channel 1.10" in lines
    assert lines[-2] == ("note: Kubernetes stays at 1.32: channel 1.11's default minor 1.34 never triggers an upgrade; "
                         "set spec.kubernetes.version to move on")
    assert lines[-1] == "nothing was changed (--dry-run)"


def test_dry_run_json_is_the_route_document(make_site) -> None:
    site = make_site({"spec.channel": "26.03.1", "spec.kubernetes.version": "1.36"}, secrets=False)
    _state(site, "26.03", "1.34.2")
    result = _invoke("-i", str(site), "--to", "26.03.1", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["installed"] == {"channel": "26.03", "kubernetes": "1.34.2", "source": "state.json"}
    assert doc["dryRun"] is True and doc["cluster"] == "test"
    route = doc["route"]
    assert route["summary"] == "26.03@1.34 -> 26.03.1 -> k8s 1.35 -> k8s 1.36"
    assert route["kubernetesExplicit"] is True
    assert [(h["kind"], h["kubernetes"]["from"], h["kubernetes"]["to"]) for h in route["hops"]] == [
        ("platform", "1.34", "1.34"), ("kubernetes", "1.34", "1.35"), ("kubernetes", "1.35", "1.36")]
    assert route["hops"][0]["migrations"] == ["training-operator-standalone", "pod-security-labels"]
    assert doc["notes"] == []


def test_a_defaulted_version_in_kfinstall_yaml_does_not_move_kubernetes(make_site) -> None:
    site = make_site({"spec.channel": "26.03.1"}, secrets=False)
    _state(site, "26.03", "1.34")
    doc = json.loads(_invoke("-i", str(site), "--to", "26.03.1", "--dry-run", "-o", "json").output)
    assert doc["route"]["summary"] == "26.03@1.34 -> 26.03.1"
    assert "default minor 1.35 never triggers an upgrade" in doc["notes"][0]


def test_a_config_for_another_channel_is_noted_and_gets_no_kubernetes_target(make_site) -> None:
    site = make_site({"spec.channel": "1.9", "spec.kubernetes.version": "1.31"}, secrets=False)
    doc = json.loads(_invoke("-i", str(site), "--from", "1.9", "--kubernetes-version", "1.30", "--to", "1.10",
                             "--dry-run", "-o", "json").output)
    assert doc["installed"]["source"] == "--from and --kubernetes-version"
    assert doc["route"]["summary"] == "1.9@1.30 -> k8s 1.31 -> 1.10"
    assert doc["notes"][0].startswith('kfinstall.yaml says channel 1.9: set spec.channel: "1.10"')


@pytest.mark.parametrize(("source", "target", "start"), [
    ("26.03", "1.11", "refusing to downgrade from channel 26.03 to 1.11"),
    ("1.10", "1.10", "already on channel 1.10 with Kubernetes 1.32; same-channel upgrade refused"),
])
def test_refused_routes_exit_3_with_the_allowed_route(make_site, source: str, target: str, start: str) -> None:
    site = make_site({"spec.channel": target}, secrets=False)
    _state(site, source, "1.34" if source == "26.03" else "1.32")
    result = _invoke("-i", str(site), "--to", target, "--dry-run")
    assert isinstance(result.exception, PreflightError) and result.exception.exit_code == 3
    assert result.exception.message.startswith(start)
    assert "Allowed route from " in result.exception.message


def test_refused_route_through_main_prints_the_message_and_exits_3(make_site, monkeypatch, capsys) -> None:
    from installer.cli import main

    site = make_site({"spec.channel": "1.9"}, secrets=False)
    _state(site, "1.10", "1.31")
    monkeypatch.setattr("sys.argv", ["kfinstall", "upgrade", "-i", str(site), "--to", "1.9", "--dry-run"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 3
    assert "error: refusing to downgrade from channel 1.10 to 1.9" in capsys.readouterr().err


def test_without_state_or_from_there_is_nothing_to_plan(make_site) -> None:
    site = make_site(secrets=False)
    result = _invoke("-i", str(site), "--to", "26.03.1", "--dry-run")
    assert isinstance(result.exception, ConfigError)
    assert "pass --from CHANNEL" in result.exception.message


def test_from_must_agree_with_state(make_site) -> None:
    site = make_site(secrets=False)
    _state(site, "1.11", "1.34")
    result = _invoke("-i", str(site), "--from", "1.10", "--to", "26.03", "--dry-run")
    assert isinstance(result.exception, ConfigError)
    assert "--from 1.10 disagrees with" in result.exception.message


def test_a_real_upgrade_needs_state_not_from(make_site) -> None:
    site = make_site()
    result = _invoke("-i", str(site), "--from", "1.11", "--to", "26.03", "--yes")
    assert isinstance(result.exception, PreflightError)
    assert "are for planning (--dry-run)" in result.exception.message


def test_a_real_upgrade_needs_kfinstall_yaml_on_the_target_channel(make_site) -> None:
    site = make_site({"spec.channel": "1.11"})
    _state(site, "1.11", "1.34")
    result = _invoke("-i", str(site), "--to", "26.03", "--yes")
    assert isinstance(result.exception, ConfigError)
    assert "so that a later `kfinstall up` keeps the upgraded platform" in result.exception.message


def test_a_real_upgrade_without_a_cluster_refuses_clearly(make_site, monkeypatch) -> None:
    monkeypatch.setattr("installer.cli.upgrade.tool_problems", lambda cfg, route: [])  # Pulumi is not here
    site = make_site({"spec.channel": "26.03.1"})
    _state(site, "26.03", "1.34")
    result = _invoke("-i", str(site), "--to", "26.03.1", "--yes")
    assert isinstance(result.exception, PreflightError)
    assert result.exception.message.startswith("no cluster reachable: ")
    runs = list((site / ".kfinstall" / "test" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "route.json").is_file()


def test_off_a_terminal_an_upgrade_needs_yes(make_site) -> None:
    site = make_site({"spec.channel": "26.03.1"})
    _state(site, "26.03", "1.34")
    result = _invoke("-i", str(site), "--to", "26.03.1")
    assert isinstance(result.exception, PreflightError)
    assert result.exception.message.startswith("not on a terminal and --yes not given: nothing was changed")
    assert not (site / ".kfinstall" / "test" / "runs").exists()


# Every ordered pair through the CLI (installed at the source channel's lowest minor, Kubernetes
# version left to the channel): the route summary, or the start of the refusal.
SUMMARIES = {
    ("1.9", "1.10"): "1.9@1.29 -> k8s 1.30 -> k8s 1.31 -> 1.10",
    ("1.9", "1.11"): "1.9@1.29 -> k8s 1.30 -> k8s 1.31 -> 1.10 -> k8s 1.32 -> 1.11",
    ("1.9", "26.03"): "1.9@1.29 -> k8s 1.30 -> k8s 1.31 -> 1.10 -> k8s 1.32 -> 1.11 -> k8s 1.33 -> k8s 1.34 -> 26.03",
    ("1.9", "26.03.1"): "1.9@1.29 -> k8s 1.30 -> k8s 1.31 -> 1.10 -> k8s 1.32 -> 1.11 -> k8s 1.33 -> k8s 1.34 -> 26.03 "
                        "-> 26.03.1",
    ("1.10", "1.11"): "1.10@1.31 -> k8s 1.32 -> 1.11",
    ("1.10", "26.03"): "1.10@1.31 -> k8s 1.32 -> 1.11 -> k8s 1.33 -> k8s 1.34 -> 26.03",
    ("1.10", "26.03.1"): "1.10@1.31 -> k8s 1.32 -> 1.11 -> k8s 1.33 -> k8s 1.34 -> 26.03 -> 26.03.1",
    ("1.11", "26.03"): "1.11@1.32 -> k8s 1.33 -> k8s 1.34 -> 26.03",
    ("1.11", "26.03.1"): "1.11@1.32 -> k8s 1.33 -> k8s 1.34 -> 26.03 -> 26.03.1",
    ("26.03", "26.03.1"): "26.03@1.34 -> 26.03.1",
}
LOWEST = {"1.9": "1.29", "1.10": "1.31", "1.11": "1.32", "26.03": "1.34", "26.03.1": "1.34"}
PAIRS = [(a, b) for a in LOWEST for b in LOWEST]


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_dry_run_for_every_pair(make_site, source: str, target: str) -> None:
    site = make_site({"spec.channel": target}, secrets=False)
    _state(site, source, LOWEST[source])
    result = _invoke("-i", str(site), "--to", target, "--dry-run", "-o", "json")
    if (source, target) in SUMMARIES:
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["route"]["summary"] == SUMMARIES[(source, target)]
        return
    assert isinstance(result.exception, PreflightError) and result.exception.exit_code == 3
    expected = "already on channel" if source == target else f"refusing to downgrade from channel {source}"
    assert result.exception.message.startswith(expected)
