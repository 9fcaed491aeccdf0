#!/usr/bin/env python3
"""bench/host_phase: the host phase on real lab hosts (needs root and podman; brings labs up and down).

P1 = second run / first run of `kfinstall up --only hosts` on 3 fresh hosts   (target <= 0.35, changed=0)
P2 = host phase on 6 fresh hosts / on 1 fresh host                            (target <= 1.4)
P3 = host phase on 1 fresh host / a bare `apt-get install` of the same
     packages plus service starts on a fresh host                             (target <= 1.5)

Medians of --runs repetitions, all in this one run. GlusterFS is off for P2 and P3 (a 1-host lab
cannot hold a replica 3 volume), so both sides of each ratio do the same work per host.

    sudo .venv/bin/python bench/host_phase.py [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent
KF = str(BIN / "kfinstall")
NO_GLUSTER = ["--set", "spec.storage.gluster.enabled=false"]
ROLES = Path(__file__).resolve().parent.parent / "playbooks" / "roles"
# nfs_server's ganesha packages are a task variable (tasks/ganesha.yml), not a default.
GANESHA_PACKAGES = ["nfs-ganesha", "nfs-ganesha-vfs"]
# The services the roles start on a lab host with GlusterFS off (chrony is skipped on container hosts).
BARE_SERVICES = ["containerd", "nfs-ganesha"]


def bare_packages() -> list[str]:
    """What the roles install on a lab container host with GlusterFS off, read from their defaults."""
    def default(role: str, key: str) -> list[str]:
        return list(yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())[key])

    return [*default("os_prepare", "os_prepare_packages"), *default("containerd", "containerd_distro_packages"),
            *default("nfs_client", "nfs_client_packages"), *GANESHA_PACKAGES]


def sh(argv: list[str], timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def fresh_lab(hosts: int, out: Path) -> None:
    sh([KF, "lab", "down"])
    sh([KF, "lab", "up", "--hosts", str(hosts), "--out", str(out)])


def host_phase(site: Path, extra: list[str]) -> tuple[float, int]:
    """Seconds of `kfinstall up --only hosts` and the total changed count it reports."""
    start = time.perf_counter()
    done = sh([KF, "up", "-i", str(site), "--only", "hosts", "--yes", "--output", "json", *extra])
    elapsed = time.perf_counter() - start
    report = json.loads(done.stdout)
    return elapsed, sum(h["changed"] for h in report["hosts"].values())


def bare_install(site: Path) -> float:
    """apt-get install + service starts over SSH on h1, the way an operator would by hand."""
    status = json.loads(sh([KF, "lab", "status", "--output", "json"]).stdout)
    key = Path(status["work_dir"]) / "ssh" / "id_ed25519"
    address = next(m["address"] for m in status["machines"] if m["name"] == "h1")
    script = (f"echo 'deb [trusted=yes] {status['repo_url']} ./' > /etc/apt/sources.list.d/lab.list && "
              "apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q -y install "
              + " ".join(bare_packages()) + " && systemctl enable --now " + " ".join(BARE_SERVICES))
    start = time.perf_counter()
    sh(["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        f"root@{address}", script])
    return time.perf_counter() - start


def measure(runs: int) -> dict[str, object]:
    first, second, changed_second, one, six, bare = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        for _ in range(runs):
            fresh_lab(3, site)
            first.append(host_phase(site, [])[0])
            t, changed = host_phase(site, [])
            second.append(t)
            changed_second.append(changed)
            fresh_lab(1, site)
            one.append(host_phase(site, NO_GLUSTER)[0])
            fresh_lab(6, site)
            six.append(host_phase(site, NO_GLUSTER)[0])
            fresh_lab(1, site)
            bare.append(bare_install(site))
        sh([KF, "lab", "down"])
    med = statistics.median
    return {
        "runs": runs,
        "first_3_hosts_s": round(med(first), 1), "second_3_hosts_s": round(med(second), 1),
        "second_run_changed": changed_second,
        "P1": round(med(second) / med(first), 2),
        "one_host_s": round(med(one), 1), "six_hosts_s": round(med(six), 1),
        "P2": round(med(six) / med(one), 2),
        "bare_apt_one_host_s": round(med(bare), 1),
        "P3": round(med(one) / med(bare), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.runs)
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:24} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
