#!/usr/bin/python
# Copyright: kfinstall authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Purge packages kfinstall installed, only when apt would remove nothing else (`kfinstall reset --purge-packages`).

apt-get removes every installed package that depends on one it purges; a package the operator installed
after kfinstall may depend on one of kfinstall's (curl, socat, iptables...). So apt is asked first
(`apt-get --simulate purge`) and nothing is purged when it would take any other package with them.
"""

from __future__ import annotations

import re

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: purge_packages
short_description: Purge packages only when apt would remove nothing but them
description:
  - Runs C(apt-get --simulate purge) on I(names) first. When apt would also remove a package not in I(names)
    (one that depends on them), nothing is purged and I(also) names those packages.
  - Held packages are purged too (kubeadm, kubelet and kubectl are held at their version).
  - Supports check mode (the simulation only).
options:
  names:
    description: The packages to purge, as apt-get takes them.
    type: list
    elements: str
    required: true
"""

RETURN = r"""
purged:
  description: The packages purged (in check mode, those that would be).
  returned: always
  type: list
also:
  description: Packages not in names that apt would have removed with them; non-empty means nothing was purged.
  returned: always
  type: list
"""

# A package name as apt-get takes it (name, name:arch, name=version); never an option.
PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+:=~_-]*$")
# apt-get --simulate prints one "Purg NAME [VERSION]" (or "Remv NAME ...") line per package it would remove.
REMOVAL = re.compile(r"^(?:Purg|Remv) (\S+)")
ENVIRONMENT = {"LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}


def removals(simulated: str) -> list[str]:
    """The packages (without :arch) an `apt-get --simulate purge` output says would go."""
    found = [m.group(1).split(":")[0] for m in map(REMOVAL.match, simulated.splitlines()) if m]
    return list(dict.fromkeys(found))


def apt_get(module: AnsibleModule, *argv: str) -> str:
    rc, out, err = module.run_command(["apt-get", *argv], environ_update=ENVIRONMENT)
    if rc != 0:
        module.fail_json(msg=f"apt-get {' '.join(argv)} failed (rc {rc}): {err.strip()[-2000:]}")
    return str(out)


def main() -> None:
    module = AnsibleModule(argument_spec={"names": {"type": "list", "elements": "str", "required": True}},
                           supports_check_mode=True)
    names = module.params["names"]
    bad = [name for name in names if not PACKAGE.match(name)]
    if bad:
        module.fail_json(msg=f"not package names: {bad}")
    if not names:
        module.exit_json(changed=False, purged=[], also=[])
    going = removals(apt_get(module, "--simulate", "--allow-change-held-packages", "purge", *names))
    wanted = {name.split(":")[0].split("=")[0] for name in names}
    also = [name for name in going if name not in wanted]
    if also or not going:
        module.exit_json(changed=False, purged=[], also=also)
    if not module.check_mode:
        apt_get(module, "--yes", "--allow-change-held-packages", "purge", *names)
    module.exit_json(changed=True, purged=going, also=[])


if __name__ == "__main__":
    main()
