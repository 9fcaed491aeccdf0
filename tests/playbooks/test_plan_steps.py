"""The hosts phase's plan steps are exactly the hosts Ansible targets: compared, play by play, with
`ansible-playbook --list-hosts playbooks/site.yml -i INV` on INI and YAML inventories (hosts only in
nfs_server or only in gluster, Kubespray's extra groups etcd and k8s_cluster, host ranges)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from issue_site import STORAGE_ONLY_HOSTS

from installer.config.load import load
from installer.plan import build_plan

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

GLUSTER = {"storage.gluster.enabled": True}

# Kubespray's layout: etcd beside the control planes, k8s_cluster the parent of kube_control_plane and
# kube_node, an empty calico_rr; plus a host range, an NFS-only and a Gluster-only host.
INI_KUBESPRAY = """\
[all]
cp1 ansible_host=192.0.2.11
cp2 ansible_host=192.0.2.12
cp3 ansible_host=192.0.2.13
w[1:4] ansible_user=ubuntu
nfs ansible_host=192.0.2.30
brick[1:3] ansible_host=192.0.2.4[0:0]

[kube_control_plane]
cp[1:3]

[etcd]
cp[1:3]

[kube_node]
w[1:4]

[gpu]
w2

[nfs_server]
nfs

[gluster]
brick[1:3]

[calico_rr]

[k8s_cluster:children]
kube_control_plane
kube_node
calico_rr
"""

# YAML with the role groups nested under k8s_cluster and a host in two role groups.
YAML_NESTED = {
    "all": {
        "children": {
            "k8s_cluster": {
                "children": {
                    "kube_control_plane": {"hosts": {"cp1": {"ansible_host": "192.0.2.11"}}},
                    "kube_node": {
                        "hosts": {"w1": {"ansible_host": "192.0.2.21"}, "w2": {"ansible_host": "192.0.2.22"}},
                        "children": {"gpu": {"hosts": {"w3": {"ansible_host": "192.0.2.23"}}}},
                    },
                },
            },
            "etcd": {"hosts": {"cp1": None}},
            "nfs_server": {"hosts": {"w1": None}},
        },
    }
}


def _ini_brick_addresses(text: str) -> str:
    """brick[1:3] cannot share one ansible_host: give each its own address line."""
    return text.replace("brick[1:3] ansible_host=192.0.2.4[0:0]\n",
                        "".join(f"brick{i} ansible_host=192.0.2.4{i}\n" for i in range(1, 4)))


CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "yaml-storage-only-hosts": (GLUSTER, "hosts.yml", yaml.safe_dump(STORAGE_ONLY_HOSTS, sort_keys=False)),
    "ini-kubespray-groups": (
        {**GLUSTER, "kubernetes.controlPlaneEndpoint": "192.0.2.100", "gpu.enabled": True},
        "hosts.ini",
        _ini_brick_addresses(INI_KUBESPRAY),
    ),
    "yaml-nested-k8s-cluster": ({}, "hosts.yml", yaml.safe_dump(YAML_NESTED, sort_keys=False)),
}

_PLAY = re.compile(r"^  play #\d+ \((?P<pattern>.*)\): (?P<name>.*?)\tTAGS: ")
_HOST = re.compile(r"^      (?P<host>\S+)$")


def list_hosts(inventory: Path) -> list[tuple[str, set[str]]]:
    """(play name, hosts) of each play, in order, as ansible-playbook --list-hosts prints them."""
    done = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "--list-hosts", str(REPO / "playbooks" / "site.yml"), "-i", str(inventory)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    plays: list[tuple[str, set[str]]] = []
    for line in done.stdout.splitlines():
        if play := _PLAY.match(line):
            plays.append((play["name"], set()))
        elif (host := _HOST.match(line)) and plays:
            plays[-1][1].add(host["host"])
    return plays


def _spec(changes: dict[str, Any]) -> dict[str, Any]:
    return {f"spec.{key}": value for key, value in changes.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_steps_are_the_hosts_ansible_playbook_lists(make_site, case: str) -> None:  # type: ignore[no-untyped-def]
    changes, name, text = CASES[case]
    site = make_site(cluster=_spec(changes), hosts_text=text, hosts_name=name)
    cfg = load(site, need_secrets=False)
    hosts_phase = next(p for p in build_plan(cfg).as_dict()["phases"] if p["name"] == "hosts")
    planned = [(step["play"], set(step["hosts"])) for step in hosts_phase["steps"]]
    assert planned == list_hosts(site / name)
    for step in hosts_phase["steps"]:
        plays = yaml.safe_load((REPO / "playbooks" / step["playbook"]).read_text())
        assert step["play"] in [p.get("name") for p in plays], f"{step['play']} is not a play of {step['playbook']}"
        assert len(step["hosts"]) == len(set(step["hosts"])), "each host once per step"


def test_steps_follow_site_yml_import_chain() -> None:
    from installer.paths import data_dir
    from installer.phases.hosts import site_plays

    files = [playbook for playbook, _, _ in site_plays(data_dir("playbooks"))]
    imported = [item["ansible.builtin.import_playbook"]
                for item in yaml.safe_load((REPO / "playbooks" / "site.yml").read_text())]
    assert list(dict.fromkeys(files)) == imported
