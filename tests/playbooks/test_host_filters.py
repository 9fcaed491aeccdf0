"""The kfinstall.hosts filters the host roles share (issue 14): upstream_version and needed_packages.

The filter file is imported by its path, the way Ansible loads it from the collection.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]
FILTERS = REPO / "playbooks/collections/ansible_collections/kfinstall/hosts/plugins/filter/hosts.py"


def load_filters() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kfinstall_hosts_filters", FILTERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hosts = load_filters()


@pytest.mark.parametrize(("version", "upstream"), [
    ("1:1.7.24~ds1-6+b1", "1.7.24"),           # epoch, ~ds1 repack, Debian revision, binNMU
    ("1.6.20~ds1-1+b1", "1.6.20"),
    ("1.7.12-0ubuntu2~22.04.1", "1.7.12"),
    ("1.7.24-1ubuntu0.22.04.1", "1.7.24"),
    ("2:4.35-1", "4.35"),
    ("1.30.2-1.1", "1.30.2"),                   # Kubernetes' packages
    ("v2.0.1", "2.0.1"),                        # an upstream tag
    ("2.0.0-rc.1", "2.0.0"),                    # a pre-release counts as its release
    ("1.7.24+dfsg", "1.7.24"),
    ("  1.7.24-1\n", "1.7.24"),
    ("10", "10"),
    (10, "10"),
    ("(none)", ""),                             # apt-cache policy: no candidate
    ("", ""),
    (None, ""),
    ("vendor-build", ""),
    ("v", ""),
])
def test_upstream_version(version: Any, upstream: str) -> None:
    assert hosts.upstream_version(version) == upstream


@pytest.mark.parametrize("version", [1.10, True, ["1.7"]])
def test_upstream_version_refuses_what_is_not_a_version_text(version: Any) -> None:
    with pytest.raises(AnsibleFilterError, match="takes a version as text"):
        hosts.upstream_version(version)


def table(**entries: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"packages": [name], **entry} for name, entry in entries.items()}


@pytest.mark.parametrize("needed", [True, "True", "true", "yes"])
def test_an_entry_whose_needed_is_true_is_installed(needed: Any) -> None:
    packages = table(chrony={"needed": needed}, base={"packages": ["curl", "jq"], "needed": True})
    assert hosts.needed_packages(packages) == ["chrony", "curl", "jq"]


@pytest.mark.parametrize("needed", [False, "False", "false", "", "no", None])
def test_an_entry_whose_needed_is_false_is_left_out(needed: Any) -> None:
    packages = table(chrony={"needed": needed}, base={"packages": ["curl", "jq"], "needed": True})
    assert hosts.needed_packages(packages) == ["curl", "jq"]


@pytest.mark.parametrize("needed", ["maybe", "kf_host_runs_kubernetes", 1, 0, ["yes"]])
def test_a_needed_that_is_neither_true_nor_false_is_refused_naming_the_entry(needed: Any) -> None:
    with pytest.raises(AnsibleFilterError, match=r"kf_packages entry 'chrony': needed is .* neither true nor false"):
        hosts.needed_packages(table(chrony={"needed": needed}))


def test_an_entry_without_needed_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="entry 'chrony' has no `needed`"):
        hosts.needed_packages({"chrony": {"packages": ["chrony"]}})


@pytest.mark.parametrize("packages", [None, "chrony", ["chrony", 7], {"chrony": 1}])
def test_an_entry_without_a_list_of_package_names_is_refused(packages: Any) -> None:
    entry: dict[str, Any] = {"needed": True} if packages is None else {"packages": packages, "needed": True}
    with pytest.raises(AnsibleFilterError, match="kf_packages entry 'chrony' needs `packages`, a list"):
        hosts.needed_packages({"chrony": entry, "curl": {"packages": ["curl"], "needed": True}})


@pytest.mark.parametrize("name", ["-o=APT::Get::Assume-Yes=false", "chrony ntp", "", "chrony\n--purge"])
def test_a_package_name_apt_would_read_as_an_option_or_two_words_is_refused(name: str) -> None:
    with pytest.raises(AnsibleFilterError, match=re.escape(f"entry 'chrony': {name!r} is not a package name")):
        hosts.needed_packages({"chrony": {"packages": [name], "needed": True}})


def test_versioned_and_arch_qualified_names_pass() -> None:
    packages = {"kubernetes": {"packages": ["kubelet=1.30.2-1.1", "libfoo1:i386"], "needed": True}}
    assert hosts.needed_packages(packages) == ["kubelet=1.30.2-1.1", "libfoo1:i386"]


@pytest.mark.parametrize(("value", "message"), [
    (["chrony"], "takes the package table"),
    ({"chrony": ["chrony"]}, "entry 'chrony' must be a mapping"),
])
def test_a_table_of_the_wrong_shape_is_refused(value: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        hosts.needed_packages(value)


KF_PACKAGES = {
    "os_prepare": {"role": "os_prepare", "packages": ["curl", "jq"], "needed": True},
    "chrony": {"role": "os_prepare", "packages": ["chrony"], "needed": "True"},
    "containerd": {"role": "containerd", "packages": ["containerd", "runc"], "needed": True},
    "nfs_server": {"role": "nfs_server", "packages": ["nfs-kernel-server", "curl"], "needed": "true",
                   "transaction": False},
    "glusterfs": {"role": "glusterfs", "packages": ["glusterfs-server"], "needed": "False"},
}


@pytest.mark.parametrize(("part", "packages"), [
    (None, ["chrony", "containerd", "curl", "jq", "nfs-kernel-server", "runc"]),
    ("os_prepare", ["chrony", "curl", "jq"]),                # the entry key and the entries of role os_prepare
    ("chrony", ["chrony"]),                                  # the entry key alone
    ("containerd", ["containerd", "runc"]),
    ("glusterfs", []),                                       # not needed
    ("kubernetes", []),                                      # no such part
])
def test_a_part_selects_the_entries_by_key_or_role(part: str | None, packages: list[str]) -> None:
    assert hosts.needed_packages(KF_PACKAGES, part) == packages


@pytest.mark.parametrize(("transaction", "kept"), [(False, False), ("false", False), ("True", True), (None, True)])
def test_transaction_only_leaves_out_the_entries_marked_transaction_false(transaction: Any, kept: bool) -> None:
    packages = {"nfs_server": {"packages": ["nfs-kernel-server"], "needed": True, "transaction": transaction},
                "base": {"packages": ["curl"], "needed": True}}
    expected = ["curl", "nfs-kernel-server"] if kept else ["curl"]
    assert hosts.needed_packages(packages, transaction_only=True) == expected
    assert hosts.needed_packages(packages) == ["curl", "nfs-kernel-server"]


def test_transaction_only_on_the_whole_table() -> None:
    assert hosts.needed_packages(KF_PACKAGES, transaction_only=True) == ["chrony", "containerd", "curl", "jq", "runc"]


def test_the_part_must_be_a_name() -> None:
    with pytest.raises(AnsibleFilterError, match="the part must be a role or entry name"):
        hosts.needed_packages(KF_PACKAGES, ["os_prepare"])


def test_ansible_finds_both_filters() -> None:
    assert set(hosts.FilterModule().filters()) >= {"upstream_version", "needed_packages"}


MINIMUM_TABLE = {
    "containerd": {"role": "containerd", "packages": ["containerd", "runc"], "needed": True,
                   "minimum": {"containerd": "1:1.7.24~ds1-6", "runc": ""}, "hint": "Use the upstream release."},
    "nfs_server": {"role": "nfs_server", "packages": ["nfs-ganesha"], "needed": "false",
                   "minimum": {"nfs-ganesha": "5.0"}},
    "base": {"packages": ["curl"], "needed": True},
}


def test_package_minimums_of_the_needed_entries() -> None:
    assert hosts.package_minimums(MINIMUM_TABLE) == {
        "containerd": {"version": "1.7.24", "hint": "Use the upstream release."},
        "runc": {"version": "", "hint": "Use the upstream release."},   # need only exist
    }
    assert hosts.package_minimums(MINIMUM_TABLE, "base") == {}


def test_package_minimums_refuses_a_minimum_that_is_not_a_mapping() -> None:
    with pytest.raises(AnsibleFilterError, match="entry 'containerd': minimum maps a package to a version"):
        hosts.package_minimums({"containerd": {**MINIMUM_TABLE["containerd"], "minimum": "1.7"}})
