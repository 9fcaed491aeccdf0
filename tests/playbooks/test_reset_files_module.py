"""`kfinstall reset`'s host side (issue 15 item 4): the record kfinstall.hosts.files keeps of what it wrote,
and kfinstall.hosts.reset_files, which undoes exactly that and nothing else.

Both modules run the way Ansible runs them on a host (their file, the arguments as JSON), against a
temporary directory, as the current user, with the record in the test's directory. No root, no hosts.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# The module imports the collection's module_utils (plugins/module_utils/record.py) as Ansible bundles
# them: from ansible_collections, found here on PYTHONPATH.
MODULE_ENV = {**os.environ, "PYTHONPATH": str(REPO / "playbooks" / "collections")}
MODULES = REPO / "playbooks/collections/ansible_collections/kfinstall/hosts/plugins/modules"
OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def run(tmp_path: Path, module: str, args: dict[str, Any], check: bool = False) -> dict[str, Any]:
    payload = {"ANSIBLE_MODULE_ARGS": {**args, "record": str(tmp_path / "state" / "record.json"),
                                       "_ansible_check_mode": check, "_ansible_tmpdir": str(tmp_path)}}
    args_file = tmp_path / f"args-{len(list(tmp_path.glob('args-*')))}.json"
    args_file.write_text(json.dumps(payload))
    done = subprocess.run([sys.executable, str(MODULES / f"{module}.py"), str(args_file)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=MODULE_ENV)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def write(tmp_path: Path, files: list[dict[str, Any]]) -> dict[str, Any]:
    return run(tmp_path, "files", {"files": [{"owner": OWNER, "group": GROUP, **f} for f in files]})


def reset(tmp_path: Path, check: bool = False, **args: Any) -> dict[str, Any]:
    return run(tmp_path, "reset_files", args, check=check)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    (root / "etc/app").mkdir(parents=True)
    # The operator's: a package's default configuration kfinstall will replace, and a file beside it.
    (root / "etc/app/app.conf").write_text("package default\n")
    (root / "etc/app/app.conf").chmod(0o640)
    (root / "etc/app/operator.conf").write_text("mine\n")
    return root


def converge(tmp_path: Path, host: Path) -> None:
    result = write(tmp_path, [
        {"path": str(host / "etc/app/app.conf"), "content": "kfinstall's\n", "mode": "0644"},
        {"path": str(host / "etc/kf/new.d/kf.conf"), "content": "new\n", "mode": "0644"},
        {"path": str(host / "srv/export"), "state": "directory", "mode": "0777"},
    ])
    assert result["changed"] is True, result


def test_the_record_names_what_was_written_and_what_it_replaced(tmp_path: Path, host: Path) -> None:
    converge(tmp_path, host)
    record = json.loads((tmp_path / "state/record.json").read_text())
    assert stat.S_IMODE((tmp_path / "state/record.json").stat().st_mode) == 0o600
    files = record["files"]
    assert files[str(host / "etc/app/app.conf")]["created"] is False
    assert files[str(host / "etc/kf/new.d/kf.conf")]["created"] is True
    original = tmp_path / "state/originals" / files[str(host / "etc/app/app.conf")]["original"]
    assert original.read_text() == "package default\n"
    # Directories it made (parents included) are kfinstall's; /etc/app was there before.
    assert record["dirs"][str(host / "etc/kf")]["created"] is True
    assert record["dirs"][str(host / "srv/export")]["created"] is True
    assert str(host / "etc/app") not in record["dirs"]
    assert isinstance(record["packagesBefore"], list)


def test_a_converged_run_leaves_the_record_alone(tmp_path: Path, host: Path) -> None:
    converge(tmp_path, host)
    before = (tmp_path / "state/record.json").stat().st_mtime_ns
    converge_again = write(tmp_path, [{"path": str(host / "etc/app/app.conf"), "content": "kfinstall's\n",
                                       "mode": "0644"}])
    assert converge_again["changed"] is False
    assert (tmp_path / "state/record.json").stat().st_mtime_ns == before


def test_reset_removes_what_kfinstall_wrote_and_puts_back_what_it_replaced(tmp_path: Path, host: Path) -> None:
    converge(tmp_path, host)
    result = reset(tmp_path, data=[str(host / "srv/export")])
    assert result["changed"] is True, result
    assert (host / "etc/app/app.conf").read_text() == "package default\n"
    assert stat.S_IMODE((host / "etc/app/app.conf").stat().st_mode) == 0o640
    assert not (host / "etc/kf").exists()  # the file, then the directories kfinstall made
    assert (host / "etc/app/operator.conf").read_text() == "mine\n"
    assert (host / "etc/app").is_dir()
    assert (host / "srv/export").is_dir()  # data: kept without purge_data
    assert result["restored"] == [str(host / "etc/app/app.conf")]
    assert str(host / "srv/export") in result["kept"]
    again = reset(tmp_path, data=[str(host / "srv/export")])
    assert again["changed"] is False, again


def test_reset_keeps_a_file_changed_since_and_a_link_planted_in_its_place(tmp_path: Path, host: Path) -> None:
    converge(tmp_path, host)
    (host / "etc/app/app.conf").write_text("edited by hand\n")
    victim = tmp_path / "victim"
    victim.write_text("do not touch\n")
    (host / "etc/kf/new.d/kf.conf").unlink()
    (host / "etc/kf/new.d/kf.conf").symlink_to(victim)
    result = reset(tmp_path)
    assert (host / "etc/app/app.conf").read_text() == "edited by hand\n"
    assert "changed since kfinstall wrote it" in result["kept"][str(host / "etc/app/app.conf")]
    assert victim.read_text() == "do not touch\n" and (host / "etc/kf/new.d/kf.conf").is_symlink()
    assert str(host / "etc/kf/new.d") in result["kept"]  # not empty: the link is not kfinstall's


def test_purge_data_removes_the_data_directory_kfinstall_created(tmp_path: Path, host: Path) -> None:
    converge(tmp_path, host)
    (host / "srv/export/notebook.ipynb").write_text("{}")
    reset(tmp_path, data=[str(host / "srv/export")], purge_data=True)
    assert not (host / "srv/export").exists()


def test_purge_data_never_removes_a_data_directory_kfinstall_did_not_create(tmp_path: Path, host: Path) -> None:
    (host / "srv/export").mkdir(parents=True)
    (host / "srv/export/theirs").write_text("operator data\n")
    converge(tmp_path, host)
    reset(tmp_path, data=[str(host / "srv/export")], purge_data=True)
    assert (host / "srv/export/theirs").read_text() == "operator data\n"


def test_check_mode_reports_and_changes_nothing(tmp_path: Path, host: Path) -> None:
    converge(tmp_path, host)
    record_before = (tmp_path / "state/record.json").read_text()
    result = reset(tmp_path, check=True)
    assert result["changed"] is True and str(host / "etc/kf/new.d/kf.conf") in result["removed"]
    assert (host / "etc/kf/new.d/kf.conf").read_text() == "new\n"
    assert (host / "etc/app/app.conf").read_text() == "kfinstall's\n"
    assert (tmp_path / "state/record.json").read_text() == record_before


def test_no_record_means_nothing_to_undo(tmp_path: Path) -> None:
    result = reset(tmp_path)
    assert result["changed"] is False and result["packages_before"] is None


def test_a_damaged_record_removes_nothing(tmp_path: Path, host: Path) -> None:
    converge(tmp_path, host)
    (tmp_path / "state/record.json").write_text("{not json")
    result = reset(tmp_path)
    assert result.get("failed") is True and "nothing was removed" in result["msg"]
    assert (host / "etc/kf/new.d/kf.conf").exists()


def test_a_copy_of_the_original_replaced_by_a_link_is_not_followed(tmp_path: Path, host: Path) -> None:
    """originals/ holds regular files kfinstall made; a link planted there (review2 finding 13) would have
    reset copy whatever it points at over the host's file. The file is kept, and the reason given."""
    converge(tmp_path, host)
    copies = list((tmp_path / "state/originals").iterdir())
    assert len(copies) == 1, copies  # app.conf's package default
    secret = tmp_path / "secret"
    secret.write_text("someone else's secret\n")
    copies[0].unlink()
    copies[0].symlink_to(secret)
    result = reset(tmp_path)
    conf = str(host / "etc/app/app.conf")
    assert "not a regular file" in result["kept"][conf], result
    assert (host / "etc/app/app.conf").read_text() == "kfinstall's\n"
    assert secret.read_text() == "someone else's secret\n"


