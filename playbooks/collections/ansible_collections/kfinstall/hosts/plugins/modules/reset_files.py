#!/usr/bin/python
# Copyright: kfinstall authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Undo what kfinstall.hosts.files wrote on a host, from the record it kept there (`kfinstall reset`).

The list of files is never a second, hand-kept list: it is the record kfinstall.hosts.files writes as
the roles write their files. Only what the record names is touched, and only while it still holds
what kfinstall wrote; anything changed since, or not kfinstall's, is kept and reported.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kfinstall.hosts.plugins.module_utils.record import (
    ORIGINALS,
    RecordError,
    location_problem,
    read_record,
    save_record,
)

DOCUMENTATION = r"""
module: reset_files
short_description: Remove the files and directories kfinstall wrote, put back what they replaced
description:
  - Reads the record kfinstall.hosts.files keeps (I(record)).
  - A recorded file that still holds what kfinstall wrote is removed, or, when it replaced a file,
    that file's earlier content, mode and owner are put back. A file changed since, a link or
    anything else in its place is kept and reported.
  - Directories kfinstall created are removed when empty, deepest first; the data directories
    (I(data)) are kept with everything in them, unless I(purge_data) is true and kfinstall created
    them. Directories kfinstall did not create are never removed.
  - The record keeps what was kept, and the packages installed before kfinstall (returned as
    I(packages_before)). Supports check mode (nothing changes; the result says what would).
options:
  record:
    description: The record kfinstall.hosts.files keeps.
    type: str
    default: /var/lib/kfinstall/record.json
  data:
    description: Absolute paths of data directories (the NFS export, Gluster bricks); kept unless I(purge_data).
    type: list
    elements: str
    default: []
  purge_data:
    description: Remove the data directories kfinstall created, with their content.
    type: bool
    default: false
"""

RETURN = r"""
removed:
  description: Paths removed (files, then directories).
  returned: always
  type: list
restored:
  description: Files put back to what they held before kfinstall replaced them.
  returned: always
  type: list
adopted:
  description: Those of I(restored) that already held what kfinstall first wrote there (an older kfinstall's
    or the operator's copy of the same bytes, such as root's copy of admin.conf).
  returned: always
  type: list
kept:
  description: Path -> why it was kept.
  returned: always
  type: dict
created_dirs:
  description: The directories the record says kfinstall created (read before this run undoes anything).
  returned: always
  type: list
packages_before:
  description: The packages installed before kfinstall's first write on the host; null without a record.
  returned: always
  type: list
"""


