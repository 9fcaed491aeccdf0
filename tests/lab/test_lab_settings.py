"""Lab names, addresses and podman settings (pure: no root, no podman)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from installer.errors import ConfigError
from installer.lab import hostprep
from installer.lab.settings import LabSettings, container_name

# Linux interface names are at most 15 characters (IFNAMSIZ - 1).
IFNAME_MAX = 15


def test_default_lab_keeps_its_documented_names_and_addresses() -> None:
    lab = LabSettings()
    assert lab.network == "kfilab" and lab.label == "kfinstall.lab=1"
    assert lab.container_name("h1") == container_name("h1") == "kfilab-h1"
    assert lab.host_ip(1) == "10.89.7.11" and lab.vm_ip(2) == "10.89.7.102"
    assert lab.repo_url == "http://10.89.7.1:8080"
    assert lab.work_dir == Path("/var/lib/kfinstall-lab")


def test_a_named_lab_shares_no_podman_name_with_the_default_one() -> None:
    default, other = LabSettings(), LabSettings(
        work_dir=Path("/tmp/other"), subnet=ipaddress.IPv4Network("10.89.8.0/24"), name="kfitest"
    )
    for attribute in ("network", "label", "base_image", "host_image", "gateway"):
        assert getattr(default, attribute) != getattr(other, attribute)
    assert other.container_name("h1") == "kfitest-h1"


def test_tap_names_fit_linux_interface_names_for_the_longest_lab_name() -> None:
    assert len(LabSettings(name="abcdefgh").tap_name(50)) <= IFNAME_MAX


@pytest.mark.parametrize("name", ["", "Lab", "1lab", "toolongname", "with-dash"])
def test_bad_lab_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError):
        LabSettings(name=name)


def test_a_subnet_too_small_for_the_vm_addresses_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        LabSettings(subnet=ipaddress.IPv4Network("10.89.7.0/25"))


def test_podman_dropin_asks_only_for_limits_this_process_can_grant() -> None:
    text = hostprep.podman_dropin_text()
    assert 'cgroup_manager = "cgroupfs"' in text
    nproc = int(text.split("nproc=")[1].split(":")[0])
    assert nproc <= hostprep.PODMAN_NPROC_CAP