def test_a_record_too_big_to_be_kfinstalls_is_refused_unread(tmp_path: Path, host: Path) -> None:
    """A real record is a few KiB; one over 16 MiB is refused by both modules before it is read whole
    (review2 finding 13), and nothing is removed or written."""
    converge(tmp_path, host)
    record_path = tmp_path / "state/record.json"
    record = json.loads(record_path.read_text())
    record["padding"] = "x" * (16 * 1024 * 1024)
    record_path.write_text(json.dumps(record))
    result = reset(tmp_path)
    assert result.get("failed") is True and "over 16 MiB" in result["msg"] and "nothing was removed" in result["msg"]
    assert (host / "etc/kf/new.d/kf.conf").exists()
    written = write(tmp_path, [{"path": str(host / "etc/kf/other.conf"), "content": "x\n", "mode": "0644"}])
    assert written.get("failed") is True and "over 16 MiB" in written["msg"], written
    assert not (host / "etc/kf/other.conf").exists()


def test_a_fifo_in_place_of_the_record_is_refused_not_read(tmp_path: Path, host: Path) -> None:
    """A FIFO at the record's path would block both modules' read for ever (review4 L4): refused at once,
    nothing removed or written."""
    converge(tmp_path, host)
    record_path = tmp_path / "state/record.json"
    record_path.unlink()
    os.mkfifo(record_path, 0o600)
    result = reset(tmp_path)
    assert result.get("failed") is True and "not a regular file or folder" in result["msg"], result
    assert (host / "etc/kf/new.d/kf.conf").exists()
    written = write(tmp_path, [{"path": str(host / "etc/kf/other.conf"), "content": "x\n", "mode": "0644"}])
    assert written.get("failed") is True and "not a regular file or folder" in written["msg"], written
    assert not (host / "etc/kf/other.conf").exists()


