"""`--limit PATTERN` (issue 15 item 1): Ansible's own host patterns, resolved to managed hosts; a
pattern that matches none is bad input (exit 2) naming the pattern and the hosts that exist."""

from __future__ import annotations

import pytest

from installer.config.load import load
from installer.errors import ConfigError
from installer.limit import ansible_limit, resolve_limit


@pytest.mark.parametrize(("pattern", "hosts"), [
    ("n1", ("n1",)),
    ("kube_node", ("n1", "n2")),
    ("kube_node:!n1", ("n2",)),
    ("kube_node:&nfs_server", ()),
    ("cp1,n2", ("cp1", "n2")),
    ("n?", ("n1", "n2")),
    ("n*", ("cp1", "n1", "n2")),  # globs match group names too: nfs_server holds cp1, as in Ansible
    ("~^(cp|n)1$", ("cp1", "n1")),
    ("all", ("cp1", "n1", "n2")),
])
def test_ansible_patterns_resolve_to_managed_hosts(make_site, pattern: str, hosts: tuple[str, ...]) -> None:
    cfg = load(make_site(), need_secrets=False)
    if not hosts:
        with pytest.raises(ConfigError):
            resolve_limit(cfg.inventory, pattern)
        return
    assert resolve_limit(cfg.inventory, pattern) == hosts


@pytest.mark.parametrize("pattern", ["h9", "localhost", "jump", "gluster"])
def test_a_pattern_matching_no_managed_host_names_it_and_the_hosts(make_site, pattern: str) -> None:
    cfg = load(make_site(), need_secrets=False)
    with pytest.raises(ConfigError) as raised:
        resolve_limit(cfg.inventory, pattern)
    assert raised.value.exit_code == 2
    assert repr(pattern) in raised.value.message and "cp1, n1, n2" in raised.value.message


@pytest.mark.parametrize("pattern", ["", "  ", "@/etc/passwd", "n1,@retry", "n1\nn2", "x" * 2000])
def test_not_a_pattern_is_refused_before_ansible_reads_anything(make_site, pattern: str) -> None:
    cfg = load(make_site(), need_secrets=False)
    with pytest.raises(ConfigError) as raised:
        resolve_limit(cfg.inventory, pattern)
    assert "--limit" in raised.value.message


def test_ansible_gets_the_resolved_names() -> None:
    assert ansible_limit(("n1", "n2")) == "n1,n2"
