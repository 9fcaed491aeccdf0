"""`kfinstall plan` says what `up` does: the hosts phase's actions come from the plays' own host lists
(containerd on the control planes too, only the Kubernetes play's hosts join) and the Kubernetes
version is the one the role installs (one value, ClusterConfig.kubernetes_package_version)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from issue_site import STORAGE_ONLY_HOSTS

from installer.config.load import load
from installer.plan import build_plan


def _hosts_phase(make_site: Any, **cluster: Any) -> dict[str, Any]:
    site = make_site(cluster={"spec.storage.gluster.enabled": True, **cluster},
                     hosts_text=yaml.safe_dump(STORAGE_ONLY_HOSTS, sort_keys=False))
    plan = build_plan(load(site, need_secrets=False)).as_dict()
    return next(p for p in plan["phases"] if p["name"] == "hosts")


def _action(phase: dict[str, Any], prefix: str) -> str:
    return next(a for a in phase["actions"] if a.startswith(prefix))


def test_containerd_is_planned_on_the_control_planes_too(make_site) -> None:  # type: ignore[no-untyped-def]
    containerd = _action(_hosts_phase(make_site), "containerd")
    assert "on 6 host(s): cp1, n1, n2 and 3 more" in containerd


def test_only_the_kubernetes_plays_hosts_join(make_site) -> None:  # type: ignore[no-untyped-def]
    phase = _hosts_phase(make_site)
    kubernetes = _action(phase, "kubernetes")
    assert "kubeadm init on cp1, join 5 more" in kubernetes
    cluster = next(s for s in phase["steps"] if s["playbook"] == "50-kubernetes.yml")
    assert set(cluster["hosts"]) == {"cp1", "n1", "n2", "n3", "n4", "n5"}
    storage = [s for s in phase["steps"] if s["playbook"] == "40-storage.yml"]
    assert storage[0]["hosts"] == ["nfs1"], "the NFS server play runs on the NFS-only host"
    assert "nfs1" not in storage[1]["hosts"], "the NFS client play runs on kube_node only"


@pytest.mark.parametrize(("version", "packages"), [("1.34.2", "1.34.2-*"), ("1.34", "1.34.*"), (None, None)])
def test_plan_and_role_get_the_same_kubernetes_package_version(make_site, version, packages) -> None:  # type: ignore[no-untyped-def]
    cluster = {"spec.kubernetes.version": version} if version else {}
    site = make_site(cluster=cluster)
    cfg = load(site, need_secrets=False)
    expected = packages or f"{cfg.release.kubernetes.default_minor}.*"
    assert cfg.kubernetes_package_version == expected
    assert cfg.ansible_vars()["kf_kubernetes_package_version"] == expected
    hosts = next(p for p in build_plan(cfg).as_dict()["phases"] if p["name"] == "hosts")
    assert f"(kubeadm, kubelet, kubectl {expected})" in _action(hosts, "kubernetes")


def test_a_v_prefixed_patch_reaches_apt_as_numbers_only(make_site) -> None:  # type: ignore[no-untyped-def]
    cfg = load(make_site(), need_secrets=False).with_kubernetes_version("v1.34.2")
    assert cfg.kubernetes_package_version == "1.34.2-*"


@pytest.mark.parametrize("written", ["", "  "])
def test_an_empty_kubernetes_version_is_the_channels_default(make_site, written: str) -> None:  # type: ignore[no-untyped-def]
    """The sample says "Empty means the channel's default minor": `version: ""` is read as unset, the same
    plan as leaving the key out (it was refused as "'' is not a version")."""
    empty = load(make_site(cluster={"spec.kubernetes.version": written}), need_secrets=False)
    unset = load(make_site(), need_secrets=False)
    assert empty.kubernetes_version_defaulted
    assert empty.kubernetes_version == unset.kubernetes_version