def test_kfinstall_installed_counts_only_packages_that_were_not_there_before() -> None:
    sys.path.insert(0, str(REPO / "playbooks/collections/ansible_collections/kfinstall/hosts/plugins/filter"))
    try:
        from hosts import kfinstall_installed  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    table = {
        "os_prepare": {"packages": ["curl", "iptables"], "needed": True},
        "chrony": {"role": "os_prepare", "packages": ["chrony"], "services": ["chrony"], "needed": True},
        "containerd": {"packages": ["containerd", "runc"], "services": ["containerd"], "needed": True},
        "glusterfs_server": {"packages": ["glusterfs-server"], "services": ["glusterd"], "needed": False},
    }
    installed = {"curl": "8", "iptables": "1", "chrony": "4", "containerd": "1.7", "runc": "1.1"}
    found = kfinstall_installed(table, installed, ["curl", "chrony"])
    # chrony was the operator's before kfinstall: its service stays; glusterfs-server is not installed.
    assert found == {"packages": ["containerd", "iptables", "runc"], "services": ["containerd"]}
    assert kfinstall_installed(table, installed, None) == {"packages": [], "services": []}
    # One package of a multi-package entry was the operator's: its service is the operator's (review1 finding 3).
    table["glusterfs_server"] = {"packages": ["glusterfs-server", "xfsprogs"], "services": ["glusterd"],
                                 "needed": True}
    found = kfinstall_installed(table, {**installed, "glusterfs-server": "11", "xfsprogs": "6"},
                                ["curl", "chrony", "glusterfs-server"])
    assert "xfsprogs" in found["packages"] and "glusterfs-server" not in found["packages"]
    assert found["services"] == ["containerd"]


