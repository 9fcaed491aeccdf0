"""hosts.yml problems carry file:line:column, YAML and INI; a group one slip away from a role group is named.

The inventory is read once, by Ansible: kfinstall's own pass over a YAML file is libyaml's event
scan (limits, duplicate keys, positions), never a second full parse.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from installer.config import yamlfile
from installer.config.inventory import near_role_group
from installer.config.load import load
from installer.config.problems import InvalidConfig, Problems
from installer.config.yamlfile import INVENTORY_LIMITS, parse_yaml_text, scan_yaml_text

YAML_SITE = """\
all:
  hosts:
    cp1: {ansible_host: 192.0.2.11}
    n1: {ansible_host: 192.0.2.21}
    n2:
      ansible_host: 192.0.2.21
    loner: {ansible_host: 192.0.2.40}
  children:
    kube_control_plane:
      hosts: {cp1: }
    kube_node:
      hosts:
        n1:
        n2:
    nfs_server:
      hosts: {cp1: }
    gpu:
      hosts:
        cp1:
"""

INI_SITE = """\
# hosts.ini
[kube_control_plane]
cp1 ansible_host=192.0.2.11

[kube_node]
n1 ansible_host=192.0.2.21
n2 ansible_host=192.0.2.21
[nfs_server]
cp1
[gpu]
cp1
[other]
  loner ansible_host=192.0.2.40
"""


def problem_lines(site: Path) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        load(site)
    return caught.value.lines()


def ini_site(make_site, text: str) -> Path:
    site = make_site(hosts_text=text, hosts_name="hosts.ini")
    (site / "hosts.yml").unlink(missing_ok=True)
    return site


@pytest.mark.parametrize(("expected"), [
    "error: hosts.yml:7:5: all.hosts.loner: host is in no role group.",
    "error: hosts.yml:6:7: all.hosts.n2.ansible_host: address 192.0.2.21 is also used by host n1.",
    "error: hosts.yml:19:9: gpu.hosts.cp1: gpu host is not in kube_node.",
])
def test_role_group_problems_in_yaml_carry_line_and_column(make_site, expected) -> None:
    lines = problem_lines(make_site(hosts_text=YAML_SITE))
    assert any(line.startswith(expected) for line in lines), "\n".join(lines)


@pytest.mark.parametrize(("expected"), [
    "error: hosts.ini:13:3: all.hosts.loner: host is in no role group.",
    "error: hosts.ini:7:4: all.hosts.n2.ansible_host: address 192.0.2.21 is also used by host n1.",
    "error: hosts.ini:11:1: gpu.hosts.cp1: gpu host is not in kube_node.",
])
def test_role_group_problems_in_ini_carry_line_and_column(make_site, expected) -> None:
    lines = problem_lines(ini_site(make_site, INI_SITE))
    assert any(line.startswith(expected) for line in lines), "\n".join(lines)


def workers_in(group: str, role_too: bool = False) -> str:
    """cp1 in the control plane and NFS roles; n1 and n2 in `group` (and in kube_node when role_too)."""
    extra = "    kube_node:\n      hosts: {n1: , n2: }\n" if role_too else ""
    return ("all:\n  hosts:\n    cp1: {ansible_host: 192.0.2.11}\n    n1: {ansible_host: 192.0.2.21}\n"
            "    n2: {ansible_host: 192.0.2.22}\n  children:\n    kube_control_plane: {hosts: {cp1: }}\n"
            f"    nfs_server: {{hosts: {{cp1: }}}}\n{extra}    {group}:\n      hosts: {{n1: , n2: }}\n")


# kube-node is Kubespray's old name, read as kube_node with a warning (tests/unit/test_inventory_legacy.py).
@pytest.mark.parametrize("group", ["kube_nodes", "Kube_Node", "kube_nod", "kbue_node"])
def test_a_group_close_to_an_empty_role_group_is_an_error_naming_the_fix(make_site, group) -> None:
    lines = problem_lines(make_site(hosts_text=workers_in(group)))
    expected = (f"error: hosts.yml:9:5: {group}: group {group} (2 host(s)) is not a role group, and kube_node is "
                f"empty: up would give these hosts no kube_node role. Fix: rename the group {group} to kube_node")
    assert expected in lines, "\n".join(lines)
    # The hosts themselves say where they are and what to rename.
    assert any(f"all.hosts.n1: host is in no role group (it is in {group}, not kube_node). "
               f"Fix: rename the group {group} to kube_node" in line for line in lines), "\n".join(lines)


def test_a_close_group_beside_a_populated_role_group_is_a_warning(make_site) -> None:
    cfg = load(make_site(hosts_text=workers_in("kube_nodes", role_too=True)))
    warnings = [p.render() for p in cfg.warnings if p.key == "kube_nodes"]
    assert warnings == ["warning: hosts.yml:11:5: kube_nodes: group kube_nodes looks like the role group kube_node, "
                        "but kfinstall gives its hosts no role from it. Fix: rename it to kube_node if that was "
                        "meant, or give it a name further from the role groups"]


def test_a_close_group_in_an_ini_inventory_is_named_at_its_header(make_site) -> None:
    ini = ("[kube_control_plane]\ncp1 ansible_host=192.0.2.11\n[nfs_server]\ncp1\n"
           "[gpus]\nn1 ansible_host=192.0.2.21\n[kube_node]\nn1\n")
    lines = problem_lines(ini_site(make_site, ini))
    assert any(line.startswith("error: hosts.ini:5:2: gpus: group gpus (1 host(s)) is not a role group, and gpu "
                               "is empty") and line.endswith("Fix: rename the group gpus to gpu")
               for line in lines), "\n".join(lines)


@pytest.mark.parametrize(("group", "role"), [
    ("kube_nodes", "kube_node"), ("kube-node", "kube_node"), ("gpus", "gpu"), ("GPU", "gpu"),
    ("kube_control_planes", "kube_control_plane"), ("kube-master", "kube_control_plane"),
    ("nfs_servers", "nfs_server"), ("nfs-server", "nfs_server"), ("glusterfs", "gluster"), ("gluter", "gluster"),
    # Not role groups' slips: Kubespray's own groups, the operator's names, and short names one letter
    # from gpu (a `cpu` group is a CPU-only pool, not a typo).
    ("etcd", None), ("k8s_cluster", None), ("cpu", None), ("gpu1", None), ("gpu", None), ("kube_node", None),
    ("lab_vm", None), ("workers", None), ("ungrouped", None), ("all", None),
])
def test_near_role_group(group, role) -> None:
    assert near_role_group(group) == role


def test_kubespray_groups_are_not_reported(make_site) -> None:
    text = workers_in("etcd", role_too=True) + "    k8s_cluster:\n      children: {kube_control_plane: , kube_node: }\n"
    cfg = load(make_site(hosts_text=text))
    assert not [p for p in cfg.warnings if p.key in {"etcd", "k8s_cluster"}]


def test_hosts_yml_is_not_parsed_by_ruamel(make_site, monkeypatch) -> None:
    """Ansible parses hosts.yml; kfinstall's own pass is the event scan (ruamel took ~0.5 s for 1,000 hosts)."""
    site = make_site()
    hosts_text = (site / "hosts.yml").read_text()
    real = yamlfile.parse_yaml_text

    def guarded(text: str, *args, **kwargs):
        assert text != hosts_text, "hosts.yml went through ruamel's round-trip parser"
        return real(text, *args, **kwargs)

    monkeypatch.setattr(yamlfile, "parse_yaml_text", guarded)
    assert load(site).inventory.names("kube_node") == ["n1", "n2"]


