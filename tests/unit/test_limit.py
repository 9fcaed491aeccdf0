"""`--limit PATTERN` (issue 15 item 1): Ansible's own host patterns, resolved to managed hosts; a
pattern that matches none is bad input (exit 2) naming the pattern and the hosts that exist.

Ansible's rules relied on (ansible-core 2.19 lib/ansible/inventory/manager.py; the pattern syntax in
ansible/ansible-documentation docs/docsite/rst/inventory_guide/intro_patterns.rst): split_host_pattern splits
on ',' (else ':') and drops empty terms; order_patterns starts a pattern of only '!'/'&' terms from `all`;
_evaluate_patterns takes a term that is a host name as that host before any group of the same name; subset
(--limit) reads `@FILE` as a file of host names, and an empty subset is no limit at all."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("pattern", ["", "  ", "@/etc/passwd", "n1,@retry", "n1:@retry", "n1\nn2", "x" * 2000])
def test_not_a_pattern_is_refused_before_ansible_reads_anything(make_site, pattern: str) -> None:
    cfg = load(make_site(), need_secrets=False)
    with pytest.raises(ConfigError) as raised:
        resolve_limit(cfg.inventory, pattern)
    assert "--limit" in raised.value.message


def test_ansible_gets_the_resolved_names() -> None:
    assert ansible_limit(("n1", "n2")) == "n1,n2"


@pytest.mark.parametrize("pattern", [",", " , ", ":", "!", "&", "n1:&", "n1,!", "~(", "n1[5]", "kube_node[9]"])
def test_a_pattern_ansible_cannot_resolve_or_reads_as_every_host_is_bad_input(make_site, kfinstall_streams,
                                                                               pattern: str) -> None:
    """Ansible takes a pattern of empty terms (',' or ':' alone, as `--limit "$A,$B"` gives with both unset)
    as no limit, i.e. every host (ansible/inventory/manager.py: split_host_pattern drops empty terms, and an
    empty subset is no subset), and raises on a bad regex, a subscript past the group's end or a bare '!'
    or '&'. kfinstall refuses them (exit 2, a JSON document, no traceback) before anything runs, for reset
    (which would otherwise reset every host) as for up and plan."""
    site = make_site()
    for verb in ("plan", "reset"):
        code, out, err = kfinstall_streams(verb, "-i", str(site), "--limit", pattern, "--output", "json")
        assert code == 2, out + err
        assert "--limit" in json.loads(out)["error"] and "Traceback" not in err


def test_a_host_name_that_is_also_a_group_name_is_the_host(make_site) -> None:
    """As in Ansible, `--limit workers` is the host called workers, not the group workers (n1, n2)."""
    site = make_site(hosts={"all.hosts.workers": {"ansible_host": "192.0.2.30"},
                            "all.children.kube_node.hosts.workers": None,
                            "all.children.workers.hosts": {"n1": None, "n2": None}})
    assert resolve_limit(load(site, need_secrets=False).inventory, "workers") == ("workers",)


@pytest.mark.parametrize("name", ["gpu", "gluster", "kube_node", "all"])
def test_a_host_named_like_a_group_kfinstalls_plays_target_is_refused(make_site, kfinstall_streams, name) -> None:
    """Ansible takes `hosts: gpu` (30-gpu.yml) to the host called gpu before the group gpu, so the GPU host n1
    would get no driver while plan and validate counted it in gpu: bad input (exit 2) naming the host's line."""
    site = make_site(hosts={f"all.hosts.{name}": {"ansible_host": "192.0.2.30"},
                            f"all.children.kube_node.hosts.{name}": None, "all.children.gpu.hosts.n1": None})
    code, out, err = kfinstall_streams("inventory", "validate", "-i", str(site), "--output", "json")
    assert code == 2, out + err
    problems = json.loads(out)["problems"]
    assert any(p["key"] == f"all.hosts.{name}" and "also the name of a group" in p["message"] and p.get("line")
               for p in problems), problems