def test_a_file_already_holding_kfinstalls_content_keeps_the_packages_found_before(tmp_path: Path, host: Path) -> None:
    """A file that already holds kfinstall's content (a lab image's apt source, a host an older kfinstall
    converged) is adopted, and the packages found when the record starts are still recorded as there before:
    reset then keeps those packages and their services instead of skipping the host."""
    (host / "etc/app/app.conf").write_text("kfinstall's\n")
    write(tmp_path, [{"path": str(host / "etc/app/app.conf"), "content": "kfinstall's\n", "mode": "0640"}])
    record = json.loads((tmp_path / "state/record.json").read_text())
    assert record["files"][str(host / "etc/app/app.conf")]["adopted"] is True
    assert isinstance(record["packagesBefore"], list)
    assert reset(tmp_path)["packages_before"] == record["packagesBefore"]


def test_a_file_there_before_with_kfinstalls_content_survives_reset(tmp_path: Path, host: Path) -> None:
    """The operator's file that happens to hold what kfinstall writes is adopted, not taken: reset leaves it
    with its content, mode and owner (review1 finding 2)."""
    mine = host / "etc/op.conf"
    mine.write_text("overlay\nbr_netfilter\n")
    mine.chmod(0o604)
    write(tmp_path, [{"path": str(mine), "content": "overlay\nbr_netfilter\n", "mode": "0644"}])
    assert stat.S_IMODE(mine.stat().st_mode) == 0o644  # kfinstall's mode while converged
    result = reset(tmp_path)
    assert str(mine) in result["restored"] and str(mine) not in result["removed"], result
    assert mine.read_text() == "overlay\nbr_netfilter\n" and stat.S_IMODE(mine.stat().st_mode) == 0o604
    assert mine.stat().st_uid == os.getuid()
    assert list((tmp_path / "state/originals").iterdir()) == []


def forge(tmp_path: Path, edit: Any) -> dict[str, Any]:
    record_path = tmp_path / "state/record.json"
    record = json.loads(record_path.read_text())
    edit(record)
    record_path.write_text(json.dumps(record))
    return record


def test_a_forged_original_never_points_reset_at_another_file(tmp_path: Path, host: Path) -> None:
    """record.json naming any file as a file's original would make reset copy it over the file, then unlink
    it (review1 finding 6): only the name kfinstall.hosts.files gives the copy is accepted."""
    converge(tmp_path, host)
    victim = tmp_path / "victim"
    victim.write_text("someone else's\n")
    path = str(host / "etc/kf/new.d/kf.conf")
    for original in (str(victim), "../../victim", "0" * 64):
        forge(tmp_path, lambda record, o=original: record["files"][path].update(original=o))
        result = reset(tmp_path)
        assert result.get("failed") is True and "nothing was removed" in result["msg"], result
        assert "not the copy kfinstall made" in result["msg"]
        assert victim.read_text() == "someone else's\n" and Path(path).read_text() == "new\n"


@pytest.mark.parametrize("key", ["etc/relative.conf", "/etc/../etc/shadow", "/etc/./x", "/etc/.."])
def test_a_record_path_that_is_relative_or_holds_dot_parts_is_refused(tmp_path: Path, host: Path, key: str) -> None:
    converge(tmp_path, host)
    forge(tmp_path, lambda record: record["dirs"].update({key: {"created": True}}))
    result = reset(tmp_path)
    assert result.get("failed") is True and "not an absolute path without . or .. parts" in result["msg"], result
    assert (host / "etc/kf/new.d/kf.conf").exists()


def test_a_record_others_can_write_or_a_link_is_not_trusted(tmp_path: Path, host: Path) -> None:
    converge(tmp_path, host)
    state = tmp_path / "state"
    state.chmod(0o777)
    result = reset(tmp_path)
    assert result.get("failed") is True and "writable by group or others (mode 0777)" in result["msg"], result
    state.chmod(0o700)
    (state / "record.json").chmod(0o620)
    assert "writable by group or others" in reset(tmp_path)["msg"]
    (state / "record.json").chmod(0o600)
    (state / "record.json").rename(tmp_path / "elsewhere.json")
    (state / "record.json").symlink_to(tmp_path / "elsewhere.json")
    result = reset(tmp_path)
    assert result.get("failed") is True and "is a symbolic link" in result["msg"], result
    assert (host / "etc/kf/new.d/kf.conf").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the owner check applies when reset runs as root")
