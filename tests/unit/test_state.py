"""state.json: unreadable state stops with exit 2 naming the file and the fix; writes are durable
and keep the previous good copy."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from installer.errors import ConfigError
from installer.state import HistoryEntry, State, read_state, write_state


def _status_through_main(site: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    from installer.cli import main

    monkeypatch.setattr("sys.argv", ["kfinstall", "status", "-i", str(site)])
    try:
        main()
    except SystemExit as exited:
        return int(exited.code or 0)
    return 0


def _state(channel: str) -> State:
    return State(cluster="test", installed_channel=channel, phases_done=["hosts", "platform"])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"cluster": "test", "installed_chan', "is not valid JSON (line 1 column 21: Unterminated string"),
        (b"", "is empty"),
        (b'{"cluster": "test", "phases_done": "hosts"}', "phases_done: Input should be a valid list"),
        (b'{"installed_channel": "26.03"}', "cluster: Field required"),
        (b"[1, 2]", "(top level): Input should be a valid dictionary"),
        (b"\xff\xfe{\x00", "is not UTF-8 text"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"cluster": ' + b"1" * 5000 + b"}", "a number too long to read"),
    ],
    ids=["truncated", "empty", "mistyped", "missing-key", "not-a-mapping", "utf16", "deep", "long-number"],
)
def test_a_damaged_state_file_exits_2_naming_the_file_and_the_fix(
    make_site, monkeypatch, capsys, content: bytes, says: str
) -> None:
    site = make_site(secrets=False)
    state_dir = site / ".kfinstall" / "test"
    state_dir.mkdir(parents=True)
    (state_dir / "state.json").write_bytes(content)
    assert _status_through_main(site, monkeypatch) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    path = state_dir.resolve() / "state.json"
    assert f"error: {path}: " in err and says in err
    assert f"no previous copy ({path}.prev) exists" in err and f"mv {path} {path}.broken" in err


def test_every_write_keeps_the_previous_good_copy_which_the_fix_puts_back(make_site, monkeypatch, capsys) -> None:
    site = make_site(secrets=False)
    state_dir = (site / ".kfinstall" / "test").resolve()
    write_state(state_dir, _state("1.11"))
    assert not (state_dir / "state.json.prev").exists()
    write_state(state_dir, _state("26.03"))
    assert read_state(state_dir) == _state("26.03")
    assert json.loads((state_dir / "state.json.prev").read_text())["installed_channel"] == "1.11"

    (state_dir / "state.json").write_text('{"cluster": "te')  # a truncated write by another tool
    assert _status_through_main(site, monkeypatch) == 2
    err = capsys.readouterr().err
    path = state_dir / "state.json"
    fix = f"cp -p {path}.prev {path}"
    assert f"{path}.prev is the copy kept before the last write" in err and fix in err
    subprocess.run(shlex.split(fix), check=True)  # the fix as printed works
    assert read_state(state_dir) == _state("1.11")
    assert _status_through_main(site, monkeypatch) == 0


def test_a_damaged_state_never_replaces_the_good_copy(tmp_path: Path) -> None:
    write_state(tmp_path, _state("1.11"))
    write_state(tmp_path, _state("26.03"))
    (tmp_path / "state.json").write_text("{")
    write_state(tmp_path, _state("26.03.1"))
    assert json.loads((tmp_path / "state.json.prev").read_text())["installed_channel"] == "1.11"
    assert read_state(tmp_path) == _state("26.03.1")


def test_a_state_path_that_is_not_a_regular_file_exits_2(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "state.json")  # reading a FIFO would hang
    with pytest.raises(ConfigError) as refused:
        read_state(tmp_path)
    assert refused.value.exit_code == 2
    assert refused.value.message.startswith(f"{tmp_path / 'state.json'}: not a regular file")


def _written(path: str) -> str:
    """The file a temporary name is written for (installer.owned names it .NAME.kfinstall-tmp-XXXX)."""
    return Path(path).name.split(".kfinstall-tmp-")[0]


def test_writes_fsync_the_file_and_then_the_folder(tmp_path: Path, monkeypatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_state(tmp_path, _state("1.11"))
    # the temp file (renamed to state.json right after its fsync), then the folder holding the rename
    assert len(synced) == 2 and Path(synced[0]).parent == tmp_path and _written(synced[0]) == ".state.json"
    assert synced[1] == str(tmp_path)
    synced.clear()
    entry = HistoryEntry(at="2026-01-01T00:00:00Z", action="up", result="ok")
    write_state(tmp_path, State(cluster="test", history=[entry]))
    # the kept copy (file, folder), then the new state (file, folder)
    assert [_written(p) for p in synced] == [".state.json.prev", tmp_path.name, ".state.json", tmp_path.name]
    assert not [p for p in tmp_path.iterdir() if "kfinstall-tmp" in p.name]


@pytest.mark.parametrize("target", ["a good state elsewhere", "dangling"])
def test_a_state_file_that_is_a_link_exits_2_and_is_neither_read_nor_written_through(
    tmp_path: Path, target: str
) -> None:
    state_dir, elsewhere = tmp_path / "state", tmp_path / "elsewhere.json"
    state_dir.mkdir()
    if target != "dangling":
        elsewhere.write_text(_state("26.03").model_dump_json())
    (state_dir / "state.json").symlink_to(elsewhere)
    with pytest.raises(ConfigError) as refused:
        read_state(state_dir)
    assert refused.value.exit_code == 2 and "symbolic link" in str(refused.value)
    write_state(state_dir, _state("26.03.1"))
    assert not (state_dir / "state.json").is_symlink()
    assert target == "dangling" and not elsewhere.exists() or "26.03.1" not in elsewhere.read_text()


def test_a_damaged_previous_copy_is_not_offered_as_the_fix(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{")
    (tmp_path / "state.json.prev").write_text("{\"cluster\": ")
    with pytest.raises(ConfigError) as refused:
        read_state(tmp_path)
    assert "cp -p" not in str(refused.value) and "state.json.prev) is damaged too" in str(refused.value)
