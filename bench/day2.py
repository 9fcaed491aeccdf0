#!/usr/bin/env python3
"""bench/day2: day-2 operations on real lab hosts (needs root and podman; brings its own lab up and down).

P6    = `kfinstall up --limit h4` adding a 4th host (a Kubernetes node) to a converged 3-host site
        / the first full `kfinstall up --only hosts` on the 3 hosts                          (target <= 0.6)
        with the 3 existing hosts running zero tasks (their counts in the run's JSON summary and every
        event of its run record; existing_hosts_tasks below must be 0)
reset = `kfinstall reset --limit h4 --yes` / h4's first converge (the `up --limit h4` above) (target <= 0.5),
        measured only when this kfinstall has the `reset` verb (otherwise left out, and the output says so)

Medians of --runs repetitions, all in this one run; each repetition starts from 3 fresh hosts. Each ratio
is also given for the host phase alone (the `hosts` phase's duration in the command's JSON summary).
The site allows the lab's subnet as NFS clients (spec.storage.nfs.allowedClients) in every run, so the NFS
export on h1 already admits h4 and adding it needs nothing on h1 (without that, `up --limit h4` is refused:
docs/operations.md "Adding a worker"). Lab hosts are containers sharing this machine's cores: the load
average at the start and the end is recorded.

The bench runs on a lab of its own (name "kfday2", 10.89.18.0/24, work dir /var/lib/kfinstall-lab-kfday2),
never on the default lab that `kfinstall lab` and other tests use.

    sudo .venv/bin/python bench/day2.py [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from installer.config.ssh import site_known_hosts
from installer.errors import KfinstallError
from installer.lab import DEFAULT_WORK_DIR, LabSettings, LabStatus, lab_down, lab_up
from installer.lab.ssh import ssh_argv

KF = str(Path(sys.executable).parent / "kfinstall")
LAB = LabSettings(work_dir=Path(f"{DEFAULT_WORK_DIR}-kfday2"), subnet=ipaddress.IPv4Network("10.89.18.0/24"),
                  name="kfday2")
EXISTING, NEW = ("h1", "h2", "h3"), "h4"
ALLOWED = ["--set", f'spec.storage.nfs.allowedClients=["{LAB.subnet}"]']


def say(message: str) -> None:
    """Progress on stderr (the result goes to stdout)."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def kfinstall(site: Path, *args: str) -> dict[str, Any]:
    """One timed kfinstall command with --output json: its seconds and its JSON document; exits on failure."""
    start = time.perf_counter()
    settings = ALLOWED if args[0] == "up" else []
    done = subprocess.run([KF, *args, "-i", str(site), "--yes", "--output", "json", *settings],
                          capture_output=True, text=True, timeout=3600, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"kfinstall {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                         f"{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    phase = next((p for p in report.get("phases", []) if p.get("name") == "hosts"), {})
    say(f"kfinstall {' '.join(args)}: {elapsed:.1f} s (host phase {phase.get('duration_s', 0):.1f} s)")
    return {"s": elapsed, "phase_s": phase.get("duration_s", elapsed), "report": report}


def wait_until_booted(site: Path, status: LabStatus) -> None:
    """Each host's systemd done starting its units, so no timed run shares the cores with a boot."""
    known_hosts = site_known_hosts(site)
    assert known_hosts is not None
    for machine in status.machines:
        subprocess.run(ssh_argv(LAB.ssh_key, machine.address, "timeout 300 systemctl is-system-running --wait",
                                known_hosts), capture_output=True, text=True, timeout=330, check=False)


def tasks_of_existing_hosts(report: dict[str, Any]) -> int:
    """Task results the run counted for h1..h3 (ok + changed + failed + skipped...), plus every event of
    its run record that names one of them: both 0 when only h4 ran tasks."""
    counted = sum(sum(v for v in stats.values() if isinstance(v, int))
                  for host, stats in report["hosts"].items() if host in EXISTING)
    events = Path(report["record"]) / "events.jsonl"
    named = sum(1 for line in events.read_text().splitlines() if json.loads(line).get("host") in EXISTING)
    return counted + named


def has_reset() -> bool:
    return subprocess.run([KF, "reset", "--help"], capture_output=True, timeout=120, check=False).returncode == 0


def one_repetition(site: Path, with_reset: bool) -> dict[str, Any]:
    say(f"lab {LAB.name}: 3 fresh hosts")
    lab_down(settings=LAB)
    wait_until_booted(site, lab_up(len(EXISTING), out=site, settings=LAB))
    first = kfinstall(site, "up", "--only", "hosts")
    say(f"lab {LAB.name}: adding {NEW}")
    wait_until_booted(site, lab_up(len(EXISTING) + 1, out=site, settings=LAB))
    limited = kfinstall(site, "up", "--limit", NEW)
    found = {"first": first, "limited": limited, "existing_tasks": tasks_of_existing_hosts(limited["report"]),
             "limited_hosts": sorted(limited["report"]["hosts"])}
    if with_reset:
        found["reset"] = kfinstall(site, "reset", "--limit", NEW)
    return found


def measure(runs: int, site: Path) -> dict[str, Any]:
    with_reset = has_reset()
    reps = [one_repetition(site, with_reset) for _ in range(runs)]

    def med(key: str, field: str = "s") -> float:
        return statistics.median(r[key][field] for r in reps)

    result: dict[str, Any] = {
        "runs": runs,
        "first_3_hosts_s": round(med("first"), 1), "first_3_hosts_phase_s": round(med("first", "phase_s"), 1),
        "add_h4_limit_s": round(med("limited"), 1), "add_h4_limit_phase_s": round(med("limited", "phase_s"), 1),
        "P6": round(med("limited") / med("first"), 2),
        "P6_phase": round(med("limited", "phase_s") / med("first", "phase_s"), 2),
        "existing_hosts_tasks": [r["existing_tasks"] for r in reps],
        "limited_run_hosts": reps[0]["limited_hosts"],
    }
    if with_reset:
        result.update({
            "reset_h4_s": round(med("reset"), 1),
            "reset": round(med("reset") / med("limited"), 2),
            # "incomplete" means reset left steps undone (its `skipped`): then the ratio is not the target's.
            "reset_results": [r["reset"]["report"].get("result") for r in reps],
        })
    else:
        result["reset"] = "not measured: this kfinstall has no `reset` verb"
    return result


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=positive, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root (rootful podman): run it with sudo")
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="kfday2-") as tmp:
        try:
            result = measure(args.runs, Path(tmp) / "site")
        except KfinstallError as exc:
            raise SystemExit(f"lab: {exc}") from None
        finally:
            lab_down(settings=LAB)
    result.update({"load_average_start": load_at_start, "load_average_end": load_average()})
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:24} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
