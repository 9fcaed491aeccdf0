"""Backups and restore, for real with local files: checksums, round trip, tampering refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from installer.cli.backup import backup, restore
from installer.config.load import load
from installer.errors import PhaseFailed, PreflightError
from installer.upgrade.backup import hub_db_backup, hub_db_skip_reason, sha256, take_backup
from installer.upgrade.manifest import MANIFEST, site_signing_key
from installer.upgrade.restore import check_backup


def _pulumi_state(state: Path, text: str = '{"version": 3, "checkpoint": {"stack": "test"}}') -> Path:
    stacks = state / "pulumi" / ".pulumi" / "stacks" / "kfinstall"
    stacks.mkdir(parents=True, exist_ok=True)
    (stacks / "test.json").write_text(text)
    (state / "pulumi" / ".pulumi" / "meta.yaml").write_text("version: 1\n")
    return stacks / "test.json"


def _backup_via_cli(site: Path) -> dict:
    result = CliRunner().invoke(backup, ["-i", str(site), "-o", "json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads(result.output)


def test_backup_writes_every_file_with_its_checksum(make_site) -> None:
    site = make_site()
    cfg = load(site, need_secrets=False)
    _pulumi_state(cfg.state_dir)
    result = take_backup(cfg, cfg.state_dir / "b1")
    paths = [f["path"] for f in result.files]
    assert paths == ["config/config.resolved.json", "config/hosts.yml", "config/kfinstall.yaml",
                     "pulumi/backend.tar.gz", "pulumi/test.json"]
    manifest = json.loads((result.folder / MANIFEST).read_text())
    for entry in manifest["files"]:
        assert entry["sha256"] == sha256(result.folder / entry["path"])
    assert manifest["cluster"] == "test" and manifest["channel"] == "26.03"
    assert manifest["skipped"] == {"etcd-snapshot": "not requested", "pki-kubeadm-config": "not requested",
                                   "jupyterhub-db": "not requested"}
    secrets = cfg.secrets.values() if cfg.secrets else []
    resolved = (result.folder / "config" / "config.resolved.json").read_text()
    assert secrets and not any(value in resolved for value in secrets)
    assert not (result.folder / "config" / "secrets.yml").exists()


def test_group_vars_are_backed_up_and_restored_in_place(make_site) -> None:
    site = make_site()
    (site / "group_vars" / "all").mkdir(parents=True)
    (site / "group_vars" / "all" / "site.yml").write_text("ntp_server: time.example.com\n")
    folder = Path(_backup_via_cli(site)["folder"])
    assert (folder / "config" / "group_vars" / "all" / "site.yml").is_file()
    (site / "group_vars" / "all" / "site.yml").write_text("broken\n")
    result = CliRunner().invoke(restore, [str(folder), "-i", str(site), "--yes"])
    assert result.exit_code == 0, result.output
    assert (site / "group_vars" / "all" / "site.yml").read_text() == "ntp_server: time.example.com\n"
    assert not (site / "site.yml").exists()


def test_backup_without_pulumi_state_says_so(make_site) -> None:
    site = make_site()
    cfg = load(site, need_secrets=False)
    result = take_backup(cfg, cfg.state_dir / "b1")
    assert result.skipped["pulumi-stack"].startswith("no Pulumi state under ")


def test_backup_and_restore_round_trip(make_site) -> None:
    site = make_site()
    state = site / ".kfinstall" / "test"
    checkpoint = _pulumi_state(state, '{"version": 3, "original": true}')
    original_config = (site / "kfinstall.yaml").read_text()
    data = _backup_via_cli(site)
    folder = Path(data["folder"])
    assert folder.parent.parent == state / "runs" and folder.name == "backup"

    checkpoint.write_text('{"version": 3, "broken": true}')
    (site / "kfinstall.yaml").write_text("broken: [\n")
    result = CliRunner().invoke(restore, [str(folder), "-i", str(site), "--yes", "-o", "json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.output)
    assert (site / "kfinstall.yaml").read_text() == original_config
    assert json.loads(checkpoint.read_text()) == {"version": 3, "original": True}
    assert len(report["movedAside"]) == 3  # kfinstall.yaml, hosts.yml, the pulumi folder
    aside = [Path(p) for p in report["movedAside"]]
    assert any(p.name.startswith("kfinstall.yaml.before-restore-") and p.read_text() == "broken: [\n" for p in aside)
    load(site, need_secrets=False)  # the restored site validates again


def test_restore_refuses_a_tampered_backup_and_changes_nothing(make_site) -> None:
    site = make_site()
    _pulumi_state(site / ".kfinstall" / "test")
    folder = Path(_backup_via_cli(site)["folder"])
    (folder / "config" / "kfinstall.yaml").write_text("apiVersion: evil\n")
    before = (site / "kfinstall.yaml").read_text()
    result = CliRunner().invoke(restore, [str(folder), "-i", str(site), "--yes"])
    assert isinstance(result.exception, PreflightError) and result.exception.exit_code == 3
    assert "the backup was tampered with or is incomplete" in result.exception.message
    assert "config/kfinstall.yaml: checksum mismatch (the file changed after the backup)" in result.exception.message
    assert (site / "kfinstall.yaml").read_text() == before


def test_restore_refuses_a_folder_without_manifest(make_site, tmp_path: Path) -> None:
    site = make_site()
    with pytest.raises(PreflightError, match="is not a kfinstall backup: manifest.json is missing"):
        check_backup(tmp_path, site, site_signing_key(site))


def test_restore_off_a_terminal_needs_yes(make_site) -> None:
    site = make_site()
    folder = Path(_backup_via_cli(site)["folder"])
    result = CliRunner().invoke(restore, [str(folder), "-i", str(site)])
    assert isinstance(result.exception, PreflightError)
    assert "not confirmed; nothing was restored" in result.exception.message


def test_backup_with_cluster_fails_clearly_without_a_cluster(make_site) -> None:
    site = make_site()
    result = CliRunner().invoke(backup, ["-i", str(site), "--cluster"])
    assert isinstance(result.exception, PreflightError)
    assert result.exception.message.startswith("no cluster reachable: ")


def test_hub_db_backup_copies_the_sqlite_file_from_the_hub_pod(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def run(args: list[str]) -> str:
        calls.append(args)
        return "pod/hub-7d9f\n" if args[0] == "get" else ""

    hub_db_backup(run)(tmp_path / "cluster")
    assert calls[1] == ["cp", "jupyterhub/hub-7d9f:/srv/jupyterhub/jupyterhub.sqlite",
                        str(tmp_path / "cluster" / "jupyterhub.sqlite")]
    with pytest.raises(PhaseFailed, match="no hub pod in namespace jupyterhub"):
        hub_db_backup(lambda args: "")(tmp_path / "c2")


def test_an_external_hub_database_is_skipped_with_the_reason(make_site) -> None:
    site = make_site({"spec.components.jupyterhub.values": {"hub": {"db": {"type": "postgres"}}}})
    reason = hub_db_skip_reason(load(site, need_secrets=False))
    assert reason == ("hub.db.type is postgres: an external database is backed up with its own tools "
                      "(pg_dump, mysqldump)")
    assert hub_db_skip_reason(load(make_site(), need_secrets=False)) is None


def test_backup_with_cluster_checks_host_keys_once_and_records_the_pinned_keys(make_site, monkeypatch) -> None:
    from installer.adapters import ansible, ssh

    checks: list[str] = []

    def check(policy: ssh.HostKeyPolicy) -> ssh.HostKeyReport:  # stands in for ssh -G / ssh-keygen / ssh
        checks.append(policy.mode)
        return ssh.HostKeyReport(policy.mode, str(policy.known_hosts),
                                 pinned={name: [f"ssh-ed25519 SHA256:{name}"] for name in policy.targets})

    def playbook(name, inventory, extravars, work_dir, **kwargs):  # noqa: ANN001, ANN003, ANN202 - ansible-runner
        assert checks and kwargs["host_keys"] is not None  # never a playbook before the check
        return ansible.PlaybookResult(status="successful", rc=0, duration_s=0.1)

    monkeypatch.setattr(ssh, "check_host_keys", check)
    monkeypatch.setattr(ansible, "run_playbook", playbook)
    site = make_site({"spec.components.jupyterhub.enabled": False, "spec.components.tensorboard.enabled": False})
    result = CliRunner().invoke(backup, ["-i", str(site), "--cluster", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert len(checks) == 1
    records = list((site / ".kfinstall" / "test" / "runs").glob("*/host-keys.json"))
    assert len(records) == 1
    assert sorted(json.loads(records[0].read_text())["pinned"]) == ["cp1", "n1", "n2"]


def test_backup_with_cluster_shows_pinned_keys_and_the_off_warning_like_up(make_site, monkeypatch) -> None:
    """What `up` prints about host keys (a key pinned on first contact, checking turned off), backup --cluster
    prints too, on stderr: its JSON document on stdout stays parseable."""
    from installer.adapters import ansible, ssh

    def check(policy: ssh.HostKeyPolicy) -> ssh.HostKeyReport:  # stands in for ssh -G / ssh-keygen / ssh
        return ssh.HostKeyReport(policy.mode, str(policy.known_hosts), pinned={"cp1": ["ssh-ed25519 SHA256:cp1"]})

    monkeypatch.setattr(ssh, "check_host_keys", check)
    monkeypatch.setattr(ansible, "run_playbook", lambda *a, **k: ansible.PlaybookResult("successful", 0, 0.1))
    site = make_site({"spec.components.jupyterhub.enabled": False, "spec.components.tensorboard.enabled": False,
                      "spec.ssh.hostKeyChecking": "off"})
    result = CliRunner().invoke(backup, ["-i", str(site), "--cluster", "-o", "json"])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)
    assert "WARNING: SSH host keys are NOT checked" in result.stderr
    assert "pinned SSH host key of cp1 on first contact: ssh-ed25519 SHA256:cp1" in result.stderr
