"""The nvidia_gpu role's first kfinstall.hosts.files run on a lab host: it writes the apt keyring directory
and, where nouveau is loaded, the nouveau blacklist; the role's handler rebuilds the initramfs for a change
of the blacklist only (issue 14: a role restarts through its own handler only for what it is about).

The lab hosts are containers without a GPU or nouveau, so the host is declared in group gpu with
nvidia_gpu_require_device=false, the stat of /sys/module/nouveau is given as an extra var (extra vars win
over a registered result), and update-initramfs is a stand-in earlier in PATH that logs its calls. The run
then stops, as a real one must, at "Stop while nouveau is loaded", before any download.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_roles_common import lab_extra_vars, run_playbooks

pytestmark = pytest.mark.lab

HOST = "h2"
BLACKLIST = "/etc/modprobe.d/kfinstall-blacklist-nouveau.conf"
KEYRINGS = "/etc/apt/keyrings"
STAND_IN = "/usr/local/sbin/update-initramfs"
CALLS = "/var/log/kfinstall-test-update-initramfs"
FILES_TASK = "GPU driver | Blacklist nouveau and create the keyring directory"


def _sh(site, command: str) -> str:  # type: ignore[no-untyped-def]
    result = site.ssh(HOST, command)
    assert result.returncode == 0, f"{HOST}: {command}\n{result.stdout}\n{result.stderr}"
    return str(result.stdout)


def _inventory_with_gpu_host(inventory: Path) -> Path:
    data = yaml.safe_load(inventory.read_text())
    data["all"]["children"]["gpu"] = {"hosts": {HOST: {}}}
    path = inventory.with_name("hosts-gpu-initramfs.yml")
    path.write_text(yaml.safe_dump(data))
    return path


def test_gpu_initramfs_is_rebuilt_only_for_the_nouveau_blacklist(lab_site, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    inventory = _inventory_with_gpu_host(lab_site.inventory)
    extra = {**lab_extra_vars(lab_site.out_dir, lab_site.repo_url, tmp_path_factory.mktemp("state")),
             "kf_gpu_enabled": True, "nvidia_gpu_require_device": False,
             "_nvidia_gpu_nouveau": {"stat": {"exists": True}}}
    keyrings_before = _sh(lab_site, f"stat -c %a {KEYRINGS} 2>/dev/null || echo absent").strip()
    assert _sh(lab_site, f"test ! -e {BLACKLIST} && echo fresh").strip() == "fresh"
    _sh(lab_site, f"printf '#!/bin/sh\\necho \"$*\" >> {CALLS}\\n' > {STAND_IN} && chmod 0755 {STAND_IN}")
    try:
        first = run_playbooks(inventory, ["30-gpu.yml"], extra, "--limit", HOST)
        print(f"\n30-gpu.yml up to the nouveau stop on {HOST}: {first.seconds:.1f} s")
        assert first.rc != 0, first.tail()
        assert f"nouveau is loaded on {HOST}. It is now blacklisted ({BLACKLIST})" in first.output, first.tail()
        assert first.task_results(FILES_TASK) == {HOST: "changed"}, first.tail()
        assert "blacklist nouveau\noptions nouveau modeset=0\n" in _sh(lab_site, f"cat {BLACKLIST}")
        assert _sh(lab_site, f"stat -c %a {KEYRINGS}").strip() == "755"
        assert _sh(lab_site, f"cat {CALLS}").splitlines() == ["-u"], "one rebuild for the new blacklist"

        # Only the keyring directory drifted: the same files run repairs it, and nothing is rebuilt.
        _sh(lab_site, f"chmod 0700 {KEYRINGS}")
        second = run_playbooks(inventory, ["30-gpu.yml"], extra, "--limit", HOST)
        assert f"nouveau is loaded on {HOST}" in second.output, second.tail()
        assert second.task_results(FILES_TASK) == {HOST: "changed"}, second.tail()
        assert _sh(lab_site, f"stat -c %a {KEYRINGS}").strip() == "755"
        assert _sh(lab_site, f"cat {CALLS}").splitlines() == ["-u"], "the keyring directory rebuilt the initramfs"
    finally:
        restore = f"rmdir {KEYRINGS}" if keyrings_before == "absent" else f"chmod {keyrings_before} {KEYRINGS}"
        _sh(lab_site, f"rm -f {BLACKLIST} {STAND_IN} {CALLS}; {restore}")
