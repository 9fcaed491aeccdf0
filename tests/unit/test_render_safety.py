"""`kfinstall render --out` replaces only what it wrote: never the site, the state dir or foreign files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from installer.config.load import load
from installer.errors import ConfigError
from installer.owned import RECORD_NAME, NewFile, replace_folder
from installer.render import Recorded, write


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every path below `root` with its content (files), target (links) or a folder marker."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = path.read_bytes()
    return found


@pytest.fixture
def site(make_site) -> Path:
    """A site with the operator's group_vars/, host_vars/ and a state dir holding state and a kubeconfig."""
    path = make_site()
    (path / "group_vars").mkdir()
    (path / "group_vars" / "all.yml").write_text("ntp_server: ntp.example.com\n")
    (path / "host_vars" / "cp1").mkdir(parents=True)
    (path / "host_vars" / "cp1" / "main.yml").write_text("disk: /dev/sdb\n")
    state = path / ".kfinstall" / "test"
    (state / "backups" / "b1").mkdir(parents=True)
    (state / "state.json").write_text('{"channel": "26.03"}\n')
    (state / "kubeconfig").write_text("apiVersion: v1\n")
    (state / "backups" / "b1" / "manifest.json").write_text("{}\n")
    return path


@pytest.mark.parametrize("where", ["site", "state dir", "state parent", "inside site", "contains site"])
def test_render_twice_into_the_site_or_state_dir_is_refused_and_deletes_nothing(
    kfinstall, site: Path, where: str
) -> None:
    out = {
        "site": site,
        "state dir": site / ".kfinstall" / "test",
        "state parent": site / ".kfinstall",
        "inside site": site / "rendered",
        "contains site": site.parent,
    }[where]
    before = snapshot(site)
    for _ in range(2):
        code, output = kfinstall("render", "-i", str(site), "--out", str(out))
        assert code == 2, output
        assert f"--out {out}" in output and "Fix: choose a folder outside" in output
    assert snapshot(site) == before
    assert not (site / "rendered").exists()


def test_render_into_a_folder_with_foreign_files_is_refused_and_deletes_nothing(
    kfinstall, site: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "todo.txt").write_text("mine\n")
    (out / "helm").mkdir()  # even a folder named like render's own is the operator's here
    (out / "helm" / "values.yaml").write_text("mine: true\n")
    before = snapshot(out)
    for _ in range(2):
        code, output = kfinstall("render", "-i", str(site), "--out", str(out))
        assert code == 2, output
        assert "is not empty and has no .kfinstall-files.json" in output and "nothing was changed" in output
    assert snapshot(out) == before


