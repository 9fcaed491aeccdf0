"""`--limit PATTERN`: which hosts a day-2 command touches, resolved by Ansible's own host patterns.

The pattern means what it means to `ansible-playbook --limit` (names, groups, `a:b`, `a:&b`, `a:!b`,
`*` globs, `~regex`, ranges), because Ansible's InventoryManager, the one that read the site's
inventory, resolves it. kfinstall then hands Ansible the resolved host names, not the pattern, so a run
touches exactly the hosts that `plan` showed. Only hosts in a role group count: a pattern matching
nothing kfinstall manages is bad input (exit 2) naming the pattern and the hosts that exist.

Shared by `up --limit`, `plan --limit` and `reset --limit`: callers use resolve_limit and
ansible_limit only.
"""

from __future__ import annotations

from collections.abc import Sequence

from installer.config.inventory import ROLE_GROUPS, Inventory
from installer.errors import ConfigError

MAX_PATTERN = 1024  # a host pattern is a line of names and groups; anything longer is not one
SHOWN_HOSTS = 20  # hosts named in the error; the rest counted


def resolve_limit(inventory: Inventory, pattern: str, option: str = "--limit") -> tuple[str, ...]:
    """The managed hosts `pattern` matches, in inventory order; ConfigError (exit 2) when none does."""
    _check_pattern(pattern, option)
    managed = [h.name for h in inventory.hosts if set(h.roles) & set(ROLE_GROUPS)]
    try:
        matched = set(inventory.pattern_hosts(pattern))
    except Exception as exc:  # Ansible's AnsibleError (a bad ~regex, a subscript past the end) or its IndexError
        raise ConfigError(f"{option} {pattern!r} is not a host pattern Ansible can resolve ({_first_line(exc)}); "
                          "give host names or groups separated by ','") from None
    found = tuple(name for name in managed if name in matched)
    if not found:
        shown = ", ".join(managed[:SHOWN_HOSTS]) + (f" and {len(managed) - SHOWN_HOSTS} more"
                                                     if len(managed) > SHOWN_HOSTS else "")
        raise ConfigError(
            f"{option} {pattern!r} matches no host of {inventory.path}; its hosts are: {shown or '(none)'}. "
            "Give a host name, a group (e.g. kube_node) or an Ansible pattern such as 'h4,h5' or 'kube_node:!h1'"
        )
    return found


def ansible_limit(hosts: Sequence[str]) -> str:
    """The --limit value for ansible-playbook: the resolved names, so Ansible re-resolves nothing."""
    return ",".join(hosts)


def _check_pattern(pattern: str, option: str) -> None:
    if not pattern.strip():
        raise ConfigError(f"{option} is empty; give a host name, a group or an Ansible host pattern")
    if len(pattern) > MAX_PATTERN or not pattern.isprintable():
        raise ConfigError(f"{option}: not a host pattern (over {MAX_PATTERN} characters or control characters); "
                          "give host names or groups separated by ','")
    from ansible.inventory.manager import split_host_pattern

    # Ansible reads a pattern whose terms are all empty (',', ':', "$A,$B" with both unset) as no limit at all,
    # i.e. every host, and fails on a bare '!' or '&': neither is what an operator who typed a limit meant.
    terms = split_host_pattern(pattern)
    if not terms or any(not term.lstrip("!&").strip() for term in terms):
        raise ConfigError(f"{option} {pattern!r} names no host (an empty term, or '!'/'&' with nothing after it; "
                          "Ansible would take it as every host); give host names or groups separated by ','")
    if any(term.startswith("@") for term in terms):  # Ansible's subset reads each such term's file
        # ansible-playbook would read host names from that file; kfinstall reads no file the option names.
        raise ConfigError(f"{option} {pattern!r}: '@FILE' (a retry file) is not taken; "
                          "list the hosts instead, e.g. --limit 'h4,h5'")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
