"""kubeadm init deploys the control plane at the version the kubernetes role's packages installed.

kubeadm-config.yaml.j2 set no kubernetesVersion, so kubeadm defaulted it to "stable-1"
(cmd/kubeadm/app/apis/kubeadm/v1beta4/defaults.go, DefaultKubernetesVersion) and resolved that label
itself (cmd/kubeadm/app/util/version.go, KubernetesReleaseVersion): online the newest patch of its minor
from dl.k8s.io, which need not be the patch apt installed at kubernetes_package_version; offline, after
a 10 s timeout, its own binary's version. Now the ClusterConfiguration names the kubeadm package apt
installed (one source: kubernetes_package_version, ClusterConfig.kubernetes_package_version).

The role's own template and expressions, templated by Ansible with the extra vars kfinstall passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.template import Templar, trust_as_template
from role_templar import role_templar

from installer.config.load import load

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "kubernetes"


def _templar(extra: dict[str, Any]) -> Templar:
    host = {"ansible_host": "192.0.2.11"}
    facts = {"inventory_hostname": "cp1", "ansible_host": "192.0.2.11", "hostvars": {"cp1": host},
             "groups": {"kube_control_plane": ["cp1"]}, "ansible_managed": "managed by kfinstall",
             "_kubernetes_kubeadm_api": {"stdout": "kubeadm.k8s.io/v1beta4"}}
    return role_templar(ROLE, {**facts, **extra})


def _installed(apt_version: str) -> dict[str, Any]:
    """What the role registers from dpkg for the kubeadm package apt installed."""
    return {"_kubernetes_kubeadm_package": {"stdout": apt_version + "\n"}}


def _task(file: str, name: str) -> dict[str, Any]:
    return next(t for t in yaml.safe_load((ROLE / "tasks" / file).read_text()) if t["name"] == name)


def _cluster_configuration(templar: Templar) -> dict[str, Any]:
    text = templar.template(trust_as_template((ROLE / "templates" / "kubeadm-config.yaml.j2").read_text()))
    return next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "ClusterConfiguration")


@pytest.mark.parametrize(("version", "apt_installed", "control_plane"), [
    ("1.34.2", "1.34.2-1.1", "v1.34.2"),  # the operator's patch
    (None, "1.34.5-1.1", "v1.34.5"),  # the channel's minor: the newest patch apt found
    ("1.34", "1:1.34.3-2.1", "v1.34.3"),  # an epoch and another package revision
])
def test_kubeadm_init_deploys_the_version_the_packages_installed(make_site, version, apt_installed,
                                                                 control_plane) -> None:
    cfg = load(make_site(cluster={"spec.kubernetes.version": version} if version else {}), need_secrets=False)
    templar = _templar({**cfg.ansible_vars(), **_installed(apt_installed)})
    assert _cluster_configuration(templar)["kubernetesVersion"] == control_plane
    if version == "1.34.2":
        assert control_plane == "v" + cfg.kubernetes_version  # what `kfinstall plan` shows


def test_the_version_is_read_before_the_configuration_is_written() -> None:
    names = [t["name"] for t in yaml.safe_load((ROLE / "tasks" / "0030-init.yml").read_text())]
    read = names.index("Kubernetes | Read the kubeadm package version apt installed")
    check = names.index("Kubernetes | Check that kubeadm is the package version asked for")
    assert read < check < names.index("Kubernetes | Write the kubeadm configuration")
    registered = _task("0030-init.yml", "Kubernetes | Read the kubeadm package version apt installed")
    assert registered["register"] == "_kubernetes_kubeadm_package"


@pytest.mark.parametrize(("pattern", "apt_installed", "ok"), [
    ("1.34.2-*", "1.34.2-1.1", True),
    ("1.34.2-*", "1.34.20-1.1", False),  # another patch: kubeadm would deploy what plan did not show
    ("1.34.*", "1.34.7-1.1", True),
    ("1.34.*", "1.35.0-1.1", False),
])
def test_a_kubeadm_of_another_version_stops_before_init(pattern: str, apt_installed: str, ok: bool) -> None:
    check = _task("0030-init.yml", "Kubernetes | Check that kubeadm is the package version asked for")
    [that] = check["ansible.builtin.assert"]["that"]
    templar = _templar({"kf_kubernetes_minor": pattern[:4], "kf_kubernetes_package_version": pattern,
                        **_installed(apt_installed)})
    assert templar.template(trust_as_template("{{ " + that + " }}")) is ok
