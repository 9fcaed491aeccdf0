"""Roles write their files through kfinstall.hosts.files (issue 14, Build 2), not one copy/template/file
task a file: a role's configuration is one module run (or as few as the order of its steps allows), and
its handlers read that run's `files: {path: changed}` result to restart only for the file they are about.

A static guard over the task and handler files of the roles (and single task files) listed in
FILES_ONLY; it runs on this checkout and on a small tree with one violation (so it is known to find one).
Read as YAML, no Ansible.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from task_walk import walk_tasks

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"

# Modules that write one file or directory a task.
PLAIN_WRITES = {f"{prefix}{name}" for prefix in ("", "ansible.builtin.", "ansible.legacy.")
                for name in ("copy", "template", "file", "lineinfile", "blockinfile")}
# What writes through kfinstall.hosts.files only: whole roles, or one task file of a role whose other
# writes are not folded (kubernetes: its apt source, kubeadm configuration and kube-vip manifest are
# written between steps that must come between them: key download, kubeadm init).
FILES_ONLY = [
    "roles/os_prepare", "roles/containerd", "roles/nvidia_gpu", "roles/nfs_server", "roles/nfs_client",
    "roles/glusterfs", "roles/kubernetes/tasks/0020-packages.yml",
]


def _task_files(root: Path, entry: str) -> list[Path]:
    path = root / entry
    if path.is_file():
        return [path]
    return sorted([*path.glob("tasks/*.yml"), *path.glob("handlers/*.yml")])


def plain_write_violations(root: Path, entries: list[str]) -> list[str]:
    """One "file: task: what is wrong" for each task of `entries` that writes with a one-file module."""
    found = []
    for entry in entries:
        for path in _task_files(root, entry):
            for task in walk_tasks(yaml.safe_load(path.read_text(encoding="utf-8"))):
                for module in sorted(PLAIN_WRITES & task.keys()):
                    found.append(f"{path.relative_to(root.parent)}: {task.get('name', '(unnamed)')!r} writes with "
                                 f"{module}: add the path to the role's kfinstall.hosts.files run instead")
    return found


def test_listed_roles_write_through_the_files_module() -> None:
    missing = [entry for entry in FILES_ONLY if not (PLAYBOOKS / entry).exists()]
    assert not missing, f"FILES_ONLY names what is not in playbooks/: {missing}"
    found = plain_write_violations(PLAYBOOKS, FILES_ONLY)
    assert not found, "\n".join(found)


def test_the_guard_finds_a_plain_write(tmp_path: Path) -> None:
    tasks = tmp_path / "playbooks" / "roles" / "demo" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "main.yml").write_text(
        "- name: Demo | Write one file\n  kfinstall.hosts.files: {files: []}\n"
        "- name: Demo | A block\n  block:\n"
        "    - name: Demo | Write another\n      ansible.builtin.template: {src: a.j2, dest: /etc/a}\n")
    found = plain_write_violations(tmp_path / "playbooks", ["roles/demo"])
    assert found == ["playbooks/roles/demo/tasks/main.yml: 'Demo | Write another' writes with "
                     "ansible.builtin.template: add the path to the role's kfinstall.hosts.files run instead"]


# Downloads into a file: outside kfinstall's record, so `kfinstall reset` would leave the file, or a task of
# its own would have to guess whether it is kfinstall's (review2 finding 5: the Kubernetes apt key, removed
# even where an operator's key of that name was there). A key is read with uri and written by the files run.
DOWNLOADS = {f"{prefix}get_url" for prefix in ("", "ansible.builtin.", "ansible.legacy.")}
# Downloads that are not configuration, with why reset may leave them (docs/operations.md, reset).
DOWNLOADS_KEPT = {
    "Containerd | Download the release": "a tarball cached in kfinstall's own /var/cache/kfinstall; reset keeps the "
                                         "folder it is in and lists it as kept",
}


def test_repository_keys_and_configuration_are_not_downloaded_outside_the_record() -> None:
    found = []
    for entry in [*FILES_ONLY, "roles/kubernetes/tasks/0010-preflight.yml"]:
        for path in _task_files(PLAYBOOKS, entry):
            for task in walk_tasks(yaml.safe_load(path.read_text(encoding="utf-8"))):
                if DOWNLOADS & task.keys() and task.get("name") not in DOWNLOADS_KEPT:
                    found.append(f"{path.relative_to(PLAYBOOKS)}: {task.get('name')!r}")
    assert not found, "download with uri and write through kfinstall.hosts.files:\n" + "\n".join(found)
