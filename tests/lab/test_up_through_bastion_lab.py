"""The whole host phase through a Kubespray-style bastion (issue 15 item 5), on the session lab.

test_bastion_lab.py's site: h1 only the bastion, h2 (control plane, NFS server) and h3 behind it, named
by addresses only h1 resolves. This file sorts after the lab tests that want the session lab's own
layout (test_roles_site.py, test_up_hosts.py): converging h2 as an NFS server here leaves nfs-ganesha
running on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_bastion_lab import bastion_site  # noqa: F401  (the fixture)

pytestmark = pytest.mark.lab
KF = str(Path(sys.executable).parent / "kfinstall")


def _up_hosts(site: Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KF, "up", "-i", str(site), "--state-dir", str(state), "--only", "hosts", "--yes", "--output", "json",
         # The session lab's Gluster volume stays the lab's (h1-h3): this site has no gluster host.
         "--set", "spec.storage.gluster.enabled=false"],
        capture_output=True, text=True, timeout=1800, check=False)


def _events(state: Path) -> list[dict[str, object]]:
    """The newest run record's events (kfinstall's events.jsonl: one JSON object a line)."""
    newest = max((state / "runs").iterdir(), key=lambda run: run.name)
    return [json.loads(line) for line in (newest / "events.jsonl").read_text().splitlines() if line.strip()]


def test_the_whole_host_phase_runs_through_the_bastion_and_converges(bastion_site: Path, tmp_path: Path) -> None:  # noqa: F811
    """Not only the preflight: `kfinstall up --only hosts` runs every play on h2 and h3 through h1 (names only
    h1 resolves), none on the bastion, and a second run through it changes nothing."""
    state = tmp_path / "state"
    first = _up_hosts(bastion_site, state)
    assert first.returncode == 0, first.stderr[-4000:] + first.stdout[-2000:]
    report = json.loads(first.stdout)
    hosts = report["hosts"]
    assert all(hosts[h]["failed"] == 0 and hosts[h]["unreachable"] == 0 and hosts[h]["ok"] > 0 for h in ("h2", "h3"))
    # The bastion appears only as the host of 00-validate.yml's run_once assert (hosts: all, no facts, no
    # connection: an action on the controller); no task of the host phase touched it.
    on_bastion = {event["task"] for event in _events(state) if event.get("host") == "h1"}
    assert on_bastion and all(task.startswith("Validate | ") for task in on_bastion), on_bastion
    assert hosts.get("h1", {}).get("changed", 0) == 0
    second = _up_hosts(bastion_site, state)
    assert second.returncode == 0, second.stderr[-4000:]
    assert {name: h["changed"] for name, h in json.loads(second.stdout)["hosts"].items()} == {"h1": 0, "h2": 0, "h3": 0}
