"""`kfinstall lab` command surface and error mapping (no root needed: nothing is started)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from installer.cli import main
from installer.cli.lab import lab
from installer.lab import repo


def test_help_lists_up_down_status() -> None:
    result = CliRunner().invoke(lab, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status"):
        assert command in result.output


def test_up_requires_out() -> None:
    result = CliRunner().invoke(lab, ["up"])
    assert result.exit_code == 2
    assert "--out" in result.output


@pytest.mark.parametrize("argv", [["status"], ["down"], ["up", "--out", "unused"]])
def test_not_root_is_a_preflight_error_with_exit_3(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr("sys.argv", ["kfinstall", "lab", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 3
    assert "needs root" in capsys.readouterr().err


def test_package_list_has_what_the_roles_need() -> None:
    packages = repo.package_list()
    for name in ("glusterfs-server", "glusterfs-client", "nfs-ganesha", "nfs-ganesha-vfs", "nfs-common",
                 "nfs-kernel-server", "libnfs-utils", "containerd", "runc", "kmod", "chrony"):
        assert name in packages
    assert len(packages) == len(set(packages))
