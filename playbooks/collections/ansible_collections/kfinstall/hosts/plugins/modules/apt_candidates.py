#!/usr/bin/python
# Copyright: kfinstall authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refresh apt's package index when asked, then read apt's candidate version of some packages.

The step before kfinstall's one apt transaction (roles/kf_defaults/tasks/install.yml): the candidates
are checked against the package table's minimum versions before anything is installed, and they must
come from the refreshed index. One module run for both: a refresh with ansible.builtin.apt and a read
with ansible.builtin.command were two round trips on a fresh host, and one `apt-cache policy` call
reads every package (a loop of commands was one round trip a package).
"""

from __future__ import annotations

import re
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: apt_candidates
short_description: Refresh apt's index when asked and read the candidate versions of packages
description:
  - Reports no change: a refreshed index is apt's cache, not the host's configuration.
  - In check mode the index is not refreshed (as with M(ansible.builtin.apt)); the candidates are still read.
  - Runs C(apt-get update --error-on=any) (the apt of Debian 12 and Ubuntu 22.04 on), up to three times,
    then one C(apt-cache policy) for all the packages, with C(LC_ALL=C).
options:
  refresh:
    description: Whether to refresh the index first.
    type: bool
    default: false
  packages:
    description: Package names whose candidate versions are returned; a name starting with C(-) is refused.
    type: list
    elements: str
    default: []
"""

RETURN = r"""
refreshed:
  description: Whether the index was refreshed.
  returned: always
  type: bool
candidates:
  description: Package name to apt's candidate version as apt-cache prints it; "" for a package apt does not know.
  returned: always
  type: dict
"""

# A package name as apt takes it (name, name:arch); never an option.
PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+:~_-]*$")
ENVIRONMENT = {"LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
REFRESH_ATTEMPTS = 3  # a mirror that drops one request does not stop the run (ansible.builtin.apt retries too)


def candidates(policy: str, packages: list[str]) -> dict[str, str]:
    """Each package's "Candidate:" from `apt-cache policy` output; "" when apt printed no block for it
    (an unknown package) or printed "(none)" (known, but no source offers it)."""
    found: dict[str, str] = {}
    current = None
    for line in policy.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            current = line[:-1]
        elif current is not None and line.strip().startswith("Candidate:"):
            value = line.split(":", 1)[1].strip()
            found[current] = "" if value == "(none)" else value
    return {name: found.get(name, "") for name in packages}


def refresh(module: AnsibleModule) -> None:
    error = ""
    for attempt in range(REFRESH_ATTEMPTS):
        rc, _, err = module.run_command(["apt-get", "-q", "update", "--error-on=any"], environ_update=ENVIRONMENT)
        if rc == 0:
            return
        error = str(err).strip()[-2000:]
        if attempt + 1 < REFRESH_ATTEMPTS:
            time.sleep(attempt + 1)
    module.fail_json(msg=f"apt-get update failed {REFRESH_ATTEMPTS} times; the last said: {error}")


def main() -> None:
    module = AnsibleModule(
        argument_spec={"refresh": {"type": "bool", "default": False},
                       "packages": {"type": "list", "elements": "str", "default": []}},
        supports_check_mode=True,
    )
    packages = module.params["packages"]
    bad = [name for name in packages if not PACKAGE.match(name)]
    if bad:
        module.fail_json(msg=f"not package names: {bad}")
    refreshed = bool(module.params["refresh"]) and not module.check_mode
    if refreshed:
        refresh(module)
    read: dict[str, str] = {}
    if packages:
        rc, out, err = module.run_command(["apt-cache", "policy", *packages], environ_update=ENVIRONMENT)
        if rc != 0:
            module.fail_json(msg=f"apt-cache policy failed (rc {rc}): {str(err).strip()[-2000:]}")
        read = candidates(str(out), packages)
    module.exit_json(changed=False, refreshed=refreshed, candidates=read)


if __name__ == "__main__":
    main()