def test_a_record_not_roots_is_not_trusted(tmp_path: Path, host: Path) -> None:
    converge(tmp_path, host)
    os.chown(tmp_path / "state/record.json", 65534, 65534)
    result = reset(tmp_path)
    assert result.get("failed") is True and "owned by uid 65534, not root" in result["msg"], result
    assert (host / "etc/kf/new.d/kf.conf").exists()


def test_reset_names_the_directories_kfinstall_created(tmp_path: Path, host: Path) -> None:
    """reset.yml runs kubeadm reset only where the record shows kfinstall's work directory as created by
    kfinstall (review1 finding 1): a directory that was there before is not listed."""
    (host / "etc/there-before").mkdir()
    write(tmp_path, [{"path": str(host / "etc/kf/work"), "state": "directory", "mode": "0700"},
                     {"path": str(host / "etc/there-before"), "state": "directory", "mode": "0755"}])
    result = reset(tmp_path, check=True)
    assert str(host / "etc/kf/work") in result["created_dirs"] and str(host / "etc/kf") in result["created_dirs"]
    assert str(host / "etc/there-before") not in result["created_dirs"]


def test_a_file_there_before_of_which_no_copy_was_kept_survives_reset(tmp_path: Path, host: Path) -> None:
    """A record an earlier kfinstall wrote adopted a file already holding its content without keeping a copy
    (original null, created false): reset must not take it for kfinstall's and delete it (review2 finding 1)."""
    mine = host / "etc/apt-source.list"
    mine.write_text("deb [trusted=yes] file:/repo ./\n")
    write(tmp_path, [{"path": str(mine), "content": "deb [trusted=yes] file:/repo ./\n", "mode": "0644"}])

    def as_an_older_kfinstall_recorded_it(record: dict[str, Any]) -> None:
        entry = record["files"][str(mine)]
        (tmp_path / "state/originals" / entry["original"]).unlink()
        entry.update(original=None, created=False, adopted=True)
        entry.pop("uid"), entry.pop("gid")

    forge(tmp_path, as_an_older_kfinstall_recorded_it)
    result = reset(tmp_path)
    assert mine.read_text() == "deb [trusted=yes] file:/repo ./\n", result
    assert str(mine) not in result["removed"] and "there before kfinstall" in result["kept"][str(mine)]
    assert str(mine) not in json.loads((tmp_path / "state/record.json").read_text())["files"]


def test_a_link_kfinstalls_file_replaced_is_put_back(tmp_path: Path, host: Path) -> None:
    """The operator's symbolic link at a path kfinstall writes is replaced by the file (an atomic rename), and
    reset puts the link back instead of deleting the path (review2 finding 1)."""
    link = host / "etc/app/link.conf"
    link.symlink_to("operator.conf")
    write(tmp_path, [{"path": str(link), "content": "kfinstall's\n", "mode": "0644"}])
    assert not link.is_symlink() and link.read_text() == "kfinstall's\n"
    assert (host / "etc/app/operator.conf").read_text() == "mine\n"
    result = reset(tmp_path)
    assert str(link) in result["restored"], result
    assert link.is_symlink() and os.readlink(link) == "operator.conf"
    assert (host / "etc/app/operator.conf").read_text() == "mine\n"


