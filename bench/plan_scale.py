#!/usr/bin/env python3
"""bench/plan_scale: `kfinstall plan -o json` on a 1,000-host inventory against `ansible-inventory --list`.

The plan is the whole document: per-step host lists (Ansible's pattern resolution on the plays) and
a diff against a recorded apply. The site is generated, its apply recorded through up's own record
function (installer.applied.record_apply: hosts and the rendered platform), then one host is added
and one platform setting changed (JupyterHub's home volume 10Gi -> 20Gi), so the diff shows a host
added, a changed setting and changed components. Each command runs 5 times, interleaved, in this one
run, on the same files; medians are compared. `plan (no record)` is the same plan with an empty
state dir (no diff), for the cost of the diff. Peak RSS from GNU time (`/usr/bin/time -f %M`, KiB).
Targets (issue 13): plan / ansible-inventory <= 1.2, plan peak RSS < 300 MB.

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
from typing import Any

import yaml

BIN = Path(sys.executable).parent


def record_then_change(site: Path, state: Path) -> None:
    """Record an apply of the site as `up` does after its host and platform phases, then add one
    worker and change one setting the platform renders (JupyterHub's home volume size)."""
    from installer.applied import record_apply
    from installer.config.load import load

    record_apply(load(site, (), need_secrets=False, state_dir=state), ("hosts", "platform"), run_id="bench")
    inventory = yaml.safe_load((site / "hosts.yml").read_text())
    added = f"node{len(inventory['all']['hosts']):04d}"
    inventory["all"]["hosts"][added] = {"ansible_host": "10.254.0.1", "rack": "r-new"}
    inventory["all"]["children"]["kube_node"]["hosts"][added] = None
    (site / "hosts.yml").write_text(yaml.safe_dump(inventory, sort_keys=False))
    cluster = yaml.safe_load((site / "kfinstall.yaml").read_text())
    cluster["spec"].setdefault("components", {})["jupyterhub"] = {"storageSize": "20Gi"}
    (site / "kfinstall.yaml").write_text(yaml.safe_dump(cluster, sort_keys=False))


def check_plan(argv: list[str]) -> dict[str, Any]:
    """The plan document really holds per-step hosts and the diff the bench is meant to time."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr[-2000:]}")
    doc = json.loads(done.stdout)
    diff = doc.get("diff") or {}
    hosts_phase = next((p for p in doc.get("phases", []) if p.get("name") == "hosts"), {})
    return {
        "steps_with_hosts": sum(1 for step in hosts_phase.get("steps", []) if step.get("hosts")),
        "hosts_added": sum(len(v) for v in (diff.get("hostsAdded") or {}).values())
        if isinstance(diff.get("hostsAdded"), dict) else len(diff.get("hostsAdded") or []),
        "settings_changed": len(diff.get("settings") or []),
        # components is {rendered, fromCache, created, changed, deleted}: count the objects, not its keys
        "components_changed": sum(len((diff.get("components") or {}).get(k) or [])
                                  for k in ("created", "changed", "deleted")),
    }


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
        site, state, empty = Path(tmp, "site"), Path(tmp, "state"), Path(tmp, "empty-state")
        site.mkdir()
        write_site(site, args.hosts)
        record_then_change(site, state)
        plan_cmd = [str(BIN / "kfinstall"), "plan", "-i", str(site), "--state-dir", str(state), "--output", "json"]
        bare_cmd = [str(BIN / "kfinstall"), "plan", "-i", str(site), "--state-dir", str(empty), "--output", "json"]
        inv_cmd = [str(BIN / "ansible-inventory"), "-i", str(site / "hosts.yml"), "--list"]
        content = check_plan(plan_cmd)  # also warms the page cache and .pyc files
        timed(bare_cmd), timed(inv_cmd)
        plan, bare, inv = [], [], []
        for _ in range(args.runs):
            plan.append(timed(plan_cmd))
            inv.append(timed(inv_cmd))
            bare.append(timed(bare_cmd))
    result: dict[str, Any] = {
        "hosts": args.hosts + 1, "runs": args.runs, **content,
        "plan_median_s": round(statistics.median(t for t, _ in plan), 3),
        "plan_no_record_median_s": round(statistics.median(t for t, _ in bare), 3),
        "ansible_inventory_median_s": round(statistics.median(t for t, _ in inv), 3),
        "plan_peak_rss_mb": round(max(r for _, r in plan) / 1024, 1),
        "plan_no_record_peak_rss_mb": round(max(r for _, r in bare) / 1024, 1),
        "ansible_inventory_peak_rss_mb": round(max(r for _, r in inv) / 1024, 1),
    }
    result["ratio"] = round(result["plan_median_s"] / result["ansible_inventory_median_s"], 2)
    result["ratio_no_record"] = round(result["plan_no_record_median_s"] / result["ansible_inventory_median_s"], 2)
    result["targets_met"] = result["ratio"] <= 1.2 and (result["plan_peak_rss_mb"] or 0) < 300
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
