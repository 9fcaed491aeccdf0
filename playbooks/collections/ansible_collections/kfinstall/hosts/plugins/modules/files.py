#!/usr/bin/python
# Copyright: kfinstall authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write several small files and directories in one module run.

ansible.builtin.copy and template cost three round trips a file (a remote stat, a file transfer,
the copy module); this module takes the contents as arguments, so a batch of configuration files
is one run. Used where a role writes configuration whose content it renders on the controller.
"""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: files
short_description: Write several small files and directories in one module run
description:
  - Each entry is a regular file with the given content, or a directory, with the given mode, owner and group.
  - A file is replaced atomically and only when its content differs; missing parent directories are
    created root-owned with mode 0755 (a package installed later finds its configuration in place).
  - Supports check mode and diff mode.
options:
  files:
    description: The files and directories to manage.
    type: list
    elements: dict
    required: true
    suboptions:
      path: {description: "Absolute path, taken literally (no ~ or $VAR expansion).", type: str, required: true}
      state: {description: A regular file or a directory., type: str, choices: [file, directory], default: file}
      content: {description: The file's content (state=file)., type: str, default: ""}
      mode: {description: Octal mode as a string such as "0644"., type: str, required: true}
      owner: {description: Owner., type: str, default: root}
      group: {description: Group., type: str, default: root}
"""

RETURN = r"""
files:
  description: path -> whether this run changed it (content, creation, mode, owner or group).
  returned: always
  type: dict
"""

FILE_SPEC = {
    # str, not path: Ansible's path type expands ~ and $VAR, so "/srv/$HOME" would be written as
    # "/srv//root" while the exports line and ganesha.conf name "/srv/$HOME".
    "path": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["file", "directory"], "default": "file"},
    "content": {"type": "str", "default": ""},
    "mode": {"type": "str", "required": True},
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
}


def make_parents(module: AnsibleModule, path: str) -> bool:
    """Create the missing parent directories of path (root, 0755); whether any was missing."""
    parent = os.path.dirname(path)
    if os.path.isdir(parent):
        return False
    if not module.check_mode:
        os.makedirs(parent, mode=0o755, exist_ok=True)
    return True


def read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_content(module: AnsibleModule, spec: dict, diffs: list[dict]) -> bool:
    """Replace the file's content when it differs; whether it did (or would, in check mode)."""
    path = spec["path"]
    wanted = spec["content"].encode("utf-8")
    current = read_bytes(path)
    if current == wanted:
        return False
    if module._diff:
        diffs.append({
            "before_header": path, "after_header": path,
            "before": "" if current is None else current.decode("utf-8", "replace"),
            "after": spec["content"],
        })
    if module.check_mode:
        return True
    # A temporary file next to the target, then an atomic rename: a reader never sees half a file.
    fd, staged = tempfile.mkstemp(prefix=".kfinstall.", dir=os.path.dirname(path))
    with os.fdopen(fd, "wb") as handle:
        handle.write(wanted)
    module.atomic_move(staged, path)
    return True


def make_directory(module: AnsibleModule, path: str, diffs: list[dict]) -> bool:
    if os.path.isdir(path):
        return False
    if os.path.lexists(path):
        module.fail_json(msg=f"{path} exists and is not a directory; move it away or choose another path.")
    if module._diff:
        diffs.append({"before_header": path, "after_header": path,
                      "before": {"path": path, "state": "absent"}, "after": {"path": path, "state": "directory"}})
    if not module.check_mode:
        os.mkdir(path)
    return True


def ensure(module: AnsibleModule, spec: dict, diffs: list[dict]) -> bool:
    path = spec["path"]
    if not os.path.isabs(path):
        module.fail_json(msg=f"kfinstall.hosts.files needs absolute paths, got {path!r}.")
    changed = make_parents(module, path)
    if spec["state"] == "directory":
        changed = make_directory(module, path, diffs) or changed
    else:
        changed = write_content(module, spec, diffs) or changed
    if module.check_mode and not os.path.lexists(path):
        return True  # nothing to read the attributes of: the path would be created
    attributes = module.load_file_common_arguments(
        {"path": path, "mode": spec["mode"], "owner": spec["owner"], "group": spec["group"]})
    attributes["path"] = path  # load_file_common_arguments expands ~ and $VAR; the path is literal
    return module.set_fs_attributes_if_different(attributes, changed, expand=False)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"files": {"type": "list", "elements": "dict", "required": True, "options": FILE_SPEC}},
        supports_check_mode=True,
    )
    diffs: list[dict] = []
    results = {spec["path"]: ensure(module, spec, diffs) for spec in module.params["files"]}
    module.exit_json(changed=any(results.values()), files=results, diff=diffs)


if __name__ == "__main__":
    main()
