"""`kfinstall up --only hosts` end to end on 3 lab hosts: the CLI, the adapter, the run record.

Converges, then a second run reports changed=0 on every host (from the JSON summary); a host
stopped mid-run gives exit 4 naming it, and once it is back a re-run converges.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from ansible.parsing.yaml.loader import AnsibleLoader

from installer.phases.preflight import VERDICT_TASK

pytestmark = pytest.mark.lab

KF = str(Path(sys.executable).parent / "kfinstall")
HOSTS = ["h1", "h2", "h3"]
# The kubernetes role's reason (playbooks/roles/kubernetes/tasks/0010-preflight.yml) for the lab's hosts.
SKIP_REASON = re.compile(r"Kubernetes \d+\.\d+ packages cannot be (reached from|installed on) ")


def up(site: Path, *extra: str, background: bool = False):  # type: ignore[no-untyped-def]
    argv = [KF, "up", "-i", str(site), "--only", "hosts", "--yes", "--output", "json", *extra]
    if background:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)


def runs_dir(site: Path) -> Path:
    return site / ".kfinstall" / "lab" / "runs"


@pytest.fixture(scope="module")
def first_two_runs(lab_site):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    first = up(lab_site.out_dir)
    first_s = time.monotonic() - start
    assert first.returncode == 0, first.stderr[-4000:] + first.stdout[-2000:]
    start = time.monotonic()
    second = up(lab_site.out_dir)
    second_s = time.monotonic() - start
    assert second.returncode == 0, second.stderr[-4000:]
    print(f"\nkfinstall up --only hosts on 3 lab hosts: first {first_s:.1f} s, second {second_s:.1f} s")
    return json.loads(first.stdout), json.loads(second.stdout)


def test_first_run_converges_every_host(first_two_runs) -> None:  # type: ignore[no-untyped-def]
    first, _ = first_two_runs
    assert sorted(first["hosts"]) == HOSTS
    assert all(h["failed"] == 0 and h["unreachable"] == 0 for h in first["hosts"].values())
    # The lab's hosts cannot reach Kubernetes packages: the cluster is not built, and the run says so.
    assert [(p["name"], p["status"]) for p in first["phases"]] == [("preflight", "ok"), ("hosts", "incomplete")]


def test_the_skipped_kubernetes_step_is_reported_with_its_reason(first_two_runs) -> None:  # type: ignore[no-untyped-def]
    """Issue 13 item 5: it said `hosts: ok`, `result: ok`, the skip only in a task name that scrolled by."""
    for report in first_two_runs:
        assert report["result"] == "incomplete"
        skipped = {s["host"]: s for s in report["skipped"]}
        assert sorted(skipped) == HOSTS, report["skipped"]
        for host, skip in skipped.items():
            assert skip["phase"] == "hosts" and skip["step"] == "kubeadm, kubelet, kubectl and the cluster steps"
            assert SKIP_REASON.match(skip["reason"]), skip
            assert host in skip["reason"], skip
        summary = json.loads((Path(report["record"]) / "summary.json").read_text())
        assert summary["result"] == "incomplete" and summary["skipped"] == report["skipped"]


def test_second_run_changes_nothing(first_two_runs) -> None:  # type: ignore[no-untyped-def]
    _, second = first_two_runs
    assert {name: stats["changed"] for name, stats in second["hosts"].items()} == dict.fromkeys(HOSTS, 0)


def test_run_record_and_state(first_two_runs, lab_site) -> None:  # type: ignore[no-untyped-def]
    _, second = first_two_runs
    record = Path(second["record"])
    assert {"config.resolved.json", "ansible-vars.yml", "events.jsonl", "hosts.json", "preflight.json",
            "summary.json"} <= {
        p.name for p in record.iterdir()}
    secrets = [line.split(": ", 1)[1] for line in (lab_site.out_dir / "secrets.yml").read_text().splitlines()
               if ": " in line and not line.startswith("#")]
    text = "".join(p.read_text() for p in [*record.glob("*.json*"), *record.glob("*.yml")])
    assert not any(value and value in text for value in secrets if len(value) > 8)
    state = json.loads((lab_site.out_dir / ".kfinstall" / "lab" / "state.json").read_text())
    assert state["last_run_id"] == second["runId"] and state["history"][-1]["result"] == "incomplete"
    assert "hosts" not in state["phases_done"]  # Kubernetes was skipped: the host phase is not done


def test_host_phase_reuses_the_preflight_facts(first_two_runs) -> None:  # type: ignore[no-untyped-def]
    """The preflight gathers once (as root), as the first play of the host phase's one Ansible run
    (playbooks/up.yml); site.yml does not gather again, and starts only after kfinstall's verdict."""
    _, second = first_two_runs
    record = Path(second["record"])
    # Ansible's jsonfile cache: one file per host, named <prefix><host>.
    assert sorted(p.name[-2:] for p in (record / "facts").iterdir()) == HOSTS
    events = [json.loads(line) for line in (record / "events.jsonl").read_text().splitlines()]
    tasks = [e["task"] for e in events if e["event"] == "playbook_on_task_start"]
    assert "Gathering Facts" not in tasks
    assert "OS | Check the operating system family" in tasks  # a task that reads those facts ran
    assert tasks.index(VERDICT_TASK) < tasks.index("Validate | Check the groups and the settings")
    assert json.loads((record / "preflight.json").read_text())["problems"] == []
    assert "ansible-playbook up.yml" in (record / "kfinstall.log").read_text()


