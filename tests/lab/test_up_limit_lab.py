"""Adding a worker to a converged lab site with `up --limit` (issue 15 item 1), on real podman hosts.

The session's 3 hosts are converged (`up --only hosts`), a 4th lab host is started and written into
hosts.yml as a Kubernetes node (`lab up` with 4 hosts), then:
  * `plan --limit h4` shows h4 as new, with every play it gets and nobody else in them;
  * `up --limit h4` without an NFS allow list that admits h4 is refused (exit 3) before any connection;
  * `up --limit h4` with the lab's subnet allowed converges h4, and the run's per-host counts and every
    event of the run record name h4 only: h1..h3 run no task (the Gluster pool read and the volume's
    auth.allow go through h1 as tasks delegated by h4, counted under h4);
  * a second `up --limit h4` changes nothing.
The lab is put back to 3 hosts at the end, so the tests after this one see the session's lab as it was
(growing and shrinking the lab keeps the running hosts: installer/lab/lifecycle.py _as_in_other_sizes).
The Kubernetes join cannot run here (no Kubernetes packages reach lab hosts): tests/e2e/test_add_worker_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from labsite import LabSite, vm_count

from installer.lab import lab_up

pytestmark = pytest.mark.lab

KF = str(Path(sys.executable).parent / "kfinstall")
OLD, NEW = ["h1", "h2", "h3"], "h4"


def kf(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KF, *args, "-i", str(site), "--output", "json"], capture_output=True, text=True,
                          timeout=1800, check=False)


@pytest.fixture(scope="module")
def grown(lab_site) -> Iterator[tuple[Path, tuple[str, ...], LabSite]]:  # type: ignore[no-untyped-def]
    site = lab_site.out_dir
    allowed = ("--set", f'spec.storage.nfs.allowedClients=["{lab_site.settings.subnet}"]')
    first = kf(site, "up", "--only", "hosts", "--yes", *allowed)
    assert first.returncode == 0, first.stderr[-4000:] + first.stdout[-2000:]
    status = lab_up(len(OLD) + 1, vm_count(lab_site), out=site, settings=lab_site.settings, report=print)
    try:
        yield site, allowed, replace(lab_site, status=status)
    finally:
        lab_up(len(OLD), vm_count(lab_site), out=site, settings=lab_site.settings, report=print)


def test_plan_limit_shows_the_new_worker_and_its_steps(grown) -> None:  # type: ignore[no-untyped-def]
    site, allowed, _ = grown
    done = kf(site, "plan", "--limit", NEW, *allowed)
    assert done.returncode == 0, done.stderr[-3000:]
    limit = json.loads(done.stdout)["limit"]
    assert limit["hosts"] == [NEW] and limit["added"] == [NEW] and limit["refusals"] == []
    assert {h for step in limit["steps"] for h in step["hosts"]} == {NEW}
    assert limit["contacts"] == ["h1"]  # the first control plane and first Gluster host


def test_a_new_worker_the_nfs_export_does_not_admit_is_refused_untouched(grown) -> None:  # type: ignore[no-untyped-def]
    site, _, _ = grown
    runs = sorted((site / ".kfinstall" / "lab" / "runs").iterdir())
    done = kf(site, "up", "--limit", NEW, "--yes")
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert "does not admit h4 yet" in json.loads(done.stdout)["error"]
    assert sorted((site / ".kfinstall" / "lab" / "runs").iterdir()) == runs  # no run started


def test_up_limit_converges_the_new_worker_and_no_other_host_runs_a_task(grown) -> None:  # type: ignore[no-untyped-def]
    site, allowed, lab = grown
    done = kf(site, "up", "--limit", NEW, "--yes", *allowed)
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    report = json.loads(done.stdout)
    assert report["limit"] == [NEW] and sorted(report["hosts"]) == [NEW], report["hosts"]
    assert report["hosts"][NEW]["changed"] > 0 and report["hosts"][NEW]["failed"] == 0
    assert [p["name"] for p in report["phases"]] == ["preflight", "hosts"]
    # Every task event of the run record names h4 (a task h4 delegates to h1 is h4's), and there are some.
    events = [json.loads(line) for line in (Path(report["record"]) / "events.jsonl").read_text().splitlines()]
    hosts = {event.get("host") for event in events if str(event.get("event", "")).startswith("runner_on_")}
    assert hosts == {NEW}, hosts
    assert lab.ssh(NEW, "systemctl is-active containerd").stdout.strip() == "active"
    again = kf(site, "up", "--limit", NEW, "--yes", *allowed)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads(again.stdout)
    assert sorted(second["hosts"]) == [NEW] and second["hosts"][NEW]["changed"] == 0, second["hosts"]