def sha256_of(path: str) -> str | None:
    """The digest of a regular file (not followed through a link); None for anything else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    found = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            found.update(chunk)
    return found.hexdigest()


def within(path: str, folder: str) -> bool:
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder + "/")


def normal(path: str) -> str:
    """The path without extra or trailing slashes ("/srv//export/" -> "/srv/export"): what the module acts on
    and compares with the data directories. The record keeps its keys as written (files.py takes a path
    literally and names an original's copy after the key); "." and ".." parts are refused before this."""
    return "/" + "/".join(part for part in path.split("/") if part)


class Reset:
    def __init__(self, module: AnsibleModule, record: dict) -> None:
        self.module = module
        self.record = record
        self.removed: list[str] = []
        self.restored: list[str] = []
        self.adopted: list[str] = []  # restored, but the copy held kfinstall's own bytes (entry "adopted")
        self.kept: dict[str, str] = {}
        self.changed_record = False  # entries dropped: saved even when nothing on the host changed
        self.data = [normal(p) for p in module.params["data"]]
        self.originals = os.path.join(os.path.dirname(module.params["record"]), ORIGINALS)

    def in_data(self, path: str) -> bool:
        return any(within(path, folder) for folder in self.data)

    def files(self) -> None:
        for key, entry in sorted(self.record["files"].items()):
            path = normal(key)
            if self.in_data(path) and not self.module.params["purge_data"]:
                self.kept[path] = "in a data directory (kept without --purge-data)"
                continue
            current = sha256_of(path)
            if current is None:
                self.forget_file(key, entry)
            elif current != entry.get("sha256"):
                self.kept[path] = ("changed since kfinstall wrote it" if current != "not a regular file"
                                   else "no longer a regular file (a link or something else is there)")
            elif entry.get("link") is not None:
                self.restore_link(key, path, entry)
            elif entry.get("original"):
                self.restore(key, path, entry)
            elif entry.get("created") is not True:
                # There before kfinstall and no copy kept (a record of a kfinstall that adopted a file already
                # holding its content without a copy): it may be the operator's, so it stays as it is.
                self.kept[path] = "there before kfinstall (no copy of it was kept): left as it is"
                self.forget_file(key, entry)
            else:
                if not self.module.check_mode:
                    os.unlink(path)
                self.removed.append(path)
                self.forget_file(key, entry)

    def restore(self, key: str, path: str, entry: dict) -> None:
        saved = os.path.join(self.originals, entry["original"])
        try:
            saved_mode = os.lstat(saved).st_mode
        except FileNotFoundError:
            self.kept[path] = f"the content it replaced ({saved}) is gone"
            return
        if not stat.S_ISREG(saved_mode):
            # kfinstall.hosts.files writes the copy as a regular file; a link there would make reset copy any
            # file it points at over the host's file.
            self.kept[path] = f"the copy of the content it replaced ({saved}) is not a regular file"
            return
        if not self.module.check_mode:
            fd, staged = tempfile.mkstemp(prefix=".kfinstall.", dir=os.path.dirname(path))
            os.close(fd)
            shutil.copy2(saved, staged)
            if "uid" in entry:
                os.chown(staged, entry["uid"], entry["gid"])
            os.replace(staged, path)
        self.restored.append(path)
        if entry.get("adopted"):
            self.adopted.append(path)
        self.forget_file(key, entry)

    def restore_link(self, key: str, path: str, entry: dict) -> None:
        """Put back the symbolic link kfinstall's file replaced (files.py records its target)."""
        if not self.module.check_mode:
            staged = tempfile.mktemp(prefix=".kfinstall.", dir=os.path.dirname(path))
            os.symlink(entry["link"], staged)  # fails rather than follows when the name was taken meanwhile
            if "uid" in entry:
                os.lchown(staged, entry["uid"], entry["gid"])
            os.replace(staged, path)
        self.restored.append(path)
        self.forget_file(key, entry)

    def forget_file(self, path: str, entry: dict) -> None:
        if self.module.check_mode:
            return
        self.changed_record = True
        self.record["files"].pop(path, None)
        if entry.get("original"):
            try:
                os.unlink(os.path.join(self.originals, entry["original"]))
            except FileNotFoundError:
                pass

    def directories(self) -> None:
        # Deepest first, so a directory kfinstall made inside another is gone before its parent is tried.
        for key in sorted(self.record["dirs"], key=lambda p: (-normal(p).count("/"), normal(p))):
            entry = self.record["dirs"][key]
            path = normal(key)
            if not entry.get("created"):
                self.forget_dir(key)  # not kfinstall's: nothing to undo
                continue
            if self.in_data(path):
                if not self.module.params["purge_data"]:
                    self.kept[path] = "a data directory (kept without --purge-data)"
                    continue
                self.remove_tree(key, path)
                continue
            self.remove_empty(key, path)

    def still_a_directory(self, key: str, path: str) -> bool:
        """Whether `path` is still the directory the record names; if not, the record forgets it (gone)
        or it is kept and listed (replaced by a file or a link)."""
        if not os.path.lexists(path):
            self.forget_dir(key)
            return False
        if os.path.islink(path) or not os.path.isdir(path):
            self.keep(path, "no longer a directory")
            return False
        return True

    def remove_tree(self, key: str, path: str) -> None:
        if not self.still_a_directory(key, path):
            return
        if not self.module.check_mode:
            shutil.rmtree(path)
        self.removed.append(path)
        self.forget_dir(key)

    def remove_empty(self, key: str, path: str) -> None:
        if not self.still_a_directory(key, path):
            return
        left = [name for name in os.listdir(path)
                if not (self.module.check_mode and os.path.join(path, name) in self.removed)]
        if left:
            self.keep(path, f"holds {len(left)} entries kfinstall did not write (or kept)")
            return
        if not self.module.check_mode:
            os.rmdir(path)
        self.removed.append(path)
        self.forget_dir(key)

    def keep(self, path: str, reason: str) -> None:
        self.kept[path] = reason

    def forget_dir(self, key: str) -> None:
        if not self.module.check_mode:
            self.changed_record = True
            self.record["dirs"].pop(key, None)


def record_error(record: dict) -> str | None:
    """What in a record's entries reset must not act on: a path that is not absolute or holds . or .., an
    original's name other than the one kfinstall.hosts.files gives it (the sha256 of the path), which
    would point reset at any file to copy from and then unlink."""
    for kind in ("files", "dirs"):
        for path, entry in record[kind].items():
            # Extra and trailing slashes are allowed (the site's settings allow "/data/gluster/", which
            # kfinstall.hosts.files records as given): they name the same file, and the module acts on normal(path)
            # only. "." and ".." are refused: what a forger would use, and ".." after a link is not lexical.
            if not isinstance(path, str) or not os.path.isabs(path) or {".", ".."} & set(path.split("/")):
                return f"{kind} entry {path!r} is not an absolute path without . or .. parts"
            if not isinstance(entry, dict):
                return f"{kind} entry {path!r} is not a mapping"
    for path, entry in record["files"].items():
        original = entry.get("original")
        if original is not None and (not isinstance(original, str) or not re.fullmatch(r"[0-9a-f]{64}", original)
                                     or original != hashlib.sha256(path.encode("utf-8")).hexdigest()):
            return f"files entry {path!r} names the original {original!r}, not the copy kfinstall made of it"
        if any(not isinstance(entry.get(key, 0), int) or isinstance(entry.get(key), bool) for key in ("uid", "gid")):
            return f"files entry {path!r} has an owner that is not a number"
        link = entry.get("link")
        if link is not None and (not isinstance(link, str) or not link or "\0" in link):
            return f"files entry {path!r} names a link target that is not a path"
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "record": {"type": "str", "default": "/var/lib/kfinstall/record.json"},
            "data": {"type": "list", "elements": "str", "default": []},
            "purge_data": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    for path in module.params["data"]:
        if not os.path.isabs(path) or os.path.normpath(path) == "/":
            module.fail_json(msg=f"data directory {path!r} refused: give an absolute path below /.")
    record_path = module.params["record"]
    originals = os.path.join(os.path.dirname(record_path), ORIGINALS)
    for place in (os.path.dirname(record_path), record_path, originals):
        unsafe = location_problem(place)
        if unsafe:
            module.fail_json(msg=f"kfinstall's record is not to be trusted: {place} {unsafe}; nothing was removed. "
                                 "Check who changed it; kfinstall keeps it root's, mode 0700 (folders) and 0600.")
    try:
        record = read_record(record_path)
    except RecordError as exc:
        module.fail_json(msg=f"{exc}; nothing was removed.")
    if record is None:
        module.exit_json(changed=False, removed=[], restored=[], adopted=[], kept={}, packages_before=None,
                         created_dirs=[], msg=f"no record at {record_path}: kfinstall wrote no file on this host")
    damaged = record_error(record)
    if damaged:
        module.fail_json(msg=f"kfinstall's record {record_path} is damaged or forged: {damaged}; nothing was removed.")
    # Which work directories kfinstall made: reset.yml undoes a role's outside-the-record work (kubeadm reset)
    # only on a host whose record shows that role's own directory as kfinstall's.
    created_dirs = sorted(path for path, entry in record["dirs"].items() if entry.get("created"))
    reset = Reset(module, record)
    try:
        reset.files()
        reset.directories()
    finally:
        # Also when a step failed half-way: what is undone is off the record, so a re-run goes on from there.
        if not module.check_mode and reset.changed_record:
            save_record(record_path, record)
    module.exit_json(changed=bool(reset.removed or reset.restored), removed=reset.removed, restored=reset.restored,
                     adopted=reset.adopted, kept=reset.kept, packages_before=record.get("packagesBefore"), created_dirs=created_dirs)


if __name__ == "__main__":
    main()
