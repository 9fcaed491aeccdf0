#!/usr/bin/env python3
"""bench/host_phase: the host phase on real lab hosts (needs root and podman; brings labs up and down).

P1 = second run / first run of `kfinstall up --only hosts` on 3 fresh hosts   (target <= 0.35, changed=0)
P2 = host phase on 6 fresh hosts / on 1 fresh host                            (target <= 1.4)
P3 = host phase on 1 fresh host / a bare `apt-get install` of the same
     packages plus service starts on a fresh host                             (target <= 1.5)

Medians of --runs repetitions, all in this one run. GlusterFS is off for P2 and P3 (a 1-host lab
cannot hold a replica 3 volume), so both sides of each ratio do the same work per host.

Each figure is given twice: for the whole `kfinstall up --only hosts` command (preflight included)
and for its "hosts" phase alone (the duration in the command's JSON summary). Lab hosts are
containers on this machine, so they share its cores with each other and with Ansible: the machine's
busy CPU seconds (/proc/stat) are recorded for every run, and P2 is also given for as many hosts as
there are cores (P2_cores), which shows the fan-out without the machine's core count in the ratio.

With --equal-hosts it also measures P2 the way separate machines would see it: every lab host is
capped (cgroup CPU quota) at an equal share of this machine, cores / (6 hosts + the controller), in
the 1-host run and in the 6-host run alike, so the 6-host run does not have six times the work on the
same cores (P2_equal_hosts).

    sudo .venv/bin/python bench/host_phase.py [--runs 3] [--json] [--equal-hosts]
"""

from __future__ import annotations

import argparse
import json
import os
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
    wait_until_booted(out)


def lab_ssh(site: Path) -> tuple[list[str], dict[str, str]]:
    """The ssh command line for the lab's hosts, and each host's address. Host keys are checked
    against the site's known_hosts, where `lab up` pinned the keys of the hosts it made."""
    from installer.config.ssh import site_known_hosts

    status = json.loads(sh([KF, "lab", "status", "--output", "json"]).stdout)
    key = Path(status["work_dir"]) / "ssh" / "id_ed25519"
    known_hosts = site_known_hosts(site)
    argv = ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "LogLevel=error"]
    return argv, {m["name"]: m["address"] for m in status["machines"]}


def wait_until_booted(site: Path) -> None:
    """`lab up` returns once sshd answers; wait until each host's systemd has finished starting its
    units too, as on a machine an operator installs on, so neither side of a ratio shares the cores
    with a host's boot."""
    argv, addresses = lab_ssh(site)
    for address in addresses.values():
        subprocess.run([*argv, f"root@{address}", "timeout 300 systemctl is-system-running --wait"],
                       capture_output=True, text=True, timeout=330, check=False)


def cap_lab_hosts(hosts: int, cpus: float) -> None:
    """Limit every lab host to `cpus` CPUs (podman update: the container's cgroup CPU quota)."""
    for index in range(1, hosts + 1):
        sh(["podman", "update", "--cpus", f"{cpus:.3f}", f"kfilab-h{index}"])


def busy_cpu_seconds() -> float:
    """CPU seconds this machine has been busy since boot (every process: Ansible and all lab hosts)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def host_phase(site: Path, extra: list[str]) -> dict[str, float]:
    """`kfinstall up --only hosts`: whole seconds, the hosts phase's seconds, changed count, busy CPU seconds."""
    cpu, start = busy_cpu_seconds(), time.perf_counter()
    done = sh([KF, "up", "-i", str(site), "--only", "hosts", "--yes", "--output", "json", *extra])
    elapsed, cpu = time.perf_counter() - start, busy_cpu_seconds() - cpu
    report = json.loads(done.stdout)
    phase = next(p for p in report["phases"] if p["name"] == "hosts")
    changed = sum(h["changed"] for h in report["hosts"].values())
    return {"s": elapsed, "phase_s": phase["duration_s"], "changed": changed, "cpu_s": cpu}


