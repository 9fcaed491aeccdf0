"""The kube_upgrade role installs kubeadm, kubelet and kubectl at the apt version the kubernetes role and
`kfinstall plan` use (ClusterConfig.kubernetes_package_version, kf_kubernetes_package_version): one rule.

It gave `kubeadm=1.34.2` for an X.Y.Z version, which apt cannot find (pkgs.k8s.io's versions carry a
package revision: 1.34.2-1.1). The role's own expressions, templated by Ansible with the extra vars a
Kubernetes hop passes (installer.upgrade.hops.kubernetes_hop: the hop configuration's ansible_vars).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.template import Templar, trust_as_template
from role_templar import role_templar, trusted

from installer.config.load import load
from installer.upgrade.hops import hop_config
from installer.upgrade.route import Hop

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "kube_upgrade"


def _templar(extra: dict[str, Any]) -> Templar:
    return role_templar(ROLE, {"groups": {}, **extra})


def _task(file: str, name: str) -> dict[str, Any]:
    return next(t for t in yaml.safe_load((ROLE / "tasks" / file).read_text()) if t["name"] == name)


def _packages(templar: Templar) -> list[str]:
    kubeadm = _task("packages.yml", "Kube upgrade | Install kubeadm for the target minor")["ansible.builtin.apt"]
    others = _task("kubelet.yml", "Kube upgrade | Install kubelet and kubectl for the target minor")
    return [templar.template(trusted(kubeadm["name"])),
            *templar.template(trusted(others["ansible.builtin.apt"]["name"]))]


def _hop(make_site, version: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    cfg = load(make_site(), need_secrets=False)
    hop = Hop(index=1, kind="kubernetes", from_channel=cfg.release.channel, to_channel=cfg.release.channel,
              kubernetes_from="1.33", kubernetes_to=version, changes=())
    target = hop_config(cfg, hop)
    return {"vars": target.ansible_vars(), "pattern": target.kubernetes_package_version}


@pytest.mark.parametrize("version", ["1.34.2", "1.34"])
def test_a_hop_installs_the_packages_at_the_kubernetes_roles_version(make_site, version: str) -> None:
    hop = _hop(make_site, version)
    packages = _packages(_templar(hop["vars"]))
    assert packages == [f"{p}={hop['pattern']}" for p in ("kubeadm", "kubelet", "kubectl")]
    if version == "1.34.2":
        assert packages[0] == "kubeadm=1.34.2-*", "the hop's patch, any package revision (1.34.2-1.1)"
    else:
        assert packages[0] == "kubeadm=1.34.*", "the newest patch of the hop's minor"


def test_the_packages_reachability_check_looks_for_the_same_version(make_site) -> None:
    """packages.yml reuses the kubernetes role's preflight: it must look for the version apt installs."""
    hop = _hop(make_site, "1.34.2")
    include = _task("packages.yml", "Kube upgrade | Point the package repository at the target minor")
    included = _templar(hop["vars"]).template(trusted(include["vars"]))
    assert included["kubernetes_minor"] == "1.34"
    assert included["kubernetes_package_version"] == "1.34.2-*"


@pytest.mark.parametrize(("minor", "pattern", "ok"), [
    ("1.34", "1.34.2-*", True),
    ("1.34", "1.34.*", True),
    ("1.34", "1.33.9-*", False),  # another minor than the hop's
    ("1.34", "1.34.2", False),  # a bare patch apt cannot find
])
def test_the_role_refuses_a_package_version_apt_would_not_find(minor: str, pattern: str, ok: bool) -> None:
    checks = _task("main.yml", "Kube upgrade | Check the inputs")["ansible.builtin.assert"]["that"]
    [check] = [c for c in checks if "kube_upgrade_package_version" in c]
    templar = _templar({"kf_kubernetes_minor": minor, "kf_kubernetes_package_version": pattern,
                        "kf_upgrade_action": "kubernetes"})
    assert templar.template(trust_as_template("{{ " + check + " }}")) is ok
