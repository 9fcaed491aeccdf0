"""Restore treats a backup as hostile: one test per attack, each refused with the site left exactly
as it was (every file's bytes, mode and kind compared before and after)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from installer.cli.backup import backup, restore
from installer.config.secrets import generate_secrets
from installer.errors import PhaseFailed, PreflightError
from installer.upgrade import restore as restore_module
from installer.upgrade.manifest import MANIFEST, sign, site_signing_key
from installer.upgrade.restore import check_backup
from installer.upgrade.restore import restore as restore_checked

Snapshot = dict[str, tuple[str, int, bytes]]


def _snapshot(root: Path) -> Snapshot:
    """Every entry under root: kind, mode and content (or link target), links not followed."""
    seen: Snapshot = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                seen[str(path.relative_to(root))] = ("link", 0, os.readlink(path).encode())
            elif stat.S_ISDIR(info.st_mode):
                seen[str(path.relative_to(root))] = ("dir", stat.S_IMODE(info.st_mode), b"")
            else:
                seen[str(path.relative_to(root))] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return seen


def _pulumi_state(state: Path, text: str) -> None:
    stacks = state / "pulumi" / ".pulumi" / "stacks" / "kfinstall"
    stacks.mkdir(parents=True, exist_ok=True)
    (stacks / "test.json").write_text(text)


@pytest.fixture
def taken(make_site) -> tuple[Path, Path]:
    """A site with Pulumi state and group_vars, and a backup of it taken by `kfinstall backup`."""
    site = make_site()
    _pulumi_state(site / ".kfinstall" / "test", '{"version": 3, "original": true}')
    (site / "group_vars" / "all").mkdir(parents=True)
    (site / "group_vars" / "all" / "site.yml").write_text("ntp_server: time.example.com\n")
    result = CliRunner().invoke(backup, ["-i", str(site), "-o", "json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return site, Path(json.loads(result.output)["folder"])


def _document(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST).read_text())


def _write(folder: Path, document: dict[str, Any]) -> None:
    (folder / MANIFEST).write_text(json.dumps(document, indent=2))


def _listing(folder: Path) -> list[dict[str, Any]]:
    """The file list an attacker recomputes: every path under the folder, links followed for content."""
    files = []
    every = [Path(d) / name for d, _, names in os.walk(folder, followlinks=True) for name in names]
    for path in sorted(every):
        if path.name != MANIFEST and path.is_file():
            data = path.read_bytes()
            files.append({"path": str(path.relative_to(folder)), "sha256": hashlib.sha256(data).hexdigest(),
                          "size": len(data)})
    return files


def _forge(folder: Path, site: Path, **changes: Any) -> None:
    """An attacker who holds the key: recompute the listing, apply changes, sign again. Shows the
    checks after the signature hold on their own."""
    document = {**_document(folder), "files": _listing(folder), **changes}
    _write(folder, sign(document, site_signing_key(site)))


def _refused(site: Path, folder: Path, code: int, *expected: str) -> str:
    """Run `kfinstall restore --yes`; it must fail with `code`, say each expected text, and change nothing."""
    before = _snapshot(site)
    result = CliRunner().invoke(restore, [str(folder), "-i", str(site), "--yes"])
    assert result.exception is not None and getattr(result.exception, "exit_code", None) == code, (
        result.output + repr(result.exception)
    )
    message = str(getattr(result.exception, "message", result.exception))
    if hasattr(result.exception, "problems"):
        message = "\n".join(p.render() for p in result.exception.problems)
    for text in expected:
        assert text in message, message
    assert _snapshot(site) == before
    return message


def _archive(members: list[tarfile.TarInfo], data: bytes = b"{}") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 2 if kind == tarfile.REGTYPE else 0
    return info


# Attacks ----------------------------------------------------------------------------------------


def test_a_manifest_pointing_at_another_state_dir_is_refused(taken) -> None:
    site, folder = taken
    _forge(folder, site, cluster="../../../elsewhere")
    _refused(site, folder, 3, "cluster ../../../elsewhere: not a DNS label")
    assert not (site.parent / "elsewhere").exists()


def test_a_dotdot_entry_is_refused(taken) -> None:
    site, folder = taken
    document = _document(folder)
    document["files"].append({"path": "config/../../../../evil.yml", "sha256": "0" * 64, "size": 1})
    _write(folder, sign(document, site_signing_key(site)))
    _refused(site, folder, 3, "config/../../../../evil.yml: a '..', '.' or empty part in the path")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("/etc/cron.d/evil", "/etc/cron.d/evil: an absolute path"),
        ("config/group_vars//x.yml", "config/group_vars//x.yml: a '..', '.' or empty part in the path"),
        ("config/./hosts.yml", "config/./hosts.yml: a '..', '.' or empty part in the path"),
        ("config/group_vars/a\nb.yml", "'config/group_vars/a\\nb.yml': a control character or backslash"),
        ("config/ansible.cfg", "config/ansible.cfg: not a file kfinstall puts in a backup"),
        ("pulumi/other-cluster.json", "pulumi/other-cluster.json: not a file kfinstall puts in a backup"),
    ],
)
def test_absolute_odd_and_foreign_entry_names_are_refused(taken, name: str, says: str) -> None:
    site, folder = taken
    document = _document(folder)
    document["files"].append({"path": name, "sha256": "0" * 64, "size": 1})
    _write(folder, sign(document, site_signing_key(site)))
    _refused(site, folder, 3, says)


def test_a_symlink_entry_is_refused(taken, tmp_path: Path) -> None:
    site, folder = taken
    outside = tmp_path / "attacker-hosts.yml"
    outside.write_text("all: {hosts: {evil: {}}}\n")
    (folder / "config" / "hosts.yml").unlink()
    (folder / "config" / "hosts.yml").symlink_to(outside)
    _forge(folder, site)
    _refused(site, folder, 3, "config/hosts.yml: a symbolic link (a backup holds only regular files and folders)")


def test_an_entry_through_a_symlinked_folder_is_refused(taken, tmp_path: Path) -> None:
    site, folder = taken
    outside = tmp_path / "attacker-group-vars"
    (outside / "all").mkdir(parents=True)
    (outside / "all" / "site.yml").write_text("ansible_become_exe: /tmp/evil\n")
    (folder / "config" / "group_vars" / "all" / "site.yml").unlink()
    (folder / "config" / "group_vars" / "all").rmdir()
    (folder / "config" / "group_vars").rmdir()
    (folder / "config" / "group_vars").symlink_to(outside)
    _forge(folder, site)
    _refused(site, folder, 3, "config/group_vars: a symbolic link", "config/group_vars/all/site.yml: missing")


def test_an_unlisted_entry_is_refused(taken) -> None:
    site, folder = taken
    (folder / "config" / "group_vars" / "all" / "evil.yml").write_text("x: 1\n")
    (folder / "config" / "host_vars").mkdir()
    _refused(site, folder, 3, "config/group_vars/all/evil.yml: not listed in manifest.json",
             "config/host_vars/: not listed in manifest.json")


def test_a_file_dropped_from_the_manifest_and_its_archive_swapped_is_refused(taken) -> None:
    site, folder = taken
    (folder / "pulumi" / "backend.tar.gz").write_bytes(_archive([_member("pulumi/evil.json")]))
    document = _document(folder)
    document["files"] = [f for f in document["files"] if f["path"] != "pulumi/backend.tar.gz"]
    _write(folder, document)
    _refused(site, folder, 3, "manifest.json: signature does not match; its content was changed")
    _write(folder, sign(document, site_signing_key(site)))  # even when the attacker can sign
    _refused(site, folder, 3, "pulumi/backend.tar.gz: not listed in manifest.json")


def test_an_edited_manifest_with_recomputed_checksums_is_refused_by_its_signature(taken) -> None:
    site, folder = taken
    (folder / "config" / "kfinstall.yaml").write_text("apiVersion: evil\n")
    document = _document(folder)
    document["files"] = _listing(folder)
    _write(folder, document)
    _refused(site, folder, 3, "manifest.json: signature does not match; its content was changed after the backup")


def test_a_backup_signed_by_another_secrets_file_is_refused(taken, tmp_path: Path) -> None:
    site, folder = taken
    other = tmp_path / "other-site"
    other.mkdir()
    generate_secrets(other / "secrets.yml")
    _write(folder, sign(_document(folder), site_signing_key(other)))
    _refused(site, folder, 3, "it was signed with another secrets.yml", "put back the secrets.yml")


def test_secrets_yml_in_a_backup_is_refused_and_the_sites_stays_0600(taken) -> None:
    site, folder = taken
    (folder / "config" / "secrets.yml").write_text("pulumi_passphrase: attacker\n")
    (folder / "config" / "secrets.yml").chmod(0o644)
    _forge(folder, site)
    before = (site / "secrets.yml").read_bytes()
    _refused(site, folder, 3, "config/secrets.yml: secrets.yml is never part of a kfinstall backup")
    assert (site / "secrets.yml").read_bytes() == before
    assert stat.S_IMODE((site / "secrets.yml").stat().st_mode) == 0o600


def test_modes_come_from_the_site_never_from_the_backup(taken) -> None:
    site, folder = taken
    vault = folder / "config" / "group_vars" / "all" / "vault.yml"
    vault.write_text("ldap_password: from-the-backup\n")
    vault.chmod(0o666)
    (folder / "config" / "kfinstall.yaml").chmod(0o777)
    _forge(folder, site)
    (site / "kfinstall.yaml").chmod(0o640)
    result = CliRunner().invoke(restore, [str(folder), "-i", str(site), "--yes"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert stat.S_IMODE((site / "group_vars" / "all" / "vault.yml").stat().st_mode) == 0o600
    assert stat.S_IMODE((site / "kfinstall.yaml").stat().st_mode) == 0o640
    for path in (site / ".kfinstall" / "test" / "pulumi").rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600)


@pytest.mark.parametrize(
    ("member", "says"),
    [
        (_member("pulumi/link", tarfile.SYMTYPE, "/etc/passwd"), "member pulumi/link: a link"),
        (_member("pulumi/hard", tarfile.LNKTYPE, "pulumi/x"), "member pulumi/hard: a link"),
        (_member("pulumi/../../../kfinstall.yaml"), "a '..', '.' or empty part in the path"),
        (_member("/etc/evil"), "member /etc/evil: an absolute path"),
        (_member("secrets.yml"), "member secrets.yml: outside pulumi/"),
        (_member("pulumi/dev", tarfile.CHRTYPE), "member pulumi/dev: a device, FIFO or other special file"),
    ],
    ids=["symlink", "hardlink", "dotdot", "absolute", "outside", "device"],
)
def test_a_pulumi_archive_with_hostile_members_is_refused_before_anything_moves(
    taken, member: tarfile.TarInfo, says: str
) -> None:
    site, folder = taken
    (site / "kfinstall.yaml").write_text("# edited since the backup\n" + (site / "kfinstall.yaml").read_text())
    (folder / "pulumi" / "backend.tar.gz").write_bytes(_archive([_member("pulumi/ok.json"), member]))
    _forge(folder, site)
    _refused(site, folder, 3, "pulumi/backend.tar.gz: ", says)


def test_a_symlinked_folder_in_the_site_is_not_written_through(taken, tmp_path: Path) -> None:
    site, folder = taken
    elsewhere = tmp_path / "elsewhere"
    (site / "group_vars").rename(elsewhere)
    (site / "group_vars").symlink_to(elsewhere)
    _refused(site, folder, 3, f"{site.resolve() / 'group_vars'}: a symbolic link in the site folder")


# Refused during staging or the swap: nothing changed ----------------------------------------------


def test_a_backup_changed_after_the_check_is_caught_while_staging_and_changes_nothing(taken) -> None:
    site, folder = taken
    (folder / "config" / "host_vars").mkdir()  # a folder the site lacks: staging creates it, then removes it
    (folder / "config" / "host_vars" / "cp1.yml").write_text("a: 1\n")
    _forge(folder, site)
    checked = check_backup(folder, site, site_signing_key(site))
    (folder / "pulumi" / "backend.tar.gz").write_bytes(b"swapped after the check")
    before = _snapshot(site)
    with pytest.raises(PreflightError, match="pulumi/backend.tar.gz: checksum mismatch"):
        restore_checked(checked)
    assert _snapshot(site) == before  # no temporary file, no host_vars/ folder, no .restore-* folder


def test_a_failed_rename_undoes_the_swap(taken, monkeypatch) -> None:
    site, folder = taken
    (site / "kfinstall.yaml").write_text("# edited since the backup\n" + (site / "kfinstall.yaml").read_text())
    checked = check_backup(folder, site, site_signing_key(site))
    real_rename, calls = os.rename, []

    def failing_rename(source: Any, target: Any) -> None:
        calls.append(target)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        real_rename(source, target)

    before = _snapshot(site)
    monkeypatch.setattr(restore_module.os, "rename", failing_rename)
    with pytest.raises(PhaseFailed, match="the renames made were undone"):
        restore_checked(checked)
    assert _snapshot(site) == before


def test_a_disk_error_while_staging_changes_nothing(taken, monkeypatch) -> None:
    site, folder = taken
    (folder / "config" / "host_vars").mkdir()
    (folder / "config" / "host_vars" / "cp1.yml").write_text("a: 1\n")
    _forge(folder, site)
    checked = check_backup(folder, site, site_signing_key(site))
    before = _snapshot(site)
    real_fchmod, calls = os.fchmod, []

    def full_disk(fd: int, mode: int) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", "somewhere")
        real_fchmod(fd, mode)

    monkeypatch.setattr(restore_module.os, "fchmod", full_disk)
    with pytest.raises(PhaseFailed, match="No space left on device: somewhere.*nothing was changed"):
        restore_checked(checked)
    assert _snapshot(site) == before


# Damaged manifests: exit 2 naming the key -------------------------------------------------------


def _main(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    from installer.cli import main

    monkeypatch.setattr("sys.argv", ["kfinstall", *args])
    try:
        main()
    except SystemExit as exited:
        return int(exited.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d.pop("files"), "files: required key is missing"),
        (lambda d: d.pop("signature"), "signature: required key is missing"),
        (lambda d: d["files"][0].update(size="12"), "files[0].size: Input should be a valid integer (got '12')"),
        (lambda d: d["files"][0].update(sha256=None), "files[0].sha256: Input should be a valid string (got None)"),
        (lambda d: d["files"][1].pop("path"), "files[1].path: required key is missing"),
        (lambda d: d.update(files={"a": 1}), "files: Input should be a valid list (got dict)"),
        (lambda d: d.update(cluster=["x" * 500]), "cluster: Input should be a valid string (got list)"),
        (lambda d: d.update(format=1), "format: Input should be 2 (got 1)"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
    ],
    ids=["no-files", "no-signature", "size-text", "sha-null", "no-path", "files-map", "cluster-list", "format",
         "extra"],
)
def test_a_manifest_with_missing_or_mistyped_fields_exits_2_naming_the_key(
    taken, monkeypatch, capsys, edit: Any, says: str
) -> None:
    site, folder = taken
    document = _document(folder)
    edit(document)
    _write(folder, document)
    before = _snapshot(site)
    code, err = _main(["restore", str(folder), "-i", str(site), "--yes"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{folder / MANIFEST}: {says}" in err, err
    assert _snapshot(site) == before


@pytest.mark.parametrize(
    ("content", "says"),
    [("{", "not valid JSON (line 1 column 2"), ("[1]", "expected a JSON object"), ("[" * 50_000, "not valid JSON"),
     # json raises a plain ValueError for an integer longer than Python converts
     ('{"format": ' + "1" * 5000 + "}", "not valid JSON")],
)
def test_a_manifest_that_is_not_a_json_object_exits_2(taken, monkeypatch, capsys, content: str, says: str) -> None:
    site, folder = taken
    (folder / MANIFEST).write_text(content)
    code, err = _main(["restore", str(folder), "-i", str(site), "--yes"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err and says in err


def test_a_manifest_from_before_signing_is_refused_with_the_reason(taken) -> None:
    site, folder = taken
    document = _document(folder)
    del document["format"], document["signature"]
    _write(folder, document)
    _refused(site, folder, 2, "signature: missing: the backup was taken before kfinstall signed its backups",
             "check its files yourself and copy them by hand")


def test_restore_without_the_sites_secrets_exits_2_and_says_which_file(taken) -> None:
    site, folder = taken
    (site / "secrets.yml").unlink()
    message = _refused(site, folder, 2, f"{site / 'secrets.yml'}: file not found")
    assert "put that secrets.yml back first" in message


def test_backup_without_secrets_writes_nothing(make_site) -> None:
    site = make_site(secrets=False)
    result = CliRunner().invoke(backup, ["-i", str(site)])
    assert getattr(result.exception, "exit_code", None) == 2
    assert "a backup is signed with a key derived from its pulumi_passphrase" in result.exception.message
    assert not (site / ".kfinstall").exists()


def test_a_genuine_backup_restores_after_all_the_checks(taken) -> None:
    site, folder = taken
    original = (site / "kfinstall.yaml").read_text()
    (site / "kfinstall.yaml").write_text("broken: [\n")
    (site / "group_vars" / "all" / "site.yml").write_text("broken\n")
    checkpoint = site / ".kfinstall" / "test" / "pulumi" / ".pulumi" / "stacks" / "kfinstall" / "test.json"
    checkpoint.write_text("{}")
    result = CliRunner().invoke(restore, [str(folder), "-i", str(site), "--yes", "-o", "json"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = json.loads(result.output)
    assert (site / "kfinstall.yaml").read_text() == original
    assert yaml.safe_load((site / "group_vars" / "all" / "site.yml").read_text()) == {"ntp_server": "time.example.com"}
    assert json.loads(checkpoint.read_text()) == {"version": 3, "original": True}
    assert report["stateDir"] == str((site / ".kfinstall" / "test").resolve())
    assert len(report["movedAside"]) == 4 and all(".before-restore-" in p for p in report["movedAside"])
    assert not list((site / ".kfinstall" / "test").glob(".restore-*"))
    assert not [p for p in site.rglob("*.tmp")]


def test_a_manifest_with_thousands_of_bad_entries_prints_a_bounded_refusal(taken, monkeypatch, capsys) -> None:
    """Unsigned and malformed: 40,000 bad entries made 80,000 error lines (17 MB, 15 s); now 20 and a count."""
    site, folder = taken
    document = _document(folder)
    document["files"] = [{"path": f"config/x{i}", "sha256": "zz", "size": -1} for i in range(40_000)]
    _write(folder, document)
    code, err = _main(["restore", str(folder), "-i", str(site), "--yes"], monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    assert err.count("\n") < 30 and "and 79980 more problems" in err


def test_a_signed_manifest_listing_thousands_of_missing_files_prints_a_bounded_refusal(taken) -> None:
    site, folder = taken
    document = _document(folder)
    document["files"] += [{"path": f"config/group_vars/x{i}.yml", "sha256": "0" * 64, "size": 1} for i in range(5000)]
    _write(folder, sign(document, site_signing_key(site)))
    message = _refused(site, folder, 3, "config/group_vars/x0.yml: missing", "... and 4980 more")
    assert message.count("\n") < 25