def test_scan_positions_match_ruamels() -> None:
    """Every mapping key and list item the scan places is where ruamel's round trip places it."""
    text = (Path(__file__).resolve().parents[2] / "inventories" / "private-gpu" / "hosts.yml").read_text()
    text += "  vars:\n    list: [a, {b: 1}]\n    block:\n      - x\n      - y: 2\n"
    scanned = scan_yaml_text(text, Path("hosts.yml"), "hosts.yml", Problems(), limits=INVENTORY_LIMITS)
    loaded = parse_yaml_text(text, Path("hosts.yml"), "hosts.yml", Problems(), limits=INVENTORY_LIMITS)
    assert scanned is not None and loaded is not None
    assert len(scanned.keys) > 30
    for keys, place in scanned.keys.items():
        assert loaded.position(keys) == place, keys
    assert scanned.nodes == loaded.nodes


@pytest.mark.parametrize(("text", "expected"), [
    ("all:\n  hosts:\n    n1:\n    n1:\n", "hosts.yml:4:5: YAML syntax error: duplicate key"),
    ("all:\n  hosts: {n1: }\n---\nall: {}\n", "hosts.yml:3:1: more than one YAML document"),
    ("all:\n  hosts: [\n", "hosts.yml:3:1: YAML syntax error: did not find expected node content"),
    ("all:\n  vars: {x: *nothing}\n", "hosts.yml:2:13: all.vars.x: alias *nothing names no anchor defined before it"),
    ("all: &a\n  vars: {x: *a}\n", "hosts.yml:2:13: all.vars.x: an alias refers to a node that contains it"),
])
def test_scan_refuses_with_line_and_column(text, expected) -> None:
    problems = Problems()
    assert scan_yaml_text(text, Path("hosts.yml"), "hosts.yml", problems, limits=INVENTORY_LIMITS) is None
    assert any(expected in p.render() for p in problems.items), [p.render() for p in problems.items]


def test_scan_accepts_what_ansible_reads() -> None:
    """Keys that differ only by quoting are different keys (Ansible reads '1' and 1 apart); tags are Ansible's."""
    text = "all:\n  vars:\n    '1': a\n    1: b\n    secret: !unsafe '{{ x }}'\n"
    problems = Problems()
    assert scan_yaml_text(text, Path("h.yml"), "h.yml", problems, limits=INVENTORY_LIMITS) is not None
    assert not problems.items
    assert yaml.safe_load(text.replace("!unsafe ", ""))
