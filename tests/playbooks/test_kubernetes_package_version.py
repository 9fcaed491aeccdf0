"""The kubernetes role installs kubeadm, kubelet and kubectl at the version `kfinstall plan` shows:
the role's own expressions, templated by Ansible with the extra vars kfinstall passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.template import Templar, trust_as_template
from role_templar import role_templar, trusted

from installer.config.load import load

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "kubernetes"


def _templar(extra: dict[str, Any]) -> Templar:
    return role_templar(ROLE, extra)


def _task(file: str, name_start: str) -> dict[str, Any]:
    tasks = yaml.safe_load((ROLE / "tasks" / file).read_text())
    return next(t for t in tasks if t["name"].startswith(name_start))


@pytest.mark.parametrize("version", ["1.34.2", "1.34", None])
def test_role_installs_the_packages_plan_shows(make_site, version) -> None:  # type: ignore[no-untyped-def]
    cfg = load(make_site(cluster={"spec.kubernetes.version": version} if version else {}), need_secrets=False)
    install = _task("0020-packages.yml", "Kubernetes | Install the packages")["ansible.builtin.apt"]["name"]
    installed = _templar(cfg.ansible_vars()).template(trusted(install))
    assert installed == [f"{p}={cfg.kubernetes_package_version}" for p in ("kubelet", "kubeadm", "kubectl")]
    if version == "1.34.2":
        assert installed[1] == "kubeadm=1.34.2-*", "the operator's patch, any package revision (1.34.2-1.1)"


@pytest.mark.parametrize(("pin", "offered", "usable"), [
    ("1.34.2-*", ["1.34.20-1.1", "1.34.2-1.1", "1.34.1-1.1"], ["1.34.2-1.1"]),
    ("1.34.2-*", ["1.34.3-1.1", "1.34.1-1.1"], []),
    ("1.34.*", ["1.34.3-1.1", "1.34.1-1.1", "1.35.0-1.1"], ["1.34.3-1.1", "1.34.1-1.1"]),
])
def test_preflight_looks_for_the_pinned_version(pin: str, offered: list[str], usable: list[str]) -> None:
    task = _task("0010-preflight.yml", "Kubernetes | Record whether the minor's packages are there")
    madison = [f"   kubeadm | {v} | https://example.invalid/ Packages" for v in offered]
    extra = {"kf_kubernetes_minor": "1.34", "kf_kubernetes_package_version": pin,
             "_kubernetes_madison": {"stdout_lines": madison}}
    templar = _templar({**extra, **trusted(task["vars"])})
    assert templar.template(trust_as_template("{{ _kubernetes_versions }}")) == usable


def test_role_refuses_a_package_version_of_another_minor() -> None:
    check = _task("main.yml", "Kubernetes | Check the inputs")["ansible.builtin.assert"]["that"][1]
    expression = trust_as_template("{{ " + check + " }}")
    good = _templar({"kf_kubernetes_minor": "1.34", "kf_kubernetes_package_version": "1.34.2-*"})
    bad = _templar({"kf_kubernetes_minor": "1.34", "kf_kubernetes_package_version": "1.33.2-*"})
    assert good.template(expression) is True and bad.template(expression) is False
