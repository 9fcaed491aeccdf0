"""A role's own expressions, templated by Ansible's Templar with the role's defaults and vars: shared by
the playbook tests that check what a role would do with the extra vars kfinstall passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

ROLES = Path(__file__).resolve().parents[2] / "playbooks" / "roles"
# The roles' expressions call kfinstall's own collection (kfinstall.hosts.upstream_version, ...), which
# ships beside the roles: found the way ansible.cfg's collections_path finds it for ansible-playbook.
init_plugin_loader([str(ROLES.parent / "collections")])


def trusted(value: Any) -> Any:
    """The role's own text, trusted as templates the way Ansible trusts a role's files."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(v) for v in value]
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value


def role_templar(role: Path, variables: dict[str, Any]) -> Templar:
    """A Templar over the role's defaults/main.yml and vars/main.yml (vars win), then `variables`."""
    role_vars = {**yaml.safe_load((role / "defaults" / "main.yml").read_text()),
                 **yaml.safe_load((role / "vars" / "main.yml").read_text())}
    return Templar(loader=DataLoader(), variables={**trusted(role_vars), **variables})
