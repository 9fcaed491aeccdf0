#!/usr/bin/python
# Copyright: kfinstall authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write several small files and directories in one module run.

ansible.builtin.copy and template cost three round trips a file (a remote stat, a file transfer,
the copy module); this module takes the contents as arguments, so a batch of configuration files
is one run. Used where a role writes configuration whose content it renders on the controller.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kfinstall.hosts.plugins.module_utils.record import (
    ORIGINALS,
    RECORD_VERSION,
    RecordError,
    location_problem,
    read_record,
    save_record,
)

DOCUMENTATION = r"""
module: files
short_description: Write several small files and directories in one module run
description:
  - Each entry is a regular file with the given content, or a directory, with the given mode, owner and group.
  - A file is replaced atomically and only when its content differs; missing parent directories are
    created root-owned with mode 0755 (a package installed later finds its configuration in place).
  - Supports check mode and diff mode.
  - Keeps a record on the host of what it wrote in I(record), each file with the sha256 of its content,
    the content a file held before kfinstall first replaced it, the directories it created, and the
    packages installed when the record was started (before kfinstall's first apt transaction on the
    host). C(kfinstall reset) (module kfinstall.hosts.reset_files) removes or restores exactly those.
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
      src:
        description:
          - Instead of I(content), a file on the host whose bytes the file gets (a copy kept in the record like
            any other file). Never shown in a diff (it may hold credentials, such as admin.conf).
        type: str
      mode: {description: Octal mode as a string such as "0644"., type: str, required: true}
      owner: {description: Owner., type: str, default: root}
      group: {description: Group., type: str, default: root}
  record:
    description: The record of what kfinstall wrote on this host (JSON, mode 0600, root's).
    type: str
    default: /var/lib/kfinstall/record.json
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
    "src": {"type": "str", "default": None},
    "mode": {"type": "str", "required": True},
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
}



def missing_parents(path: str) -> list[str]:
    """The parent directories of path that do not exist, outermost first."""
    missing = []
    parent = os.path.dirname(path)
    while parent and not os.path.isdir(parent) and parent != os.path.dirname(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    return missing[::-1]


def make_parents(module: AnsibleModule, path: str, record: dict | None = None) -> bool:
    """Create the missing parent directories of path (root, 0755); whether any was missing."""
    missing = missing_parents(path)
    if not missing:
        return False
    if not module.check_mode:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if record is not None:
            for directory in missing:
                record["dirs"][directory] = {"created": True}
    return True


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The record -------------------------------------------------------------------------------------
#
# What kfinstall wrote, so that `kfinstall reset` removes exactly that and puts back what a file held
# before: derived from the roles' own writes, never from a second list of paths. Packages installed
# when the record is started (before kfinstall's first apt transaction: os_prepare writes its files
# first) tell reset which packages, and so which services, were there before kfinstall.

_DPKG_STATUS = "/var/lib/dpkg/status"


def installed_package_names(status_path: str = _DPKG_STATUS) -> list[str]:
    try:
        with open(status_path, encoding="utf-8", errors="replace") as handle:
            status = handle.read()
    except OSError:
        return []
    names = []
    for block in re.split(r"\n\s*\n", status):
        fields = dict(line.split(":", 1) for line in block.splitlines() if line[:1].strip() and ":" in line)
        if fields.get("Status", "").split()[1:] == ["ok", "installed"] and fields.get("Package"):
            names.append(fields["Package"].strip())
    return sorted(set(names))


def load_record(module: AnsibleModule, path: str) -> dict:
    """The record (module_utils/record.py), a new one when there is none yet; fails the module on one that
    cannot be used (nothing written)."""
    try:
        record = read_record(path)
    except RecordError as exc:
        module.fail_json(msg=f"{exc}; move it away to start a new one (kfinstall reset then removes only what "
                             "is recorded after that).")
    if record is None:
        return {"version": RECORD_VERSION, "packagesBefore": installed_package_names(), "files": {}, "dirs": {}}
    return record


def untrusted_record(module: AnsibleModule, path: str) -> None:
    """Fail (nothing written) where kfinstall.hosts.reset_files would refuse the record: its folder, originals/
    or the record a link, not root's (when running as root), or writable by group or others. A folder with
    no record in it yet holds nothing reset trusts, so a loose mode there (an operator's `mkdir -p`, a wide
    umask) is narrowed to 0700 instead: reset then works on every host kfinstall converged."""
    folder = os.path.dirname(path)
    has_record = os.path.lexists(path)
    for place in (folder, os.path.join(folder, ORIGINALS), path):
        problem = location_problem(place)
        if problem and "writable" in problem and not has_record and place != path and os.path.isdir(place):
            os.chmod(place, 0o700)
            continue
        if problem:
            module.fail_json(msg=f"kfinstall's record {path} is not to be trusted: {place} {problem}, so the "
                                 "record may have been changed by someone else (kfinstall reset acts on it); nothing "
                                 f"was written. Check who changed it, then make {folder} root's with mode 0700 "
                                 "(files 0600), or move it away to start a new record.")


def keep_original(record_path: str, path: str) -> str | None:
    """Copy what a regular file holds before kfinstall first replaces it; the copy's name, or None."""
    if not os.path.isfile(path) or os.path.islink(path):
        return None
    folder = os.path.join(os.path.dirname(record_path), ORIGINALS)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    name = sha256(path.encode("utf-8"))
    shutil.copy2(path, os.path.join(folder, name), follow_symlinks=False)
    return name


