"""Static checks of playbooks/: syntax, ansible-lint's production profile, role conventions.

Run anywhere, no root and no hosts: `ansible-playbook --syntax-check` needs no inventory.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
ROLES = sorted(p for p in (PLAYBOOKS / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
VENV_BIN = Path(sys.executable).parent
# "Containerd | Write the configuration": component, a bar, an imperative phrase.
TASK_NAME = re.compile(r"^[A-Z][A-Za-z0-9 ]* \| [A-Z].*")


def _run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)


def test_site_syntax() -> None:
    result = _run(str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", "playbooks/site.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_ansible_lint_production_profile() -> None:
    result = _run(str(VENV_BIN / "ansible-lint"), "--profile", "production", "--nocolor", "playbooks/", timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]


def _readme_variables(role: Path) -> str:
    text = (role / "README.md").read_text()
    section = text.split("\n## Variables\n", 1)
    assert len(section) == 2, f"{role.name}/README.md has no '## Variables' section"
    block = re.search(r"```yaml\n(.*?)```", section[1], re.S)
    assert block, f"{role.name}/README.md: the Variables section has no yaml block"
    return block.group(1)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_readme_variables_mirror_defaults(role: Path) -> None:
    defaults_text = (role / "defaults" / "main.yml").read_text()
    documented = yaml.safe_load(_readme_variables(role)) or {}
    defaults = yaml.safe_load(defaults_text) or {}
    assert list(documented) == list(defaults), f"{role.name}: README variables differ from defaults/main.yml"
    assert documented == defaults, f"{role.name}: README shows other default values than defaults/main.yml"


# kf_defaults, the neutral layer every host role depends on, names its variables (kf_packages, kf_host,
# kf_install_role, ...) with kfinstall's shared kf_ prefix (see .ansible-lint-ignore).
ROLE_PREFIX = {"kf_defaults": "kf"}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_variables_are_prefixed(role: Path) -> None:
    prefix = ROLE_PREFIX.get(role.name, role.name) + "_"
    for path in [role / "defaults" / "main.yml", role / "vars" / "main.yml"]:
        if path.is_file():
            for key in yaml.safe_load(path.read_text()) or {}:
                assert key.lstrip("_").startswith(prefix), f"{path.relative_to(REPO)}: {key}"


def _tasks(node: object) -> list[dict]:
    """Every task in a task list, including those inside blocks."""
    found: list[dict] = []
    for task in node if isinstance(node, list) else []:
        if isinstance(task, dict):
            found.append(task)
            for key in ("block", "rescue", "always"):
                found.extend(_tasks(task.get(key)))
    return found


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_task_names_follow_component_action(role: Path) -> None:
    bad = []
    for path in sorted([*role.glob("tasks/*.yml"), *role.glob("handlers/*.yml")]):
        for task in _tasks(yaml.safe_load(path.read_text())):
            name = task.get("name", "")
            if not TASK_NAME.match(name):
                bad.append(f"{path.relative_to(REPO)}: {name!r}")
    assert not bad, "task names must read 'Component | Action':\n" + "\n".join(bad)


def test_site_imports_every_play_in_order() -> None:
    site = yaml.safe_load((PLAYBOOKS / "site.yml").read_text())
    imported = [entry["ansible.builtin.import_playbook"] for entry in site]
    plays = sorted(p.name for p in PLAYBOOKS.glob("[0-9][0-9]-*.yml"))
    assert imported == plays


# Commands whose output is a cluster credential: a kubeadm bootstrap token or certificate key.
CREDENTIAL_COMMANDS = re.compile(r"kubeadm token create|--upload-certs")


def _role_tasks() -> list[tuple[Path, dict]]:
    return [
        (path, task)
        for role in ROLES
        for path in sorted(role.glob("tasks/*.yml"))
        for task in _tasks(yaml.safe_load(path.read_text()))
    ]


def test_tasks_handling_cluster_credentials_log_nothing() -> None:
    """A join token or certificate key must not reach Ansible's output: kfinstall keeps that output
    (stdout) in the run record, and a failed join or -v prints a task's command and result. Every task
    that registers such a command's output, or uses that register, carries no_log."""
    tasks = _role_tasks()
    registers = {
        task["register"] for _, task in tasks if "register" in task and CREDENTIAL_COMMANDS.search(yaml.safe_dump(task))
    }
    assert registers, "no credential command found: the pattern no longer matches the kubernetes role"
    leaking = [
        f"{path.relative_to(REPO)}: {task.get('name')!r}"
        for path, task in tasks
        if any(name in yaml.safe_dump(task) for name in registers) and task.get("no_log") is not True
    ]
    assert not leaking, "tasks handling a join token or certificate key without no_log:\n" + "\n".join(leaking)
