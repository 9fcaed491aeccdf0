"""`kfinstall node remove` on real podman hosts (issue 15 item 2): the host reset and the hosts.yml edit.

Every host of the session's lab is refused by node remove (h1 is the control plane and NFS server, and
h1..h3 hold the bricks of the replica-3 Gluster volume), so a 4th lab host is started as a plain worker,
converged with `up`, and removed:
  * node remove h4 runs kfinstall's reset on h4 alone (kfinstall's files gone) between the drain and the
    Node deletion;
  * hosts.yml loses exactly h4's lines;
  * h1..h3 run no task.
No Kubernetes runs on lab hosts, so the cluster side is a stand-in kubectl (it answers with h4's Node and
logs every call) and the kubeconfig lives in a copy of the state dir: the session's state never names a
cluster. The lab is put back to 3 hosts (and its hosts.yml to what `lab up` wrote) at the end.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from labsite import LabSite, vm_count

from installer.lab import lab_up

pytestmark = pytest.mark.lab

KF = str(Path(sys.executable).parent / "kfinstall")
OLD, NEW = ["h1", "h2", "h3"], "h4"
KFINSTALL_FILE = "/etc/sysctl.d/90-kfinstall.conf"  # created by os_prepare on every lab host (not there before)

STAND_IN_KUBECTL = r'''#!{python}
import json, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\n")
if "nodes" in args and "get" in args:
    print(json.dumps({{"items": [{{"metadata": {{"name": "h4"}}, "status": {{
        "addresses": [{{"type": "InternalIP", "address": {address!r}}}],
        "conditions": [{{"type": "Ready", "status": "True"}}]}}}}]}}))
elif "pods" in args and "get" in args:
    print(json.dumps({{"items": []}}))
'''


def kf(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KF, *args, "-i", str(site), "--output", "json"], capture_output=True, text=True,
                          timeout=1800, check=False, env=env)


@pytest.fixture(scope="module")
def removed(lab_site: LabSite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    site = lab_site.out_dir
    first = kf(site, "up", "--only", "hosts", "--yes")
    assert first.returncode == 0, first.stderr[-4000:] + first.stdout[-2000:]
    status = lab_up(len(OLD) + 1, vm_count(lab_site), out=site, settings=lab_site.settings, report=print)
    lab = replace(lab_site, status=status)  # the lab as it is now, h4 included
    written = (site / "hosts.yml").read_bytes()  # what `lab up` wrote (and will only replace as it is)
    try:
        # A full run, so the NFS export admits h4 as `up` makes it (h1..h3 change nothing else).
        joined = kf(site, "up", "--only", "hosts", "--yes")
        assert joined.returncode == 0, joined.stderr[-4000:] + joined.stdout[-2000:]
        before = {"file": lab.ssh(NEW, f"test -e {KFINSTALL_FILE}").returncode == 0,
                  "containerd": lab.ssh(NEW, "systemctl is-active containerd").stdout.strip()}
        work = tmp_path_factory.mktemp("node-remove")
        state = work / "state"
        shutil.copytree(site / ".kfinstall" / "lab", state, ignore=shutil.ignore_patterns("runs", "pulumi", "lock"))
        (state / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
        (state / "kubeconfig").chmod(0o600)
        log = work / "kubectl.log"
        address = next(m.address for m in status.machines if m.name == NEW)
        kubectl = work / "bin" / "kubectl"
        kubectl.parent.mkdir()
        kubectl.write_text(STAND_IN_KUBECTL.format(python=sys.executable, log=str(log), address=address))
        kubectl.chmod(0o755)
        env = {**os.environ, "PATH": f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}"}
        done = kf(site, "node", "remove", NEW, "--state-dir", str(state), "--yes", env=env)
        yield {
            "done": done, "before": before, "written": written, "hosts_after": (site / "hosts.yml").read_text(),
            "calls": [json.loads(line)[3:] for line in log.read_text().splitlines()] if log.exists() else [],
            "after": {"file": lab.ssh(NEW, f"test -e {KFINSTALL_FILE}").returncode == 0,
                      "containerd": lab.ssh(NEW, "systemctl is-active containerd; systemctl is-enabled "
                                            "containerd").stdout.split()},
            "state": state,
        }
    finally:
        (site / "hosts.yml").write_bytes(written)  # back to `lab up`'s own file, which it then replaces
        lab_up(len(OLD), vm_count(lab_site), out=site, settings=lab_site.settings, report=print)


def test_node_remove_resets_the_worker_and_only_it(removed: dict[str, Any]) -> None:
    done = removed["done"]
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout[-2000:]
    plan = json.loads(done.stdout)
    assert plan["result"] == "removed" and [s["status"] for s in plan["steps"]] == ["done"] * 5, plan["steps"]
    assert removed["before"] == {"file": True, "containerd": "active"}
    # kfinstall's own file is gone (services and packages are reset's business: tests/lab/test_reset_lab.py).
    assert removed["after"]["file"] is False
    # The reset's run record (in the state dir node remove was given) names h4 alone.
    [record] = [r for r in (removed["state"] / "runs").iterdir() if (r / "summary.json").exists()]
    summary = json.loads((record / "summary.json").read_text())
    assert sorted(summary["hosts"]) == [NEW] and summary["hosts"][NEW]["changed"] > 0, summary["hosts"]
    assert summary["hosts"][NEW]["failed"] == 0 and summary["result"] in ("ok", "incomplete"), summary
    assert [c[0] for c in removed["calls"] if c[0] in ("cordon", "drain", "delete")] == ["cordon", "drain", "delete"]


def test_hosts_yml_loses_exactly_the_removed_host(removed: dict[str, Any]) -> None:
    old = yaml.safe_load(removed["written"])
    new = yaml.safe_load(removed["hosts_after"])
    old["all"]["hosts"].pop(NEW)
    for group in old["all"].get("children", {}).values():
        if isinstance(group, dict) and isinstance(group.get("hosts"), dict):
            group["hosts"].pop(NEW, None)
    normalized = {**new}
    for group in normalized["all"].get("children", {}).values():
        if isinstance(group, dict) and group.get("hosts") is None and "hosts" in group:
            group["hosts"] = {}
    assert normalized == old
    # Lines were only taken out: every other line is the old one, in the old order.
    before, after = removed["written"].decode().splitlines(), removed["hosts_after"].splitlines()
    operations = difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes()
    assert {op for op, *_ in operations} <= {"equal", "delete"}, operations
    gone = [line for op, i, j, *_ in operations if op == "delete" for line in before[i:j]]
    assert gone and all("h4" in line or line.startswith("      ") for line in gone), gone
