"""Where kfinstall's data folders are, in a git checkout and in an installed wheel alike."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """playbooks, inventories or charts: the wheel's copy under installer/_data, else the checkout's."""
    bundled = _PACKAGE / "_data" / name
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parent / name


STATE_FOLDER = ".kfinstall"


def default_state_dir(site: Path, cluster: str) -> Path:
    """SITE/.kfinstall/<cluster>: the state dir when --state-dir is not given (cluster is a DNS label)."""
    return site / STATE_FOLDER / cluster
