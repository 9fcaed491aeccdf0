"""The run lock (installer.lock) never writes through a link, never blocks on a FIFO, and a state dir
it cannot write is exit 2 with the fix, not a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def test_a_lock_linked_to_another_file_is_refused_and_that_file_untouched(kfinstall, make_site, tmp_path: Path) -> None:
    site = make_site()
    state = site / ".kfinstall" / "test"
    state.mkdir(parents=True)
    precious = tmp_path / "precious.txt"
    precious.write_text("precious\n")
    (state / "lock").symlink_to(precious)
    code, output = kfinstall("backup", "-i", str(site))
    assert code == 2, output
    assert "symbolic link" in output and "Traceback" not in output
    assert precious.read_text() == "precious\n"
    assert not (state / "runs").exists()  # refused before the backup started


def test_a_fifo_as_lock_is_refused_not_waited_on(kfinstall, make_site) -> None:
    site = make_site()
    state = site / ".kfinstall" / "test"
    state.mkdir(parents=True)
    os.mkfifo(state / "lock")
    code, output = kfinstall("backup", "-i", str(site))
    assert code == 2, output
    assert "not a regular file" in output and "Traceback" not in output


def test_a_state_dir_that_cannot_be_written_is_exit_2(kfinstall, make_site) -> None:
    site = make_site()
    state = site / ".kfinstall" / "test"
    state.mkdir(parents=True)
    # root ignores permission bits; the immutable attribute stops root too (where the filesystem has it).
    if subprocess.run(["chattr", "+i", str(state)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        code, output = kfinstall("backup", "-i", str(site))
    finally:
        subprocess.run(["chattr", "-i", str(state)], check=True)
    assert code == 2, output
    assert f"cannot write the lock file {state / 'lock'}" in output and "Traceback" not in output
