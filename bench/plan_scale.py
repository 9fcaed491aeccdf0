#!/usr/bin/env python3
"""bench/plan_scale: `kfinstall plan` on a 1,000-host inventory against `ansible-inventory --list`.

Both commands parse the same generated files; each runs 5 times, interleaved, in this one run;
medians are compared. Peak RSS comes from GNU time (`/usr/bin/time -f %M`, KiB).
Targets: ratio plan / ansible-inventory <= 1.5, plan peak RSS < 300 MB.

    python bench/plan_scale.py [--hosts 1000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def write_site(site: Path, hosts: int) -> None:
    """A bare-metal site: 3 control-plane hosts, the rest workers, every 4th a GPU host."""
    names = [f"node{i:04d}" for i in range(hosts)]
    inventory = {"all": {
        "hosts": {n: {"ansible_host": f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", "rack": f"r{i // 40}"}
                  for i, n in enumerate(names)},
        "children": {
            "kube_control_plane": {"hosts": dict.fromkeys(names[:3])},
            "kube_node": {"hosts": dict.fromkeys(names[3:])},
            "gpu": {"hosts": dict.fromkeys(names[3::4])},
            "nfs_server": {"hosts": dict.fromkeys(names[3:4])},
            "gluster": {"hosts": dict.fromkeys(names[4:7])},
        }}}
    (site / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    cluster = {"apiVersion": "kfinstall.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "scale"},
               "spec": {"profile": "private-gpu", "channel": "26.03",
                        "kubernetes": {"controlPlaneEndpoint": "10.255.0.1"},
                        "auth": {"ldap": {"url": "ldaps://ldap.example.com", "bindDn": "cn=hub,dc=example,dc=com",
                                          "userSearchBase": "ou=people,dc=example,dc=com"}},
                        "networking": {"metallb": {"addresses": ["10.255.1.0/28"]},
                                       "ingress": {"host": "ml.example.com"}}}}
    (site / "kfinstall.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run; the command's output is discarded."""
    gnu_time = shutil.which("time") and Path("/usr/bin/time").exists()
    wrapped = ["/usr/bin/time", "-f", "%M", *argv] if gnu_time else argv
    start = time.perf_counter()
    done = subprocess.run(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    rss = int(done.stderr.strip().splitlines()[-1]) if gnu_time else 0
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        write_site(site, args.hosts)
        plan_cmd = [str(BIN / "kfinstall"), "plan", "-i", str(site), "--output", "json"]
        inv_cmd = [str(BIN / "ansible-inventory"), "-i", str(site / "hosts.yml"), "--list"]
        timed(plan_cmd), timed(inv_cmd)  # warm the page cache and .pyc files once
        plan, inv = [], []
        for _ in range(args.runs):
            plan.append(timed(plan_cmd))
            inv.append(timed(inv_cmd))
    result = {
        "hosts": args.hosts, "runs": args.runs,
        "plan_median_s": round(statistics.median(t for t, _ in plan), 3),
        "ansible_inventory_median_s": round(statistics.median(t for t, _ in inv), 3),
        "plan_peak_rss_mb": round(max(r for _, r in plan) / 1024, 1),
        "ansible_inventory_peak_rss_mb": round(max(r for _, r in inv) / 1024, 1),
    }
    result["ratio"] = round(result["plan_median_s"] / result["ansible_inventory_median_s"], 2)
    result["targets_met"] = result["ratio"] <= 1.5 and (result["plan_peak_rss_mb"] or 0) < 300
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