def wanted_bytes(module: AnsibleModule, spec: dict) -> bytes | None:
    """What the file is to hold: `content`, or the bytes of `src` on the host (None in check mode when src is
    not there yet: an earlier step that would create it did not run)."""
    if spec.get("src") is None:
        return spec["content"].encode("utf-8")
    if spec["content"]:
        module.fail_json(msg=f"{spec['path']}: give content or src, not both.")
    data = read_bytes(spec["src"])
    if data is None and not module.check_mode:
        module.fail_json(msg=f"{spec['path']}: its src {spec['src']} is not there.")
    return data


def note_file(module: AnsibleModule, record: dict, spec: dict, existed: bool, wanted: bytes) -> None:
    """Record a file entry: its content's digest and, the first time, what was there before."""
    path = spec["path"]
    entry = record["files"].get(path)
    digest = sha256(wanted)
    if entry is None:
        # A file that already holds this content (a lab image's apt source, a host converged before kfinstall
        # kept a record) is adopted, but its original is kept all the same: it was there before kfinstall, so
        # reset puts it back (leaves it as it is) instead of deleting what may be the operator's file.
        adopted = existed and read_bytes(path) == wanted
        entry = {"original": keep_original(module.params["record"], path) if existed else None,
                 "created": not existed, **({"adopted": True} if adopted else {})}
        if existed and os.path.islink(path):
            # The write below replaces the link itself (an atomic rename): reset puts the link back.
            entry["link"] = os.readlink(path)
        if entry["original"] is not None or "link" in entry:
            info = os.lstat(path)
            entry.update(uid=info.st_uid, gid=info.st_gid)
        record["files"][path] = entry
    entry["sha256"] = digest


def read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_content(module: AnsibleModule, spec: dict, wanted: bytes, diffs: list[dict]) -> bool:
    """Replace the file's content when it differs; whether it did (or would, in check mode)."""
    path = spec["path"]
    current = read_bytes(path)
    if current == wanted:
        return False
    if module._diff:
        hidden = spec.get("src") is not None  # a copy of a host file may hold credentials: never in a diff
        diffs.append({
            "before_header": path, "after_header": path,
            "before": "(not shown)" if hidden and current is not None
            else "" if current is None else current.decode("utf-8", "replace"),
            "after": f"(the content of {spec['src']})" if hidden else spec["content"],
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


def ensure(module: AnsibleModule, spec: dict, diffs: list[dict], record: dict | None = None) -> bool:
    path = spec["path"]
    if not os.path.isabs(path):
        module.fail_json(msg=f"kfinstall.hosts.files needs absolute paths, got {path!r}.")
    existed = os.path.lexists(path)
    changed = make_parents(module, path, record)
    if spec["state"] == "directory":
        changed = make_directory(module, path, diffs) or changed
        if record is not None and path not in record["dirs"]:
            record["dirs"][path] = {"created": not existed}
    else:
        wanted = wanted_bytes(module, spec)
        if wanted is None:
            return True  # check mode, src not there yet: the file would be written
        if record is not None and (path not in record["files"] or record["files"][path].get("sha256")
                                   != sha256(wanted)):
            # Before the write: the original is copied while it is still there.
            note_file(module, record, spec, existed, wanted)
        changed = write_content(module, spec, wanted, diffs) or changed
    if module.check_mode and not os.path.lexists(path):
        return True  # nothing to read the attributes of: the path would be created
    attributes = module.load_file_common_arguments(
        {"path": path, "mode": spec["mode"], "owner": spec["owner"], "group": spec["group"]})
    attributes["path"] = path  # load_file_common_arguments expands ~ and $VAR; the path is literal
    return module.set_fs_attributes_if_different(attributes, changed, expand=False)


def main() -> None:
    module = AnsibleModule(
        argument_spec={"files": {"type": "list", "elements": "dict", "required": True, "options": FILE_SPEC},
                       "record": {"type": "str", "default": "/var/lib/kfinstall/record.json"}},
        supports_check_mode=True,
    )
    diffs: list[dict] = []
    record_path = module.params["record"]
    if not module.check_mode:
        untrusted_record(module, record_path)
    record = None if module.check_mode else load_record(module, record_path)
    before = json.dumps(record, sort_keys=True)
    try:
        results = {spec["path"]: ensure(module, spec, diffs, record) for spec in module.params["files"]}
    finally:
        # A file already holding kfinstall's content (adopted) does not void packagesBefore: a host whose
        # packages an older kfinstall installed then lists them as there before the record, so reset keeps
        # them and their services (it says so), the safe side. Voiding it on any adopted file made reset
        # skip every fresh lab host, whose image already holds the lab's apt source as os_prepare writes it.
        # Also after a failure half-way: what was written is recorded.
        if record is not None and (json.dumps(record, sort_keys=True) != before or not os.path.exists(record_path)):
            save_record(record_path, record)
    module.exit_json(changed=any(results.values()), files=results, diff=diffs)


if __name__ == "__main__":
    main()
