"""kfinstall.hosts.apt_candidates: refresh apt's index when asked, then read candidate versions (issue 14, P3).

The module is run the way Ansible runs it on a host (its file, with the arguments as JSON), with fake
`apt-get` and `apt-cache` first on PATH that log their arguments and environment. The parser is also
run once against this machine's real `apt-cache` where apt is installed (a read only, no refresh).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "playbooks/collections/ansible_collections/kfinstall/hosts/plugins/modules/apt_candidates.py"

# `apt-cache policy containerd nfs-ganesha ghost-pkg` on Debian 12: a package with a candidate, one
# known but offered by no source, and an unknown one (apt prints "N: Unable to locate" on stderr for it).
POLICY = """\
containerd:
  Installed: (none)
  Candidate: 1.6.20~ds1-1+b1
  Version table:
     1.6.20~ds1-1+b1 500
        500 http://10.89.7.1:8080 ./ Packages
nfs-ganesha:
  Installed: (none)
  Candidate: (none)
  Version table:
"""


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="no apt-cache on this machine")
def test_the_module_reads_this_machines_real_apt_cache(tmp_path: Path) -> None:
    """The real tool's layout, whatever apt's version: a package apt has installed has a candidate, an
    unknown one has none. No refresh: nothing on this machine changes."""
    result, _ = run_module(tmp_path, tmp_path / "no-fakes", packages=["apt", "ghost-pkg-kfinstall"])
    assert result["refreshed"] is False, result
    found = result["candidates"]
    assert found["apt"] and found["apt"][0].isdigit() and found["ghost-pkg-kfinstall"] == "", result


@pytest.fixture
def fake_apt(tmp_path: Path) -> Path:
    """apt-get and apt-cache that log "<tool> <args> LC_ALL=<value>"; apt-get fails while fail-count > 0."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"
    (bin_dir / "apt-get").write_text(
        "#!/bin/sh\n"
        f"echo \"apt-get $* LC_ALL=$LC_ALL\" >> {log}\n"
        f"n=$(cat {tmp_path}/fail-count 2>/dev/null || echo 0)\n"
        f"if [ \"$n\" -gt 0 ]; then echo $((n - 1)) > {tmp_path}/fail-count;"
        " echo 'E: Failed to fetch' >&2; exit 100; fi\n")
    (bin_dir / "apt-cache").write_text(
        "#!/bin/sh\n"
        f"echo \"apt-cache $* LC_ALL=$LC_ALL\" >> {log}\n"
        f"cat <<'EOF'\n{POLICY}EOF\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return bin_dir


def run_module(tmp_path: Path, bin_dir: Path, check: bool = False, **options: Any) -> tuple[dict[str, Any], list[str]]:
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**options, "_ansible_check_mode": check,
                                                        "_ansible_tmpdir": str(tmp_path)}}))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True, timeout=60,
                          check=False, env=env)
    log = tmp_path / "apt.log"
    return json.loads(done.stdout), log.read_text().splitlines() if log.exists() else []


def test_a_refresh_then_one_read_for_every_package(tmp_path: Path, fake_apt: Path) -> None:
    """One apt-cache call: a candidate, "(none)" (known, offered by no source) and an unknown package."""
    result, calls = run_module(tmp_path, fake_apt, refresh=True, packages=["containerd", "nfs-ganesha", "ghost-pkg"])
    assert result["changed"] is False and result["refreshed"] is True
    assert result["candidates"] == {"containerd": "1.6.20~ds1-1+b1", "nfs-ganesha": "", "ghost-pkg": ""}
    assert calls == ["apt-get -q update --error-on=any LC_ALL=C",
                     "apt-cache policy containerd nfs-ganesha ghost-pkg LC_ALL=C"]


def test_no_refresh_unless_asked_and_none_in_check_mode(tmp_path: Path, fake_apt: Path) -> None:
    result, calls = run_module(tmp_path, fake_apt, packages=["containerd"])
    assert result["refreshed"] is False and calls == ["apt-cache policy containerd LC_ALL=C"]
    (tmp_path / "apt.log").unlink()
    result, calls = run_module(tmp_path, fake_apt, check=True, refresh=True, packages=["containerd"])
    assert result["refreshed"] is False and calls == ["apt-cache policy containerd LC_ALL=C"]


def test_a_refresh_alone_reads_nothing(tmp_path: Path, fake_apt: Path) -> None:
    result, calls = run_module(tmp_path, fake_apt, refresh=True)
    assert result["candidates"] == {} and calls == ["apt-get -q update --error-on=any LC_ALL=C"]


def test_a_failing_refresh_is_retried_then_reported(tmp_path: Path, fake_apt: Path) -> None:
    (tmp_path / "fail-count").write_text("1")
    result, calls = run_module(tmp_path, fake_apt, refresh=True, packages=["containerd"])
    assert result["refreshed"] is True and len(calls) == 3  # failed, succeeded, read
    (tmp_path / "fail-count").write_text("9")
    result, _ = run_module(tmp_path, fake_apt, refresh=True, packages=["containerd"])
    assert result["failed"] is True
    assert result["msg"] == "apt-get update failed 3 times; the last said: E: Failed to fetch"


@pytest.mark.parametrize("name", ["-o", "--option=x", "a b", ""])
def test_an_option_is_never_taken_for_a_package(tmp_path: Path, fake_apt: Path, name: str) -> None:
    result, calls = run_module(tmp_path, fake_apt, packages=["containerd", name])
    assert result["failed"] is True and "not package names" in result["msg"] and calls == []
