"""`kfinstall reset --limit h3` on the converged session lab (issue 15 item 4).

h3 is a Kubernetes node and one of the three Gluster servers (replica 3: two stay, the volume keeps its
quorum). After the reset, h3 holds none of kfinstall's files (containerd's configuration is back to the
package's own), runs none of the services of the packages kfinstall installed, has no Gluster mount, and
keeps its packages and its brick (data). The next `up` changes nothing on h1 and h2 and converges h3
again (changed > 0); a further `up` changes nothing anywhere, so the lab is left converged.

The control plane and NFS server h1 is refused (exit 3) before anything is touched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

KF = str(Path(sys.executable).parent / "kfinstall")
HOSTS = ["h1", "h2", "h3"]
RECORD = "/var/lib/kfinstall/record.json"
# The lab image's own apt source: there before kfinstall (os_prepare writes the same content and adopts it),
# so reset leaves it as it was.
IMAGE_SOURCE = "/etc/apt/sources.list.d/kfinstall-lab.list"


def kf(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KF, *argv], capture_output=True, text=True, timeout=1800, check=False)


def up(site: Path) -> dict:  # type: ignore[type-arg]
    done = kf("up", "-i", str(site), "--only", "hosts", "--yes", "--output", "json")
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def changed(report: dict) -> dict[str, int]:  # type: ignore[type-arg]
    return {host: stats["changed"] for host, stats in report["hosts"].items()}


@pytest.fixture(scope="module")
def reset_h3(lab_site):  # type: ignore[no-untyped-def]
    site = lab_site.out_dir
    up(site)  # converged (a no-op when an earlier test of the session converged the lab)
    config_before = lab_site.ssh("h3", "cat /etc/containerd/config.toml").stdout
    source_before = lab_site.ssh("h3", f"cat {IMAGE_SOURCE}").stdout
    refused = kf("reset", "-i", str(site), "--limit", "h1", "--yes", "--output", "json")
    dry = kf("reset", "-i", str(site), "--limit", "h3", "--dry-run", "--output", "json")
    done = kf("reset", "-i", str(site), "--limit", "h3", "--yes", "--output", "json")
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-3000:]
    after = {
        "config": lab_site.ssh("h3", "cat /etc/containerd/config.toml 2>/dev/null").stdout,
        "source": lab_site.ssh("h3", f"cat {IMAGE_SOURCE} 2>/dev/null").stdout,
        "units": {unit: lab_site.ssh("h3", f"systemctl is-active {unit}; systemctl is-enabled {unit}").stdout.split()
                  for unit in ("containerd", "glusterd")},
        "gluster_mount": lab_site.ssh(
            "h3", "grep -c ' fuse.glusterfs ' /proc/mounts; grep -c glusterfs /etc/fstab").stdout.split(),
        "packages": lab_site.ssh("h3", "dpkg-query -W -f='${Status}\\n' containerd glusterfs-server").stdout,
        "brick": lab_site.ssh("h3", "test -d /data/gluster/kfinstall").returncode == 0,
        "h2_containerd": lab_site.ssh("h2", "systemctl is-active containerd").stdout.strip(),
    }
    next_up = up(site)
    further_up = up(site)
    return {"refused": refused, "dry": dry, "report": json.loads(done.stdout), "after": after,
            "config_before": config_before, "source_before": source_before, "next_up": next_up,
            "further_up": further_up}


def test_the_control_plane_and_nfs_server_is_refused_and_nothing_changes(reset_h3) -> None:  # type: ignore[no-untyped-def]
    refused = reset_h3["refused"]
    assert refused.returncode == 3, refused.stderr
    document = json.loads(refused.stdout)
    assert document["result"] == "failed" and document["exitCode"] == 3
    assert "kfinstall node remove h1" in document["error"] and "NFS export" in document["error"]
    assert not document.get("runId")  # refused before a run record, a lock or a connection


def test_the_dry_run_shows_each_step_and_what_stays(reset_h3) -> None:  # type: ignore[no-untyped-def]
    dry = reset_h3["dry"]
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["hosts"] == ["h3"] and plan["dryRun"] is True and plan["refusals"] == []
    [host] = plan["perHost"]
    assert "Unmount the GlusterFS volume and stop serving bricks" in host["steps"]
    assert any("/data/gluster/kfinstall" in keep for keep in host["keeps"])


def test_reset_removes_kfinstalls_files_services_and_mounts(reset_h3) -> None:  # type: ignore[no-untyped-def]
    report, after = reset_h3["report"], reset_h3["after"]
    assert report["result"] == "ok", report
    assert sorted(report["hosts"]) == ["h3"] and report["hosts"]["h3"]["changed"] > 0
    assert after["source"] == reset_h3["source_before"] != ""  # the image's own file stays
    # The package's own configuration is back (or none, when the package ships none): not kfinstall's.
    assert after["config"] != reset_h3["config_before"]
    assert "SystemdCgroup = true" not in after["config"]
    assert after["units"]["containerd"] == ["inactive", "disabled"]
    assert after["units"]["glusterd"] == ["inactive", "disabled"]
    assert after["gluster_mount"] == ["0", "0"]


def test_reset_keeps_packages_data_and_the_other_hosts(reset_h3) -> None:  # type: ignore[no-untyped-def]
    after = reset_h3["after"]
    assert after["packages"].split("\n")[:2] == ["install ok installed"] * 2
    assert after["brick"] is True
    assert after["h2_containerd"] == "active"


def test_the_next_up_changes_only_the_reset_host_and_converges_it(reset_h3) -> None:  # type: ignore[no-untyped-def]
    next_changes = changed(reset_h3["next_up"])
    assert next_changes["h1"] == 0 and next_changes["h2"] == 0, next_changes
    assert next_changes["h3"] > 0, next_changes
    assert changed(reset_h3["further_up"]) == dict.fromkeys(HOSTS, 0)
