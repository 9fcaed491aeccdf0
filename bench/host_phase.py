#!/usr/bin/env python3
"""bench/host_phase: the host phase on real lab hosts (needs root and podman; brings its own lab up and down).

P1 = second run / first run of `kfinstall up --only hosts` on 3 fresh hosts   (target <= 0.30, changed=0)
P2 = host phase on 6 fresh hosts / on 1 fresh host                            (target <= 1.4)
P3 = host phase on 1 fresh host / a bare `apt-get install` of the same
     packages plus service starts on a fresh host                             (target <= 1.5)

Beside P1, on the same converged 3 hosts:
  floor    = `ansible all -m kfinstall.hosts.probe` (kfinstall's Ansible settings, new SSH connections)
             / first run: a no-op run is SSH plus one probe per host, so no converged run gets below it
             (target for a converged run: <= 0.2)
  restarts = `systemctl restart containerd`, and `systemctl restart nfs-ganesha` until port 2049 accepts,
             timed on h1 itself (no SSH in the figure), in seconds and as a fraction of the first run: a
             fresh host restarts each once (the package starts it with its default configuration, the
             role writes its own and its handler restarts it)

Medians of --runs repetitions, all in this one run (the floor and each restart: median of 3 per
repetition, of all samples over the repetitions). GlusterFS is off for P2 and P3 (a 1-host lab cannot
hold a replica 3 volume), so both sides of each ratio do the same work per host.

Each ratio is given twice: for the whole `kfinstall up --only hosts` command (preflight included)
and for its "hosts" phase alone (the duration in the command's JSON summary). Lab hosts are
containers on this machine, so they share its cores with each other and with Ansible: the machine's
busy CPU seconds (/proc/stat) are recorded for every run, and P2 is also given for as many hosts as
there are cores (P2_cores), which shows the fan-out without the machine's core count in the ratio.

With --equal-hosts it also measures P2 the way separate machines would see it: every lab host is
capped (cgroup CPU quota) at an equal share of this machine, cores / (6 hosts + the controller), in
the 1-host run and in the 6-host run alike, so the 6-host run does not have six times the work on the
same cores (P2_equal_hosts).

The bench runs on a lab of its own (name "kfbench", 10.89.14.0/24, work dir
/var/lib/kfinstall-lab-kfbench), never on the default lab that `kfinstall lab` and other tests use.

    sudo .venv/bin/python bench/host_phase.py [--only P1,P2,P3] [--runs 3] [--json] [--equal-hosts]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from installer.adapters.ansible import ansible_environment as kfinstall_ansible_environment
from installer.adapters.ssh import HostKeyPolicy
from installer.config.ssh import site_known_hosts
from installer.errors import KfinstallError
from installer.lab import DEFAULT_WORK_DIR, LabSettings, LabStatus, lab_down, lab_up
from installer.lab.settings import host_name
from installer.lab.ssh import ssh_argv

BIN = Path(sys.executable).parent
KF = str(BIN / "kfinstall")
ROOT = Path(__file__).resolve().parent.parent
NO_GLUSTER = ["--set", "spec.storage.gluster.enabled=false"]
RATIOS = ("P1", "P2", "P3")
LAB = LabSettings(work_dir=Path(f"{DEFAULT_WORK_DIR}-kfbench"), subnet=ipaddress.IPv4Network("10.89.14.0/24"),
                  name="kfbench")

PACKAGE_TABLE = ROOT / "playbooks" / "roles" / "kf_defaults" / "defaults" / "main.yml"
# The package table's entries that apply on lab host h1 (control plane, Kubernetes node and NFS server
# under profile lab: distro containerd, NFS through nfs-ganesha) with GlusterFS off. Named by entry,
# not by role: role os_prepare also owns chrony (off on a container host) and role nfs_server the
# in-kernel NFS server. The one-host run checks that kfinstall installed every package they list.
BARE_ENTRIES = ("os_prepare", "containerd", "nfs_client", "nfs_server_ganesha")
REPEATS = 3  # samples of the floor and of each restart per repetition
NFS_PORT = 2049


def bare_entries() -> list[dict[str, Any]]:
    """BARE_ENTRIES read from the package table; exits naming the file when one is missing or templated."""
    table = (yaml.safe_load(PACKAGE_TABLE.read_text()) or {}).get("kf_packages") or {}
    missing = [name for name in BARE_ENTRIES if name not in table]
    if missing:
        raise SystemExit(f"{PACKAGE_TABLE}: kf_packages has no entry {', '.join(missing)}; "
                         f"fix BARE_ENTRIES in {__file__} to the entries a lab host with GlusterFS off needs")
    entries = [table[name] for name in BARE_ENTRIES]
    for name, entry in zip(BARE_ENTRIES, entries, strict=True):
        for key in ("packages", "services"):
            value = entry.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SystemExit(f"{PACKAGE_TABLE}: kf_packages.{name}.{key} is not a plain list of names "
                                 f"(a template?); the bench cannot read it: {value!r}")
    return entries


def bare_packages() -> list[str]:
    """What the roles install on a lab container host with GlusterFS off, read from the package table."""
    return list(dict.fromkeys(p for entry in bare_entries() for p in entry["packages"]))


def bare_services() -> list[str]:
    """The services the roles run there (the table's `services` of the same entries)."""
    return list(dict.fromkeys(s for entry in bare_entries() for s in entry.get("services", [])))


def say(message: str) -> None:
    """Progress on stderr (the result goes to stdout)."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def sh(argv: list[str], timeout: float = 3600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


class Lab:
    """The bench's own lab, written as a site into `site`; its hosts reached over SSH with pinned keys."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.status: LabStatus | None = None

    def fresh(self, hosts: int) -> None:
        say(f"lab {LAB.name}: {hosts} fresh host(s)")
        lab_down(settings=LAB)
        self.status = lab_up(hosts, out=self.site, settings=LAB)
        self.wait_until_booted()

    def down(self) -> None:
        lab_down(settings=LAB)
        self.status = None

    @property
    def addresses(self) -> dict[str, str]:
        assert self.status is not None, "no lab is up"
        return {m.name: m.address for m in self.status.machines}

    @property
    def known_hosts(self) -> Path:
        """Where `lab up` pinned the keys of the hosts it made: the site's state dir, as `up` checks them."""
        known_hosts = site_known_hosts(self.site)
        assert known_hosts is not None, f"{self.site}/kfinstall.yaml names no cluster"
        return known_hosts

    def ssh(self, host: str, command: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        return sh(ssh_argv(LAB.ssh_key, self.addresses[host], command, self.known_hosts), timeout=timeout)

    def wait_until_booted(self) -> None:
        """`lab up` returns once sshd answers; wait until each host's systemd has finished starting its
        units too, as on a machine an operator installs on, so neither side of a ratio shares the cores
        with a host's boot."""
        for address in self.addresses.values():
            subprocess.run(ssh_argv(LAB.ssh_key, address, "timeout 300 systemctl is-system-running --wait",
                                    self.known_hosts),
                           capture_output=True, text=True, timeout=330, check=False)

    def cap_hosts(self, cpus: float) -> None:
        """Limit every lab host to `cpus` CPUs (podman update: the container's cgroup CPU quota)."""
        for index in range(1, len(self.addresses) + 1):
            sh(["podman", "update", "--cpus", f"{cpus:.3f}", LAB.container_name(host_name(index))])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on this machine skews every figure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def busy_cpu_seconds() -> float:
    """CPU seconds this machine has been busy since boot (every process: Ansible and all lab hosts)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def host_phase(lab: Lab, extra: list[str]) -> dict[str, float]:
    """`kfinstall up --only hosts`: whole seconds, the hosts phase's seconds, changed count, busy CPU seconds."""
    cpu, start = busy_cpu_seconds(), time.perf_counter()
    done = sh([KF, "up", "-i", str(lab.site), "--only", "hosts", "--yes", "--output", "json", *extra])
    elapsed, cpu = time.perf_counter() - start, busy_cpu_seconds() - cpu
    report = json.loads(done.stdout)
    phase = next(p for p in report["phases"] if p["name"] == "hosts")
    changed = sum(h["changed"] for h in report["hosts"].values())
    say(f"kfinstall up --only hosts: {elapsed:.1f} s (phase {phase['duration_s']:.1f} s), changed={changed}")
    return {"s": elapsed, "phase_s": phase["duration_s"], "changed": changed, "cpu_s": cpu}


def check_bare_packages_installed(lab: Lab) -> None:
    """After kfinstall's run on h1: every package the bare side installs is one kfinstall installed too,
    so BARE_ENTRIES cannot name an entry that does not apply on a lab host."""
    query = "dpkg-query -W -f '${Package} ${db:Status-Status}\\n' " + " ".join(map(shlex.quote, bare_packages()))
    done = subprocess.run(ssh_argv(LAB.ssh_key, lab.addresses["h1"], query, lab.known_hosts),
                          capture_output=True, text=True, timeout=120, check=False)
    installed = {line.split()[0] for line in done.stdout.splitlines() if line.endswith(" installed")}
    absent = [p for p in bare_packages() if p not in installed]
    if absent:
        raise SystemExit(f"kfinstall did not install {', '.join(absent)} on a 1-host lab, yet BARE_ENTRIES "
                         f"({', '.join(BARE_ENTRIES)}) lists them: fix BARE_ENTRIES in {__file__}")


def bare_install(lab: Lab) -> float:
    """apt-get install + service starts over SSH on h1, the way an operator would by hand."""
    assert lab.status is not None
    script = (f"echo 'deb [trusted=yes] {lab.status.repo_url} ./' > /etc/apt/sources.list.d/lab.list && "
              "apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q -y install "
              + " ".join(map(shlex.quote, bare_packages())) + " && systemctl enable --now "
              + " ".join(map(shlex.quote, bare_services())))
    start = time.perf_counter()
    lab.ssh("h1", script)
    elapsed = time.perf_counter() - start
    say(f"bare apt-get install + service starts: {elapsed:.1f} s")
    return elapsed


def noop_floor(lab: Lab) -> float:
    """Seconds of `ansible all -m kfinstall.hosts.probe` with the Ansible settings of kfinstall's own runs
    (host keys checked against the site's known_hosts). Each call gets its own SSH control directory, so
    it opens new connections as a run started a while after the last one would."""
    policy = HostKeyPolicy("strict", lab.known_hosts)
    with tempfile.TemporaryDirectory(prefix="kfbench-cp-") as control_dir:
        env = {**os.environ, **kfinstall_ansible_environment(policy), "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir}
        start = time.perf_counter()
        sh([str(BIN / "ansible"), "all", "-i", str(lab.site / "hosts.yml"), "-b", "-m", "kfinstall.hosts.probe"],
           env=env)
        elapsed = time.perf_counter() - start
        say(f"ansible all -m kfinstall.hosts.probe: {elapsed:.1f} s")
        # The SSH masters (ControlPersist) would outlive the directory: close each (any host name does).
        for socket in Path(control_dir).iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "master"],
                           capture_output=True, timeout=30, check=False)
    return elapsed


# Timed on the host itself, so SSH does not count; nanoseconds printed.
_TIMED = "s=$(date +%s%N); {command} || exit 1; echo $(( $(date +%s%N) - s ))"
_UNTIL_PORT = ("deadline=$(( $(date +%s) + 120 )); "
               "until (exec 3<>/dev/tcp/{address}/{port}) 2>/dev/null; do "
               "[ $(date +%s) -lt $deadline ] || {{ echo 'port {port} closed after 120 s' >&2; exit 1; }}; "
               "sleep 0.05; done")


def restart_seconds(lab: Lab, command: str) -> float:
    done = lab.ssh("h1", "bash -c " + shlex.quote(_TIMED.format(command=command)), timeout=300)
    seconds = int(done.stdout.split()[-1]) / 1e9
    say(f"{command.split(' &&', maxsplit=1)[0]}: {seconds:.2f} s")
    return seconds


def restart_containerd(lab: Lab) -> float:
    return restart_seconds(lab, "systemctl restart containerd")


def restart_ganesha(lab: Lab) -> float:
    until_port = _UNTIL_PORT.format(address=lab.addresses["h1"], port=NFS_PORT)
    return restart_seconds(lab, f"systemctl restart nfs-ganesha && {until_port}")


def samples(measure_once: Callable[[Lab], float], lab: Lab) -> list[float]:
    return [measure_once(lab) for _ in range(REPEATS)]


def measure(runs: int, only: set[str], lab: Lab) -> dict[str, object]:
    cores = os.cpu_count() or 1
    runs_of: dict[str, list[dict[str, float]]] = {"first": [], "second": [], "one": [], "cores": [], "six": []}
    bare: list[float] = []
    floor: list[float] = []
    restarts: dict[str, list[float]] = {"containerd": [], "nfs-ganesha": []}
    for _ in range(runs):
        if "P1" in only:
            lab.fresh(3)
            runs_of["first"].append(host_phase(lab, []))
            runs_of["second"].append(host_phase(lab, []))
            floor += samples(noop_floor, lab)
            restarts["containerd"] += samples(restart_containerd, lab)
            restarts["nfs-ganesha"] += samples(restart_ganesha, lab)
        if only & {"P2", "P3"}:
            lab.fresh(1)
            runs_of["one"].append(host_phase(lab, NO_GLUSTER))
            check_bare_packages_installed(lab)
        if "P2" in only:
            for key, hosts in (("cores", cores), ("six", 6)):
                lab.fresh(hosts)
                runs_of[key].append(host_phase(lab, NO_GLUSTER))
        if "P3" in only:
            lab.fresh(1)
            bare.append(bare_install(lab))

    def med(key: str, field: str = "s") -> float:
        return statistics.median(r[field] for r in runs_of[key])

    result: dict[str, object] = {"runs": runs, "cores": cores}
    if "P1" in only:
        first = med("first")
        result.update({
            "first_3_hosts_s": round(first, 1), "second_3_hosts_s": round(med("second"), 1),
            "second_run_changed": [r["changed"] for r in runs_of["second"]],
            "P1": round(med("second") / first, 2),
            "P1_phase": round(med("second", "phase_s") / med("first", "phase_s"), 2),
            "noop_floor_3_hosts_s": round(statistics.median(floor), 1),
            "floor": round(statistics.median(floor) / first, 2),
            # What a converged run spends beyond SSH plus one probe per host.
            "second_over_floor_s": round(med("second") - statistics.median(floor), 1),
            "restart_containerd_s": round(statistics.median(restarts["containerd"]), 2),
            "restart_containerd_of_first": round(statistics.median(restarts["containerd"]) / first, 3),
            "restart_ganesha_s": round(statistics.median(restarts["nfs-ganesha"]), 2),
            "restart_ganesha_of_first": round(statistics.median(restarts["nfs-ganesha"]) / first, 3),
        })
    if only & {"P2", "P3"}:
        result.update({"one_host_s": round(med("one"), 1), "one_host_phase_s": round(med("one", "phase_s"), 1),
                       "one_host_cpu_s": round(med("one", "cpu_s"), 1)})
    if "P2" in only:
        result.update({
            "six_hosts_s": round(med("six"), 1), "six_hosts_phase_s": round(med("six", "phase_s"), 1),
            "six_hosts_cpu_s": round(med("six", "cpu_s"), 1),
            "P2": round(med("six") / med("one"), 2),
            "P2_phase": round(med("six", "phase_s") / med("one", "phase_s"), 2),
            # The least P2 can be here: six hosts' CPU work spread over this machine's cores, per 1-host run.
            "P2_cpu_floor": round(med("six", "cpu_s") / cores / med("one"), 2),
            "P2_cores": round(med("cores") / med("one"), 2),
            "P2_cores_phase": round(med("cores", "phase_s") / med("one", "phase_s"), 2),
        })
    if "P3" in only:
        result.update({
            "bare_apt_one_host_s": round(statistics.median(bare), 1),
            "P3": round(med("one") / statistics.median(bare), 2),
            "P3_phase": round(med("one", "phase_s") / statistics.median(bare), 2),
        })
    return result


def measure_equal_hosts(runs: int, lab: Lab) -> dict[str, object]:
    """P2 with every host capped at the same CPU share in both runs (see the module docstring)."""
    cores = os.cpu_count() or 1
    share = cores / (6 + 1)
    runs_of: dict[str, list[dict[str, float]]] = {"one": [], "six": []}
    for _ in range(runs):
        for key, hosts in (("one", 1), ("six", 6)):
            lab.fresh(hosts)
            lab.cap_hosts(share)
            runs_of[key].append(host_phase(lab, NO_GLUSTER))

    def med(key: str, field: str = "s") -> float:
        return statistics.median(r[field] for r in runs_of[key])

    return {
        "equal_host_cpus": round(share, 3),
        "equal_one_host_s": round(med("one"), 1), "equal_one_host_phase_s": round(med("one", "phase_s"), 1),
        "equal_six_hosts_s": round(med("six"), 1), "equal_six_hosts_phase_s": round(med("six", "phase_s"), 1),
        "P2_equal_hosts": round(med("six") / med("one"), 2),
        "P2_equal_hosts_phase": round(med("six", "phase_s") / med("one", "phase_s"), 2),
    }


def ratio_list(text: str) -> set[str]:
    chosen = {part.strip().upper() for part in text.split(",") if part.strip()}
    unknown = sorted(chosen - set(RATIOS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: give a comma-separated list of {', '.join(RATIOS)}")
    return chosen


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", type=ratio_list, default=set(RATIOS), metavar="P1,P2,P3",
                        help="the ratios to measure (default all; P2 is the slow one); the floor and the "
                             "restart costs come with P1")
    parser.add_argument("--runs", type=positive, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--equal-hosts", action="store_true", help="also P2 with every host capped alike")
    parser.add_argument("--only-equal-hosts", action="store_true", help="only P2 with every host capped alike")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root (rootful podman): run it with sudo")
    bare_entries()  # a stale BARE_ENTRIES stops the bench before any host is made
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="kfbench-") as tmp:
        lab = Lab(Path(tmp) / "site")
        try:
            result = {} if args.only_equal_hosts else measure(args.runs, args.only, lab)
            if args.equal_hosts or args.only_equal_hosts:
                result.update(measure_equal_hosts(args.runs, lab))
        except KfinstallError as exc:
            raise SystemExit(f"lab: {exc}") from None
        finally:
            lab.down()
    result.update({"load_average_start": load_at_start, "load_average_end": load_average()})
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:28} {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
