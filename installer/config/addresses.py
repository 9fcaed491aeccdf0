"""Formats of the names and addresses kfinstall hands to SSH, kubeadm, kube-vip and chart values.

Each check returns None when the value is fine, else a short reason an operator can act on. The
rules are deliberately narrow: a value that reaches a command line (ssh's host argument, a gluster
peer), a config file or a certificate must be one token that cannot start an option (`-o...`), hold
a shell metacharacter, a space, a newline or template syntax (`{{`). Bad values are echoed only as a
short prefix (`preview`), so a problem line never carries a pasted secret or a page of payload.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

# RFC 1123 host names: dot-separated labels of letters, digits and '-', no label starting or ending
# with '-', at most 63 characters a label and 253 in all. Inventory names may also use '_' (common in
# Ansible inventories, e.g. gpu_node1); DNS names in kfinstall.yaml may not.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LABEL_UNDERSCORE = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_INVENTORY_NAME = re.compile(rf"^{_LABEL_UNDERSCORE}(?:\.{_LABEL_UNDERSCORE})*$")
# POSIX portable user names (useradd's default NAME_REGEX, plus upper case and '.'): no leading '-'.
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
MAX_NAME = 253
PREVIEW = 24  # characters of a bad value shown back to the operator


_KINDS: dict[type, str] = {bool: "a true/false", int: "a number", float: "a number", list: "a list",
                           tuple: "a list", dict: "a mapping", type(None): "an empty value"}


def preview(value: Any) -> str:
    """A bad value for a message: its type when not text, else at most PREVIEW characters, repr-quoted."""
    if not isinstance(value, str):
        return _KINDS.get(next((t for t in _KINDS if isinstance(value, t)), type(None)), "a value of another type")
    return repr(value[:PREVIEW] + ("..." if len(value) > PREVIEW else ""))


# An IPv6 zone (fe80::1%eth0) is an interface name. ipaddress takes any text after '%' (spaces,
# '$(...)', '{{ }}'), which would carry a shell fragment or a template through every address check.
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # IFNAMSIZ - 1


def is_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    zone = getattr(address, "scope_id", None)
    return zone is None or bool(_ZONE.fullmatch(zone))


def is_dns_label(text: str) -> bool:
    """One lowercase RFC 1123 label: a cluster name (state dir, Pulumi stack) or a model name."""
    return bool(_DNS_LABEL.fullmatch(text))


def is_dns_name(text: str) -> bool:
    return len(text) <= MAX_NAME and bool(_DNS_NAME.fullmatch(text)) and not _all_digits(text)


def _all_digits(text: str) -> bool:
    """Dotted digits (an IPv4 shorthand such as 10.1 or 3232235777) match the labels but are not names."""
    return all(label.isdigit() for label in text.rstrip(".").split("."))


def address_problem(value: Any) -> str | None:
    """An IPv4/IPv6 address or DNS name, as ansible_host and every peer address must be."""
    if not isinstance(value, str):
        return f"must be one IP address or DNS name, not {preview(value)}"
    if is_ip(value) or is_dns_name(value):
        return None
    return f"{preview(value)} is not an IP address or DNS name"


def inventory_name_problem(name: str) -> str | None:
    """An inventory host name: an IP address, or dot-separated labels of letters, digits, '-' and '_'."""
    if is_ip(name) or (len(name) <= MAX_NAME and _INVENTORY_NAME.fullmatch(name) and not name.startswith("-")):
        return None
    return f"host name {preview(name)} is not a host name or IP address"


def port_problem(value: Any) -> str | None:
    """A TCP port 1-65535, given as an integer (or digits, as INI inventories write every value)."""
    if isinstance(value, bool):
        return f"must be a port number 1-65535, not {preview(value)}"
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int):
        return f"must be a port number 1-65535, not {preview(value)}"
    if not 1 <= value <= 65535:
        return f"{value} is outside the port range 1-65535"
    return None


def user_problem(value: Any) -> str | None:
    if isinstance(value, str) and _USER.fullmatch(value):
        return None
    return f"{preview(value)} is not a user name (letters, digits, '_', '.', '-'; not starting with '-')"


def endpoint_problem(value: str) -> str | None:
    """host[:port] with an IPv4 address or DNS name (the roles split the port off at ':')."""
    host, sep, port = value.partition(":")
    if is_ip(host) or is_dns_name(host):
        return port_problem(port) if sep else None
    return f"{preview(value)} is not an IPv4 address or DNS name with an optional :port"


def url_problem(value: str, schemes: tuple[str, ...]) -> str | None:
    """scheme://host[:port][/path] with a valid host; no spaces, control characters or template syntax."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return f"{preview(value)} is not a URL (bad port or brackets)"
    if parts.scheme not in schemes or not parts.netloc:
        return f"{preview(value)} must start with {' or '.join(s + '://' for s in schemes)} followed by a host"
    host = parts.hostname or ""
    if parts.username is not None or not (is_ip(host) or is_dns_name(host)):
        return f"the host in {preview(value)} is not an IP address or DNS name"
    if port == 0:
        return "port 0 is outside the port range 1-65535"
    if any(c.isspace() or not c.isprintable() for c in value) or "{{" in value or "{%" in value:
        return f"{preview(value)} holds spaces, control characters or template syntax"
    return None