def test_a_loose_record_folder_is_narrowed_before_the_first_record_refused_after(tmp_path: Path, host: Path) -> None:
    """An existing record folder group- or world-writable (an operator's mkdir, a wide umask) made every later
    reset refuse the record. With no record in it yet it holds nothing reset trusts: the files module narrows
    it to 0700. With a record already in it, the record may have been changed: up refuses, nothing written
    (review2 finding 3)."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state").chmod(0o777)
    converge(tmp_path, host)
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert reset(tmp_path, check=True).get("failed") is not True
    (tmp_path / "state").chmod(0o775)
    result = write(tmp_path, [{"path": str(host / "etc/kf/other.conf"), "content": "x\n", "mode": "0644"}])
    assert result.get("failed") is True and "writable by group or others (mode 0775)" in result["msg"], result
    assert "nothing was written" in result["msg"] and not (host / "etc/kf/other.conf").exists()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o775


def test_extra_slashes_in_a_record_path_do_not_take_it_out_of_the_data_directory(tmp_path: Path, host: Path) -> None:
    """A record key with extra or trailing slashes names the same file: reset acts on the normal path, so a
    file kfinstall wrote in the export stays without purge_data, and a directory is tried after its children
    (review2 finding 7)."""
    converge(tmp_path, host)
    inside = str(host) + "/srv//export/kf.txt"
    write(tmp_path, [{"path": inside, "content": "kf\n", "mode": "0644"},
                     {"path": str(host / "opt/kf") + "/", "state": "directory", "mode": "0755"},
                     {"path": str(host / "opt/kf/sub"), "state": "directory", "mode": "0755"}])
    result = reset(tmp_path, data=[str(host / "srv/export")])
    assert (host / "srv/export/kf.txt").read_text() == "kf\n", result
    assert not (host / "opt/kf").exists() and str(host / "opt/kf") not in result["kept"], result


def test_a_copy_of_a_host_file_is_recorded_and_never_shown(tmp_path: Path, host: Path) -> None:
    """`src` (the kubernetes role's copy of admin.conf to root's kubeconfig): the operator's kubeconfig there
    before is kept in the record and put back by reset, where ansible's copy overwrote it for good; the
    credentials never appear in a diff (review2 finding 8)."""
    admin = host / "etc/kubernetes/admin.conf"
    admin.parent.mkdir(parents=True)
    admin.write_text("client-key-data: SECRET-KEY\n")
    mine = host / "root/.kube/config"
    mine.parent.mkdir(parents=True)
    mine.write_text("my other cluster\n")
    result = run(tmp_path, "files", {"_ansible_diff": True, "files": [
        {"path": str(mine), "src": str(admin), "mode": "0600", "owner": OWNER, "group": GROUP}]})
    assert result["changed"] is True and mine.read_text() == "client-key-data: SECRET-KEY\n", result
    assert "SECRET-KEY" not in json.dumps(result) and "my other cluster" not in json.dumps(result)
    assert write(tmp_path, [{"path": str(mine), "src": str(admin), "mode": "0600"}])["changed"] is False
    assert str(mine) in reset(tmp_path)["restored"] and mine.read_text() == "my other cluster\n"
    missing = write(tmp_path, [{"path": str(mine), "src": str(host / "nowhere"), "mode": "0600"}])
    assert missing.get("failed") is True and "is not there" in missing["msg"]


def test_a_kubeconfig_an_older_kfinstall_copied_is_reported_as_adopted(tmp_path: Path, host: Path) -> None:
    """A control plane converged before root's kubeconfig went through the record: /root/.kube/config already
    holds admin.conf when kfinstall.hosts.files first writes it, so the record adopts it with a copy. Reset must
    tell the kubernetes role so (adopted), or the admin credentials are put back on a host that leaves the
    cluster (`node remove` of a control plane) (review4)."""
    admin = host / "etc/kubernetes/admin.conf"
    admin.parent.mkdir(parents=True)
    admin.write_text("client-key-data: SECRET-KEY\n")
    mine = host / "root/.kube/config"
    mine.parent.mkdir(parents=True)
    mine.write_text(admin.read_text())  # the older kfinstall's ansible copy
    assert write(tmp_path, [{"path": str(mine), "src": str(admin), "mode": "0600"}]).get("failed") is not True
    result = reset(tmp_path, check=True)
    assert result["restored"] == [str(mine)] and result["adopted"] == [str(mine)], result