def test_rerender_replaces_its_own_output_and_keeps_the_operators_files(kfinstall, site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = kfinstall("render", "-i", str(site), "--out", str(out))
    assert code == 0, output
    first = snapshot(out)
    record = json.loads((out / RECORD_NAME).read_text())
    assert set(record["files"]) == {k for k, v in first.items() if v != "dir" and k != RECORD_NAME}
    (out / "README.txt").write_text("the operator's note beside the render\n")
    (out / "helm" / "notes.txt").write_text("the operator's note in a rendered folder\n")
    code, output = kfinstall("render", "-i", str(site), "--out", str(out))
    assert code == 0, output
    again = snapshot(out)
    assert again.pop("README.txt") and again.pop("helm/notes.txt")
    assert again == first


def _recorded(component: str, name: str) -> Recorded:
    typ = "kubernetes:core/v1:ConfigMap"
    urn = f"urn:pulumi:test::kfinstall::kfinstall:platform:{component}${typ}::{name}"
    inputs = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"}}
    return Recorded(urn, typ, name, inputs, True)


def test_rerender_removes_a_stale_file_it_wrote_and_its_empty_folder(make_site, tmp_path: Path) -> None:
    cfg = load(make_site())
    out = tmp_path / "out"
    write(cfg, [_recorded("Storage", "kept"), _recorded("Gpu", "dropped")], out)
    assert (out / "gpu" / "07-configmap-ns-dropped.yaml").is_file()
    (out / "storage" / "operator.txt").write_text("mine\n")
    write(cfg, [_recorded("Storage", "kept")], out)
    assert not (out / "gpu").exists()  # render made it, and nothing is left in it
    assert (out / "storage" / "07-configmap-ns-kept.yaml").is_file()
    assert (out / "storage" / "operator.txt").read_text() == "mine\n"
    assert set(json.loads((out / RECORD_NAME).read_text())["files"]) == {"storage/07-configmap-ns-kept.yaml"}


def test_rerender_refuses_a_file_the_operator_edited(make_site, tmp_path: Path) -> None:
    cfg = load(make_site())
    out = tmp_path / "out"
    write(cfg, [_recorded("Storage", "a"), _recorded("Gpu", "b")], out)
    edited = out / "storage" / "07-configmap-ns-a.yaml"
    edited.write_text("edited by hand\n")
    stale_edited = out / "gpu" / "07-configmap-ns-b.yaml"
    stale_edited.write_text("also edited\n")
    before = snapshot(out)
    with pytest.raises(Exception) as refused:
        write(cfg, [_recorded("Storage", "a")], out)
    assert getattr(refused.value, "exit_code", None) == 2
    message = str(refused.value)
    assert "storage/07-configmap-ns-a.yaml: changed since kfinstall wrote it" in message
    assert "gpu/07-configmap-ns-b.yaml: changed since kfinstall wrote it" in message
    assert snapshot(out) == before


@pytest.mark.parametrize("link", ["folder", "file"])
def test_a_symlink_inside_out_does_not_redirect_writes(make_site, tmp_path: Path, link: str) -> None:
    cfg = load(make_site())
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    (victim / "07-configmap-ns-a.yaml").write_text("victim\n")
    write(cfg, [_recorded("Storage", "a")], out)
    target = out / "storage" / "07-configmap-ns-a.yaml"
    if link == "folder":
        for child in (out / "storage").iterdir():
            child.unlink()
        (out / "storage").rmdir()
        (out / "storage").symlink_to(victim)
    else:
        target.unlink()
        target.symlink_to(victim / "07-configmap-ns-a.yaml")
    with pytest.raises(Exception) as refused:
        write(cfg, [_recorded("Storage", "a")], out)
    assert getattr(refused.value, "exit_code", None) == 2
    assert "symbolic link" in str(refused.value)
    assert (victim / "07-configmap-ns-a.yaml").read_text() == "victim\n"
    assert sorted(p.name for p in victim.iterdir()) == ["07-configmap-ns-a.yaml"]


def test_a_damaged_record_cannot_steer_removal_outside_the_folder(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "precious.txt"
    outside.write_text("precious\n")
    replace_folder(out, {"a.yaml": NewFile(b"a\n")}, command="test")
    record = json.loads((out / RECORD_NAME).read_text())
    import hashlib

    record["files"]["../precious.txt"] = hashlib.sha256(b"precious\n").hexdigest()
    (out / RECORD_NAME).write_text(json.dumps(record))
    with pytest.raises(Exception) as refused:
        replace_folder(out, {"a.yaml": NewFile(b"a\n")}, command="test")
    assert getattr(refused.value, "exit_code", None) == 2 and "damaged" in str(refused.value)
    assert outside.read_text() == "precious\n"


def test_a_run_stopped_half_way_is_finished_by_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    replace_folder(out, {"a.yaml": NewFile(b"old a\n"), "b.yaml": NewFile(b"old b\n")}, command="test")
    real_replace = os.replace
    calls = []

    def stop_after_first(src, dst, **kw):  # noqa: ANN001, ANN003, ANN202 - os.replace's signature
        calls.append(dst)
        if dst == "b.yaml":
            raise KeyboardInterrupt
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        replace_folder(out, {"a.yaml": NewFile(b"new a\n"), "b.yaml": NewFile(b"new b\n")}, command="test")
    monkeypatch.setattr(os, "replace", real_replace)
    assert (out / "a.yaml").read_bytes() == b"new a\n" and (out / "b.yaml").read_bytes() == b"old b\n"
    assert not [p for p in out.iterdir() if "kfinstall-tmp" in p.name]
    changes = replace_folder(out, {"a.yaml": NewFile(b"new a\n"), "b.yaml": NewFile(b"new b\n")}, command="test")
    assert changes.written == ["b.yaml"] and (out / "b.yaml").read_bytes() == b"new b\n"


# --- lab up --out: hosts.yml is the lab's only while it is what kfinstall wrote -------------------

LAB_INVENTORY = {"all": {"hosts": {"h1": {"ansible_host": "10.89.7.11"}}}}


def test_lab_up_refuses_a_hosts_file_it_did_not_write_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from installer.lab import hostprep, lab_up

    def no_lab(*_: object) -> None:
        raise AssertionError("the lab would start and hosts.yml be overwritten")

    monkeypatch.setattr(hostprep, "require_root", no_lab)
    site = tmp_path / "site"
    site.mkdir()
    (site / "hosts.yml").write_text("all: {hosts: {prod1: {ansible_host: 192.0.2.1}}}\n")
    before = snapshot(site)
    with pytest.raises(Exception) as refused:
        lab_up(1, 0, out=site)
    assert getattr(refused.value, "exit_code", None) == 2, refused.value
    assert "hosts.yml: not written by kfinstall" in str(refused.value)
    assert snapshot(site) == before


def test_lab_site_files_replace_only_kfinstalls_hosts_file(tmp_path: Path) -> None:
    from installer.lab import outputs

    site = tmp_path / "site"
    outputs.write_site_files(site, LAB_INVENTORY)
    first = (site / "hosts.yml").read_text()
    (site / "kfinstall.yaml").write_text("# the operator's edit\n")
    outputs.write_site_files(site, {"all": {"hosts": {"h2": {"ansible_host": "10.89.7.12"}}}})
    assert "h2" in (site / "hosts.yml").read_text() and (site / "hosts.yml").read_text() != first
    assert (site / "kfinstall.yaml").read_text() == "# the operator's edit\n"
    assert (site / "secrets.yml").stat().st_mode & 0o777 == 0o600
    (site / "hosts.yml").write_text(first + "# edited by hand\n")
    with pytest.raises(Exception) as refused:
        outputs.write_site_files(site, LAB_INVENTORY)
    assert getattr(refused.value, "exit_code", None) == 2 and "changed since kfinstall wrote it" in str(refused.value)
    assert outputs.remove_inventory(site) == ["hosts.yml"]  # lab down keeps the edited file
    assert (site / "hosts.yml").read_text().endswith("# edited by hand\n")


def test_lab_down_removes_the_hosts_file_it_wrote(tmp_path: Path) -> None:
    from installer.lab import outputs

    site = tmp_path / "site"
    outputs.write_site_files(site, LAB_INVENTORY)
    assert outputs.remove_inventory(site) == []
    assert not (site / "hosts.yml").exists() and (site / "kfinstall.yaml").exists() and (site / "secrets.yml").exists()


def test_an_out_folder_that_cannot_be_made_gives_exit_2_not_a_traceback(kfinstall, site: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("mine\n")
    for out in (tmp_path / "a-file" / "out", Path("/proc/self/kfinstall-out")):
        code, output = kfinstall("render", "-i", str(site), "--out", str(out))
        assert code == 2 and "Traceback" not in output and "Fix: choose" in output, output
    assert (tmp_path / "a-file").read_text() == "mine\n"


# --- hostile records and interrupted runs (audit of issue #11 item 1) -----------------------------

_KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from installer import owned
real_write, writes = owned.Folder.write, []
def write_then_die(self, *args, **kwargs):
    writes.append(1)
    if len(writes) > 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_write(self, *args, **kwargs)
owned.Folder.write = write_then_die
owned.replace_folder(Path(sys.argv[1]), {f"new/f{i}.yaml": owned.NewFile(b"%d\\n" % i) for i in range(5)}, command="t")
"""


def test_a_run_killed_half_way_leaves_nothing_a_later_run_cannot_clean(tmp_path: Path) -> None:
    """kill -9 during a render, then a render that no longer makes those files, then one that does again."""
    import subprocess
    import sys

    out = tmp_path / "out"
    replace_folder(out, {"old/a.yaml": NewFile(b"a\n")}, command="test")
    killed = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(out)], check=False)
    assert killed.returncode == -9 and (out / "new" / "f1.yaml").exists()
    changes = replace_folder(out, {"old/a.yaml": NewFile(b"a\n")}, command="test")
    assert sorted(changes.removed) == ["new/f0.yaml", "new/f1.yaml"]
    assert sorted(p.name for p in out.iterdir()) == [RECORD_NAME, "old"]  # new/ was kfinstall's: gone too
    again = replace_folder(out, {f"new/f{i}.yaml": NewFile(b"%d\n" % i) for i in range(5)}, command="test")
    assert len(again.written) == 5 and again.removed == ["old/a.yaml"]


def test_a_deeply_nested_record_is_damaged_not_a_traceback(tmp_path: Path) -> None:
    out = tmp_path / "out"
    replace_folder(out, {"a.yaml": NewFile(b"a\n")}, command="test")
    (out / RECORD_NAME).write_text('{"kfinstall": 1, "files": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError, match="damaged"):
        replace_folder(out, {"a.yaml": NewFile(b"a\n")}, command="test")


@pytest.mark.parametrize("what", ["record", "stale file"])
def test_a_huge_record_or_recorded_file_is_never_read_into_memory(tmp_path: Path, what: str) -> None:
    """A sparse 512 MiB file costs no disk; reading it whole would cost 512 MiB of memory."""
    import tracemalloc

    out = tmp_path / "out"
    replace_folder(out, {"a.yaml": NewFile(b"a\n"), "big.yaml": NewFile(b"b\n")}, command="test")
    with open(out / (RECORD_NAME if what == "record" else "big.yaml"), "r+b") as handle:
        handle.truncate(512 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as refused:
            replace_folder(out, {"a.yaml": NewFile(b"a\n")}, command="test")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"{peak} bytes held while checking"
    assert ("damaged" if what == "record" else "big.yaml: changed since") in str(refused.value)


def _immutable(path: Path) -> None:
    """Unwritable even for root (permission bits are not), where the filesystem has the attribute."""
    import subprocess

    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available on this filesystem")


@pytest.mark.parametrize("command", ["render", "init"])
def test_a_folder_that_cannot_be_written_is_exit_2_not_a_traceback(
    kfinstall, site: Path, tmp_path: Path, command: str
) -> None:
    import subprocess

    out = tmp_path / "out"
    out.mkdir()
    _immutable(out)
    try:
        if command == "render":
            code, output = kfinstall("render", "-i", str(site), "--out", str(out))
        else:
            code, output = kfinstall("init", "--profile", "lab", str(out))
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert code == 2, output
    assert "Traceback" not in output and f"cannot write {out}/" in output and "Operation not permitted" in output
    assert not list(out.iterdir())


def test_the_record_is_private_as_it_holds_digests_of_the_secret_files(make_site, tmp_path: Path) -> None:
    """sha256 of a Secret's YAML is a verifier for guesses at a weak operator-chosen password."""
    out = tmp_path / "out"
    replace_folder(out, {"monitoring/06-secret-a.yaml": NewFile(b"password: weak\n", 0o600)}, command="test")
    assert (out / RECORD_NAME).stat().st_mode & 0o777 == 0o600
    assert (out / "monitoring" / "06-secret-a.yaml").stat().st_mode & 0o777 == 0o600


def test_without_secrets_yml_every_known_secret_has_a_placeholder(make_site) -> None:
    """The placeholders stand for the secrets a site without secrets.yml will have: every key of the one
    list (installer.config.secrets.KNOWN_KEYS). A second hand-kept list in render.py missed
    jupyterhub_tensorboard_api_token, so a render without secrets.yml did not mask where it goes."""
    from installer.config.secrets import KNOWN_KEYS
    from installer.render import secret_strings

    site = make_site()
    (site / "secrets.yml").unlink(missing_ok=True)
    cfg = load(site, need_secrets=False)
    assert cfg.secrets is None
    assert secret_strings(cfg) == [f"<{key}>" for key in KNOWN_KEYS]
