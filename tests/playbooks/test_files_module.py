"""kfinstall.hosts.files, the module that writes a host's configuration files in one run.

The module is run the way Ansible runs it on a host (its file, with the arguments as JSON), against a
temporary directory, as the current user. No root, no hosts.
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
MODULE = REPO / "playbooks/collections/ansible_collections/kfinstall/hosts/plugins/modules/files.py"
OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def run_module(tmp_path: Path, files: list[dict[str, Any]], check: bool = False, diff: bool = False) -> dict[str, Any]:
    entries = [{"owner": OWNER, "group": GROUP, **entry} for entry in files]
    # The record goes beside the test's files, never into this machine's /var/lib/kfinstall.
    args = {"ANSIBLE_MODULE_ARGS": {"files": entries, "record": str(tmp_path / "record" / "record.json"),
                                    "_ansible_check_mode": check, "_ansible_diff": diff,
                                    "_ansible_tmpdir": str(tmp_path)}}
    args_file = tmp_path / f"args-{len(list(tmp_path.glob('args-*')))}.json"
    args_file.write_text(json.dumps(args))
    done = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True,
                          timeout=60, check=False,
                          env=MODULE_ENV)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def mode_of(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.fixture
def target(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    root.mkdir()
    return root


def config_and_export(root: Path) -> list[dict[str, Any]]:
    return [
        {"path": str(root / "etc/app/app.conf"), "content": "key = 1\n", "mode": "0640"},
        {"path": str(root / "srv/export"), "state": "directory", "mode": "0777"},
    ]


def test_writes_files_and_directories_with_their_parents(tmp_path: Path, target: Path) -> None:
    result = run_module(tmp_path, config_and_export(target))
    assert result["changed"] is True, result
    assert result["files"] == {str(target / "etc/app/app.conf"): True, str(target / "srv/export"): True}
    assert (target / "etc/app/app.conf").read_text() == "key = 1\n"
    assert mode_of(target / "etc/app/app.conf") == "0o640"
    assert (target / "srv/export").is_dir() and mode_of(target / "srv/export") == "0o777"
    # Parents a package would otherwise create: there now, 0755.
    assert mode_of(target / "etc/app") == "0o755"


def test_a_second_run_changes_nothing(tmp_path: Path, target: Path) -> None:
    run_module(tmp_path, config_and_export(target))
    again = run_module(tmp_path, config_and_export(target))
    assert again["changed"] is False, again
    assert set(again["files"].values()) == {False}


def test_drift_in_content_or_mode_is_put_back_and_reported_per_path(tmp_path: Path, target: Path) -> None:
    run_module(tmp_path, config_and_export(target))
    (target / "etc/app/app.conf").write_text("key = 2  # edited by hand\n")
    (target / "srv/export").chmod(0o700)
    result = run_module(tmp_path, config_and_export(target))
    assert result["files"] == {str(target / "etc/app/app.conf"): True, str(target / "srv/export"): True}
    assert (target / "etc/app/app.conf").read_text() == "key = 1\n"
    assert mode_of(target / "srv/export") == "0o777"
    # Only the mode differs: the content is left as it is, the change still reported.
    (target / "etc/app/app.conf").chmod(0o600)
    before = (target / "etc/app/app.conf").stat().st_ino
    result = run_module(tmp_path, config_and_export(target))
    assert result["files"][str(target / "etc/app/app.conf")] is True
    assert (target / "etc/app/app.conf").stat().st_ino == before  # not rewritten
    assert mode_of(target / "etc/app/app.conf") == "0o640"


def test_check_mode_reports_without_touching_anything(tmp_path: Path, target: Path) -> None:
    result = run_module(tmp_path, config_and_export(target), check=True, diff=True)
    assert result["changed"] is True, result
    assert list(target.iterdir()) == []
    diffs = {d["after_header"]: d for d in result["diff"]}
    assert diffs[str(target / "etc/app/app.conf")]["before"] == ""
    assert diffs[str(target / "etc/app/app.conf")]["after"] == "key = 1\n"
    assert diffs[str(target / "srv/export")]["after"] == {"path": str(target / "srv/export"), "state": "directory"}


def test_diff_shows_the_old_and_new_content(tmp_path: Path, target: Path) -> None:
    run_module(tmp_path, config_and_export(target))
    files = config_and_export(target)
    files[0]["content"] = "key = 3\n"
    result = run_module(tmp_path, files, diff=True)
    assert result["diff"] == [{"before_header": files[0]["path"], "after_header": files[0]["path"],
                               "before": "key = 1\n", "after": "key = 3\n"}]


def test_a_file_in_the_way_of_a_directory_fails_with_the_path(tmp_path: Path, target: Path) -> None:
    (target / "srv").mkdir()
    (target / "srv/export").write_text("not a directory")
    result = run_module(tmp_path, config_and_export(target))
    assert result.get("failed") is True, result
    assert f"{target / 'srv/export'} exists and is not a directory" in result["msg"]


def test_relative_paths_are_refused(tmp_path: Path) -> None:
    result = run_module(tmp_path, [{"path": "etc/app.conf", "content": "", "mode": "0644"}])
    assert result.get("failed") is True, result
    assert "absolute paths" in result["msg"]


def test_kfinstall_runs_find_the_module_and_its_documentation(tmp_path: Path) -> None:
    """kfinstall's own Ansible environment puts the collection on the path, wherever it runs from
    (here a directory with no ansible.cfg)."""
    from installer.adapters.ansible import ansible_environment

    env = {**os.environ, **ansible_environment(), "HOME": str(tmp_path)}
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "--json", "kfinstall.hosts.files"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)["kfinstall.hosts.files"]["doc"]
    assert set(doc["options"]["files"]["suboptions"]) == {"path", "state", "content", "src", "mode", "owner", "group"}


def test_a_path_is_taken_literally_without_expanding_variables(tmp_path: Path, target: Path) -> None:
    """The export path an operator gives reaches /etc/exports and ganesha.conf as written: the module must
    create that very path, not one with $HOME or ~ expanded (Ansible's `path` option type expands both)."""
    literal = target / "srv" / "$HOME"
    result = run_module(tmp_path, [{"path": str(literal), "state": "directory", "mode": "0755"}])
    assert result["files"] == {str(literal): True}, result
    assert literal.is_dir()
    assert not (target / "srv" / os.environ.get("HOME", "/root").lstrip("/")).exists()
