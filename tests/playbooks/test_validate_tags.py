"""A run limited to one role's tag is still validated: 00-validate.yml's play is tagged always."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


@pytest.mark.parametrize("tag", ["os", "containerd", "gpu", "nfs", "gluster", "kubernetes"])
def test_validation_runs_under_every_role_tag(tag: str) -> None:
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "playbooks/roles"),
           "ANSIBLE_COLLECTIONS_PATH": str(REPO / "playbooks/collections")}
    listed = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(REPO / "inventories/bare-metal/hosts.yml"), "--tags", tag, "--list-tasks",
         str(REPO / "playbooks/site.yml")],
        capture_output=True, text=True, timeout=300, check=False, env=env)
    assert listed.returncode == 0, listed.stderr
    tasks = [line.split("\t")[0].strip() for line in listed.stdout.splitlines() if "TAGS:" in line]
    # The validate play's tasks are listed under every tag (their names: whatever 00-validate.yml calls them).
    validate_tasks = [task for task in tasks if task.startswith("Validate | ")]
    assert validate_tasks, listed.stdout
