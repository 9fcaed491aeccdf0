"""Helpers for the host-role lab tests (no tests here): run playbooks/ against a lab, read the recap.

The extra vars are the ones `kfinstall up` passes (ClusterConfig.ansible_vars() of the lab site),
with lab-only overrides: Kubernetes packages come from the lab's apt repository, which has none, so
the kubernetes role stops after its preflight and says why (kf_kubernetes_packages_unreachable=skip).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labsite import lab_ssh_env

from installer.adapters.ansible import write_unsafe_vars

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
VENV_BIN = Path(sys.executable).parent
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.M,
)


@dataclass(frozen=True)
class PlaybookRun:
    rc: int
    output: str
    seconds: float

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """Per-host counts summed over every PLAY RECAP (one per playbook given on the command line)."""
        totals: dict[str, dict[str, int]] = {}
        for m in RECAP.finditer(self.output):
            counts = totals.setdefault(m["host"], dict.fromkeys(("ok", "changed", "unreachable", "failed"), 0))
            for key in counts:
                counts[key] += int(m[key])
        return totals

    def slowest(self, count: int = 10) -> str:
        """The first lines of profile_tasks' TASKS RECAP: the slowest tasks of the run."""
        lines = self.output.split("TASKS RECAP", 1)[-1].splitlines()
        timed = [line for line in lines if line.rstrip().endswith("s") and " -" in line]
        return "\n".join(timed[:count])

    def task_results(self, task: str) -> dict[str, str]:
        """host -> ok/changed/skipping/fatal for one task, as the default stdout callback printed it."""
        results: dict[str, str] = {}
        for block in self.output.split("\nTASK [")[1:]:
            title, _, body = block.partition("\n")
            body = re.split(r"\n(?:RUNNING HANDLER|PLAY|PLAY RECAP) \[", body)[0]  # this task's lines only
            if title.split("] ", 1)[0].split(" : ", 1)[-1] != task:
                continue
            for m in re.finditer(r"^(ok|changed|skipping|fatal|failed): \[([^\]\s]+)", body, re.MULTILINE):
                results.setdefault(m[2], m[1])
        return results

    def tail(self, lines: int = 120) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def lab_extra_vars(site_dir: Path, repo_url: str, state_dir: Path) -> dict[str, Any]:
    from installer.config.load import load

    cfg = load(site_dir, need_secrets=False, state_dir=state_dir)
    extra = cfg.ansible_vars()
    extra.update(
        {
            # The lab profile's choices, stated here so the test does not depend on profile edits.
            "kf_containerd_source": "distro",
            "kf_gpu_enabled": False,
            "kf_nfs_enabled": True,
            "kf_nfs_implementation": "ganesha",
            "kf_nfs_export_path": "/srv/nfs/kfinstall",
            "kf_gluster_enabled": True,
            "kf_gluster_replica": 3,
            # No Kubernetes packages are obtainable here: point at the lab repository (on the lab
            # bridge, so no host reaches past it) and let the role report and skip.
            "kf_kubernetes_package_source": "mirror",
            "kf_kubernetes_package_mirror": repo_url,
            "kubernetes_package_mirror_trusted": True,
            "kf_kubernetes_packages_unreachable": "skip",
        }
    )
    return extra


def run_playbooks(
    inventory: Path, playbooks: list[str], extra_vars: dict[str, Any], *args: str, timeout: float = 1800
) -> PlaybookRun:
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_FORKS": "10",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        # As kfinstall sets them: a playbook outside playbooks/ (a role run alone) finds the roles too.
        "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(PLAYBOOKS / "collections"),
        # Host keys checked like kfinstall does, strictly: `lab up` pinned every lab machine's key.
        **lab_ssh_env(inventory.parent),
        # Per-task durations in the output (TASKS RECAP), for the timings in test logs.
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
    }
    # As kfinstall passes them (installer/adapters/ansible.py): YAML with every string `!unsafe`, so the
    # roles see values as data, never as templates. A templated condition (a kf_packages `needed`) belongs
    # in the inventory, as an operator would write it.
    vars_file = write_unsafe_vars(inventory.parent, extra_vars)
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "-e", f"@{vars_file}", *args]
    argv += [str(PLAYBOOKS / p) for p in playbooks]  # an absolute path stays itself
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        vars_file.unlink(missing_ok=True)
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start)


def assert_converged(run: PlaybookRun, hosts: list[str]) -> None:
    recap = run.recap
    assert run.rc == 0, run.tail()
    assert sorted(h for h in recap if h in hosts) == sorted(hosts), run.tail()
    bad = {h: r for h, r in recap.items() if r["failed"] or r["unreachable"]}
    assert not bad, f"{bad}\n{run.tail()}"
