"""Shared fixtures: site folders built in tmp dirs from a known-valid base."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.config.secrets import generate_secrets

REPO = Path(__file__).resolve().parent.parent
SHARED_SCHEMAS = REPO.parent / "shared" / "schemas"

BASE_CLUSTER: dict[str, Any] = {
    "apiVersion": "kfinstall.io/v1alpha1",
    "kind": "Cluster",
    "metadata": {"name": "test"},
    "spec": {
        "profile": "bare-metal",
        "channel": "26.03",
        "auth": {"type": "ldap", "ldap": {
            "url": "ldaps://ldap.example.com:636",
            "bindDn": "cn=hub,dc=example,dc=com",
            "userSearchBase": "ou=people,dc=example,dc=com"}},
        "networking": {"metallb": {"addresses": ["192.0.2.240/28"]}, "ingress": {"host": "ml.example.com"}},
    },
}

BASE_HOSTS: dict[str, Any] = {
    "all": {
        "hosts": {"cp1": {"ansible_host": "192.0.2.11"}, "n1": {"ansible_host": "192.0.2.21"},
                  "n2": {"ansible_host": "192.0.2.22"}},
        "children": {
            "kube_control_plane": {"hosts": {"cp1": None}},
            "kube_node": {"hosts": {"n1": None, "n2": None}},
            "nfs_server": {"hosts": {"cp1": None}},
        },
    }
}

SiteFactory = Callable[..., Path]


def _apply(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Dotted-path edits; a value of `...` (Ellipsis) deletes the key."""
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return data


def _set_secret(path: Path, key: str, value: str) -> None:
    data = yaml.safe_load(path.read_text())
    data[key] = value
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)


@pytest.fixture
def make_site(tmp_path: Path) -> SiteFactory:
    """make_site(cluster={dotted: value}, hosts={dotted: value}, cluster_text=..., hosts_text=..., secrets=True)."""

    def factory(cluster: dict[str, Any] | None = None, hosts: dict[str, Any] | None = None,
                cluster_text: str | None = None, hosts_text: str | None = None, secrets: bool = True,
                hosts_name: str = "hosts.yml") -> Path:
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        text = cluster_text if cluster_text is not None else yaml.safe_dump(_apply(BASE_CLUSTER, cluster or {}), sort_keys=False)
        (site / "kfinstall.yaml").write_text(text)
        if hosts_text is not None:
            (site / hosts_name).write_text(hosts_text)
        elif hosts_text is None:
            (site / hosts_name).write_text(yaml.safe_dump(_apply(BASE_HOSTS, hosts or {}), sort_keys=False))
        if secrets:
            generate_secrets(site / "secrets.yml")
            _set_secret(site / "secrets.yml", "ldap_bind_password", "bind-password-for-tests")
        return site

    return factory


@pytest.fixture
def unreachable_site(make_site: SiteFactory) -> Path:
    """A site whose three hosts refuse SSH at once: closed ports on 127.0.0.1, a 2 s connect timeout."""
    hosts = {f"all.hosts.{h}": {"ansible_host": "127.0.0.1", "ansible_port": port,
                                "ansible_ssh_common_args": "-o ConnectTimeout=2"}
             for h, port in (("cp1", 1), ("n1", 2), ("n2", 3))}
    return make_site(hosts=hosts)


@pytest.fixture
def kfinstall_streams(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """kfinstall_streams(*argv): the real entry point in this process (exit-code mapping included),
    returning (exit code, stdout, stderr)."""
    from installer.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["kfinstall", *argv])
        try:
            main()
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def kfinstall(kfinstall_streams: Callable[..., tuple[int, str, str]]) -> Callable[..., tuple[int, str]]:
    """kfinstall(*argv): as kfinstall_streams, returning (exit code, stdout + stderr)."""

    def run(*argv: str) -> tuple[int, str]:
        code, out, err = kfinstall_streams(*argv)
        return code, out + err

    return run
