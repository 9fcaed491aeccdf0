"""The files `lab up` writes into its --out site folder, and only those (a record of them, installer.owned).

hosts.yml is the lab's: rewritten on every `lab up` and removed by `lab down`, but only while it
holds what kfinstall wrote; a hosts.yml the operator wrote or edited is refused (exit 2), before any
machine is started. kfinstall.yaml and secrets.yml are written once when absent and are the
operator's from then on (never replaced, never removed). Nothing is written through a link.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from installer.config.secrets import generate_secrets
from installer.errors import ConfigError
from installer.lab import inventory
from installer.owned import NewFile, check_files, open_folder, remove_files, replace_files

COMMAND = "lab up --out"


def check_out_dir(out: Path) -> None:
    """Refuse (exit 2) an --out whose hosts.yml kfinstall did not write, or whose path holds a link; writes nothing."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder. Fix: choose a folder")
    check_files(out, [inventory.INVENTORY_FILE], command=COMMAND)


def write_site_files(out: Path, data: dict[str, Any]) -> None:
    """OUT/hosts.yml replaced (recorded), kfinstall.yaml and secrets.yml created only when absent."""
    replace_files(out, {inventory.INVENTORY_FILE: NewFile(inventory.render_yaml(data).encode("utf-8"))},
                  command=COMMAND)
    with open_folder(out, create=True) as folder:
        folder.create(inventory.CONFIG_FILE, NewFile(inventory.cluster_config().encode("utf-8")), [])
    secrets_file = out / inventory.SECRETS_FILE
    if not os.path.lexists(secrets_file):  # a link, even a dangling one, is the operator's
        generate_secrets(secrets_file)


def remove_inventory(out: Path) -> list[str]:
    """Remove OUT/hosts.yml if it is still what `lab up` wrote; the names left in place (edited or foreign)."""
    return remove_files(out, [inventory.INVENTORY_FILE])