def bare_install(site: Path) -> float:
    """apt-get install + service starts over SSH on h1, the way an operator would by hand."""
    status = json.loads(sh([KF, "lab", "status", "--output", "json"]).stdout)
    argv, addresses = lab_ssh(site)
    script = (f"echo 'deb [trusted=yes] {status['repo_url']} ./' > /etc/apt/sources.list.d/lab.list && "
              "apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q -y install "
              + " ".join(bare_packages()) + " && systemctl enable --now " + " ".join(BARE_SERVICES))
    start = time.perf_counter()
    sh([*argv, f"root@{addresses['h1']}", script])
    return time.perf_counter() - start


def measure(runs: int) -> dict[str, object]:
    cores = os.cpu_count() or 1
    runs_of: dict[str, list[dict[str, float]]] = {"first": [], "second": [], "one": [], "cores": [], "six": []}
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        for _ in range(runs):
            fresh_lab(3, site)
            runs_of["first"].append(host_phase(site, []))
            runs_of["second"].append(host_phase(site, []))
            for key, hosts in (("one", 1), ("cores", cores), ("six", 6)):
                fresh_lab(hosts, site)
                runs_of[key].append(host_phase(site, NO_GLUSTER))
            fresh_lab(1, site)
            bare.append(bare_install(site))
        sh([KF, "lab", "down"])

    def med(key: str, field: str = "s") -> float:
        return statistics.median(r[field] for r in runs_of[key])

    return {
        "runs": runs, "cores": cores,
        "first_3_hosts_s": round(med("first"), 1), "second_3_hosts_s": round(med("second"), 1),
        "second_run_changed": [r["changed"] for r in runs_of["second"]],
        "P1": round(med("second") / med("first"), 2),
        "P1_phase": round(med("second", "phase_s") / med("first", "phase_s"), 2),
        "one_host_s": round(med("one"), 1), "one_host_phase_s": round(med("one", "phase_s"), 1),
        "one_host_cpu_s": round(med("one", "cpu_s"), 1),
        "six_hosts_s": round(med("six"), 1), "six_hosts_phase_s": round(med("six", "phase_s"), 1),
        "six_hosts_cpu_s": round(med("six", "cpu_s"), 1),
        "P2": round(med("six") / med("one"), 2),
        "P2_phase": round(med("six", "phase_s") / med("one", "phase_s"), 2),
        # The least P2 can be here: six hosts' CPU work spread over this machine's cores, per 1-host run.
        "P2_cpu_floor": round(med("six", "cpu_s") / cores / med("one"), 2),
        "P2_cores": round(med("cores") / med("one"), 2),
        "P2_cores_phase": round(med("cores", "phase_s") / med("one", "phase_s"), 2),
        "bare_apt_one_host_s": round(statistics.median(bare), 1),
        "P3": round(med("one") / statistics.median(bare), 2),
        "P3_phase": round(med("one", "phase_s") / statistics.median(bare), 2),
    }


def measure_equal_hosts(runs: int) -> dict[str, object]:
    """P2 with every host capped at the same CPU share in both runs (see the module docstring)."""
    cores = os.cpu_count() or 1
    share = cores / (6 + 1)
    runs_of: dict[str, list[dict[str, float]]] = {"one": [], "six": []}
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        for _ in range(runs):
            for key, hosts in (("one", 1), ("six", 6)):
                fresh_lab(hosts, site)
                cap_lab_hosts(hosts, share)
                runs_of[key].append(host_phase(site, NO_GLUSTER))
        sh([KF, "lab", "down"])

    def med(key: str, field: str = "s") -> float:
        return statistics.median(r[field] for r in runs_of[key])

    return {
        "equal_host_cpus": round(share, 3),
        "equal_one_host_s": round(med("one"), 1), "equal_one_host_phase_s": round(med("one", "phase_s"), 1),
        "equal_six_hosts_s": round(med("six"), 1), "equal_six_hosts_phase_s": round(med("six", "phase_s"), 1),
        "P2_equal_hosts": round(med("six") / med("one"), 2),
        "P2_equal_hosts_phase": round(med("six", "phase_s") / med("one", "phase_s"), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--equal-hosts", action="store_true", help="also P2 with every host capped alike")
    parser.add_argument("--only-equal-hosts", action="store_true", help="only P2 with every host capped alike")
    args = parser.parse_args()
    result = {} if args.only_equal_hosts else measure(args.runs)
    if args.equal_hosts or args.only_equal_hosts:
        result.update(measure_equal_hosts(args.runs))
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:24} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
