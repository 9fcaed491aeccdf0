# Copyright: kfinstall authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that put inventory and config values into the storage roles' files and commands safely.

kfinstall validates these values before any SSH (installer/config/model.py); the roles can also run
on their own with any role variable, so each value is checked or escaped again where it is written:
a newline or a quote in a path or an option never adds a line to /etc/exports or ganesha.conf, and a
client entry is one address, network or name, never `*`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# The variables Ansible connects to a host by, in the order it reads them: ansible-core's
# MAGIC_VARIABLE_MAPPING["remote_addr"] is ("ansible_ssh_host", "ansible_host"), the first one set wins.
_CONNECT_ADDRESS_VARS = ("ansible_ssh_host", "ansible_host")
# RFC 1123 host names (dot-separated labels of letters, digits and '-').
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
# exports(5) options: words, some with =value (anonuid=1000, sec=sys:krb5).
_EXPORT_OPTION = re.compile(r"^[a-z_]+(=[A-Za-z0-9_.:/@+-]+)?$")
# Characters written as they are in an exports(5) path; any other is written as \ooo (octal).
_EXPORTS_PATH_SAFE = re.compile(r"[A-Za-z0-9_.,:/@+=-]")
PREVIEW = 24


def _preview(value: object) -> str:
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    return repr(value[:PREVIEW] + ("..." if len(value) > PREVIEW else ""))


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise AnsibleFilterError(f"{what} must be text, not {_preview(value)}")
    return value


def host_address(name: object, hostvars: object, own_var: str = "") -> str:
    """The address of inventory host `name` as the other hosts and the allowed-client lists must see it:
    its `own_var` (e.g. glusterfs_address) when set, else the address ssh uses (ansible_ssh_host, then
    ansible_host, as Ansible orders them), else the name. Read from hostvars, so hosts outside --limit
    have theirs too. An empty value counts as unset, as in installer/config/inventory.py."""
    host = _text(name, "an inventory host name")
    variables = hostvars[host] if isinstance(hostvars, Mapping) and host in hostvars else None
    if not isinstance(variables, Mapping):
        raise AnsibleFilterError(f"host {_preview(host)} is not in the inventory")
    for var in ((own_var,) if own_var else ()) + _CONNECT_ADDRESS_VARS:
        value = variables.get(var)
        if value not in (None, ""):
            return _text(value, f"{var} of host {host}")
    return host


def storage_client(value: object) -> str:
    """One allowed NFS or Gluster client: an IP address, a CIDR network or a DNS name (never `*`)."""
    text = _text(value, "an allowed client")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        network = None
    if network is not None:
        if network.prefixlen == 0:
            raise AnsibleFilterError(f"allowed client {_preview(text)} is every address; list networks instead")
        return text
    if len(text) <= 253 and _DNS_NAME.fullmatch(text) and not all(p.isdigit() for p in text.rstrip(".").split(".")):
        return text
    raise AnsibleFilterError(
        f"allowed client {_preview(text)} is not an IP address, CIDR network or DNS name ('*' is refused)"
    )


def storage_clients(values: object) -> list[str]:
    """A non-empty list of allowed clients, each checked by storage_client."""
    if not isinstance(values, list | tuple) or not values:
        raise AnsibleFilterError(f"the allowed clients must be a non-empty list, not {_preview(values)}")
    return [storage_client(v) for v in values]


def _absolute_path(value: object, what: str) -> str:
    text = _text(value, what)
    if not text.startswith("/"):
        raise AnsibleFilterError(f"{what} {_preview(text)} is not an absolute path")
    return text


def exports_path(value: object) -> str:
    """A path for /etc/exports: every character outside a plain set as a three-digit octal escape
    (exports(5)), so a space, quote, '#' or newline stays inside the path's one token."""
    text = _absolute_path(value, "the export path")
    out = []
    for char in text:
        if _EXPORTS_PATH_SAFE.fullmatch(char):
            out.append(char)
        else:
            out.extend(f"\\{byte:03o}" for byte in char.encode())
    return "".join(out)


def exports_options(value: object) -> str:
    """exports(5) options, checked word by word: nothing else can follow them on the line."""
    text = _text(value, "the export options")
    bad = [option for option in text.split(",") if not _EXPORT_OPTION.fullmatch(option)]
    if bad:
        raise AnsibleFilterError(
            f"export option {_preview(bad[0])} is not a word such as rw, sync or anonuid=1000 "
            "(no spaces, newlines, clients or parentheses)"
        )
    return text


def ganesha_string(value: object) -> str:
    """A double-quoted ganesha.conf string. Its parser has no escape for a newline, so a value
    holding a control character is refused; '\\' and '"' are escaped."""
    text = _text(value, "a ganesha.conf value")
    if any(not char.isprintable() for char in text):
        raise AnsibleFilterError(
            f"{_preview(text)} holds a newline or another control character, which ganesha.conf cannot hold"
        )
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {
            "host_address": host_address,
            "storage_client": storage_client,
            "storage_clients": storage_clients,
            "exports_path": exports_path,
            "exports_options": exports_options,
            "ganesha_string": ganesha_string,
        }