def test_plan_check_hosts_reports_nothing_to_change(first_two_runs, lab_site) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run([KF, "plan", "-i", str(lab_site.out_dir), "--check-hosts", "--output", "json"],
                          capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    check = json.loads(done.stdout)["hostCheck"]
    # "incomplete": check mode cannot preview the Kubernetes steps the lab skips (SKIPPED, with the reason).
    assert check["check"] is True and check["status"] == "incomplete", check["skipped"]
    assert {h: s["changed"] for h, s in check["hosts"].items()} == dict.fromkeys(HOSTS, 0)


def test_template_in_a_setting_runs_nowhere(first_two_runs, lab_site) -> None:  # type: ignore[no-untyped-def]
    """Issue #11 item 7 on real hosts: a Jinja payload in a setting the nfs_server role templates into its
    tasks and files (spec.storage.nfs.exportPath, which accepts any absolute path) goes through the real
    site.yml in check mode (nothing changes on the hosts; lookups would still run on this machine). It
    runs neither here nor on a host, and the role sees the value as written."""
    canary = f"/tmp/kfinstall-canary-{uuid.uuid4().hex}"
    value = "/srv/nfs/{{ lookup('pipe', 'touch " + canary + "') }}"  # beside the lab's export: not on overlayfs
    site = lab_site.out_dir
    before = set(runs_dir(site).iterdir())
    done = subprocess.run([KF, "plan", "-i", str(site), "--check-hosts", "--output", "json",
                           "--set", f"spec.storage.nfs.exportPath={value}"],
                          capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not Path(canary).exists(), "the payload ran on the controller"
    for host in HOSTS:
        assert lab_site.ssh(host, f"test ! -e {canary}").returncode == 0, f"the payload ran on {host}"
    [record] = set(runs_dir(site).iterdir()) - before
    # The record keeps it as kfinstall passed it: `!unsafe` YAML (AnsibleLoader reads the tag).
    assert yaml.load((record / "ansible-vars.yml").read_text(), Loader=AnsibleLoader)["kf_nfs_export_path"] == value
    # The role used it (check mode shows the export it would create), literally.
    diffs = json.dumps(json.loads(done.stdout)["hostCheck"]["diffs"])
    assert json.dumps(value)[1:-1] in diffs, diffs[:3000]


def _wait_for_events(site: Path, after: set[Path], count: int, timeout: float = 300) -> None:
    """Until the run has `count` events past preflight's verdict: site.yml's tasks are running (a host
    lost before the verdict is a preflight refusal, exit 3, not a failed host phase)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [p for p in runs_dir(site).glob("*/events.jsonl") if p.parent not in after]
        lines = fresh[0].read_text().splitlines() if fresh else []
        verdict = next((i for i, line in enumerate(lines) if VERDICT_TASK in line), None)
        if verdict is not None and len(lines) - verdict >= count:
            return
        time.sleep(0.2)
    raise AssertionError("the host phase did not start")


def _start_again(lab_site, host: str) -> None:  # type: ignore[no-untyped-def]
    """Start the stopped container; systemd boots it and sshd answers again."""
    subprocess.run(["podman", "start", lab_site.settings.container_name(host)], check=True, capture_output=True)
    deadline = time.monotonic() + 120
    while lab_site.ssh(host, "systemctl is-system-running --wait >/dev/null; true", timeout=60).returncode != 0:
        assert time.monotonic() < deadline, f"{host} did not come back"
        time.sleep(1)


def test_host_stopped_mid_run_fails_naming_it_and_rerun_converges(first_two_runs, lab_site) -> None:  # type: ignore[no-untyped-def]
    site = lab_site.out_dir
    before = set(runs_dir(site).iterdir())
    running = up(site, background=True)
    try:
        _wait_for_events(site, before, count=12)
        subprocess.run(["podman", "stop", "-t", "0", lab_site.settings.container_name("h3")], check=True,
                       capture_output=True)
        out, err = running.communicate(timeout=900)
    finally:
        if running.poll() is None:
            running.kill()
        _start_again(lab_site, "h3")  # before any assert: the lab tests after this one need h3 too
    assert running.returncode == 4, err[-3000:]
    assert "h3: task '" in err and "unreachable" in err, err[-3000:]
    # The JSON summary on stdout says the same: the failed host phase with its per-host counts.
    failed = json.loads(out)
    assert failed["result"] == "failed" and "h3: task '" in failed["error"]
    assert failed["phases"][-1]["name"] == "hosts" and failed["phases"][-1]["status"] == "failed"
    assert failed["hosts"]["h3"]["unreachable"] >= 1, failed["hosts"]
    # The others converge without waiting for it: the Gluster peer wait does not wait for a server the run
    # lost (it once waited its whole glusterfs_peer_timeout, then failed h1 too).
    assert failed["hosts"]["h1"]["failed"] == 0 and failed["hosts"]["h2"]["failed"] == 0, failed["hosts"]
    again = up(site)
    assert again.returncode == 0, again.stderr[-4000:]
    report = json.loads(again.stdout)
    assert all(h["failed"] == 0 and h["unreachable"] == 0 for h in report["hosts"].values())
