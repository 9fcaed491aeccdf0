"""`kfinstall plan` shows the configuration `up` would apply to what is installed, not the file alone:
up keeps an installed Kubernetes version that kfinstall.yaml leaves to the channel
(installer.up.against_installed), so plan's version, the hosts phase's package version and the
confirmation must say the same."""

from __future__ import annotations

import json
from typing import Any

from installer.applied import record_apply
from installer.config.load import load
from installer.plan import build_plan
from installer.plandiff import as_up_applies
from installer.state import State, write_state
from installer.up import against_installed


def _installed(site: Any, kubernetes_version: str) -> None:
    """state.json as `up` leaves it after a run whose hosts and platform phases succeeded."""
    cfg = load(site)
    write_state(cfg.state_dir, State(cluster=cfg.name, installed_channel=cfg.release.channel,
                                     kubernetes_version=kubernetes_version, phases_done=["hosts", "platform"]))


def test_plan_shows_the_installed_kubernetes_version_up_keeps(make_site: Any, kfinstall_streams: Any) -> None:
    site = make_site(cluster={"spec.kubernetes.version": "1.35"})
    _installed(site, "1.35")
    make_site(cluster={})  # the operator drops the version: the channel's default minor (1.34) in the file
    loaded = load(site)
    applied = against_installed(loaded)
    assert loaded.kubernetes_version != applied.kubernetes_version == "1.35"  # the case this test is about

    code, out, err = kfinstall_streams("plan", "-i", str(site), "-o", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["kubernetesVersion"] == applied.kubernetes_version
    hosts = next(p for p in plan["phases"] if p["name"] == "hosts")
    kubernetes = next(a for a in hosts["actions"] if a.startswith("kubernetes "))
    assert f"kubectl {applied.kubernetes_package_version})" in kubernetes
    assert plan["diff"]["settings"] == [] and plan["diff"]["refusals"] == []

    code, text, err = kfinstall_streams("plan", "-i", str(site))
    assert code == 0, err
    assert f"Kubernetes {applied.kubernetes_version}\n" in text


def _kubernetes_action(site: Any) -> str:
    plan = build_plan(as_up_applies(load(site))).as_dict()
    hosts = next(p for p in plan["phases"] if p["name"] == "hosts")
    return next(a for a in hosts["actions"] if a.startswith("kubernetes "))


def test_plan_on_a_built_cluster_joins_only_the_new_hosts(make_site: Any) -> None:
    """The role inits no cluster that exists and joins only hosts not yet in it: after a recorded
    apply, adding a worker is one join, not 'kubeadm init on cp1, join 3 more'."""
    site = make_site()
    assert "kubeadm init on cp1, join 2 more" in _kubernetes_action(site)  # fresh: init and every join
    record_apply(load(site), ("hosts",), run_id="built")
    make_site(hosts={"all.hosts.n3": {"ansible_host": "192.0.2.23"}, "all.children.kube_node.hosts.n3": None})

    action = _kubernetes_action(site)
    assert "kubeadm init" not in action.replace("no kubeadm init", "")
    assert "join the new 1 host(s): n3" in action
