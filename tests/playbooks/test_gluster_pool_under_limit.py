"""The glusterfs role's pool steps (tasks/volume.yml) on the path `node remove` offers for a Gluster host
(issue 15 item 2, docs/operations.md "Removing a node"): the new host takes the old one's place in group
gluster, `up --limit NEW` probes it into the trusted pool through the first Gluster host, then the operator
runs `gluster volume replace-brick`. Until then the old host is still a connected peer (its brick serves),
so the pool has one more connected peer than the group has hosts.

Run for real on the controller (local connection) with a stand-in `gluster` on PATH that keeps the pool in a
file; `gluster pool list` prints its columns as gluster does (UUID, Hostname, State; the host it runs on as
localhost). No glusterd, nothing written outside tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
VENV_BIN = Path(sys.executable).parent
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
FAKE_GLUSTER = """#!/bin/sh
echo "$@" >> "{folder}/calls.log"
case "$*" in
  *"peer probe"*) for last; do :; done; echo "$last" >> "{folder}/pool"; echo "peer probe: success" ;;
  "pool list"*)
    printf 'UUID\\t\\t\\t\\t\\tHostname\\tState\\n'
    n=1
    while read -r peer state; do
      echo "0000000$n-aaaa	$peer	${{state:-Connected}} "; n=$((n+1))
    done < "{folder}/pool"
    echo "00000009-aaaa	localhost	Connected " ;;
  *"volume info"*) printf 'Volume Name: kfinstall\\nStatus: Started\\n' ;;
esac
"""


@pytest.mark.slow
def test_a_replacement_gluster_host_joins_while_the_old_one_is_still_a_peer(tmp_path: Path) -> None:
    # n1 (old, still serving its brick) has left group gluster in hosts.yml; n3 took its place after n2.
    hosts = {"n1": "192.0.2.21", "n2": "192.0.2.22", "n3": "192.0.2.23"}
    inventory = {"all": {"hosts": {h: {**LOCAL, "ansible_host": a} for h, a in hosts.items()},
                         "children": {"gluster": {"hosts": {"n2": None, "n3": None}},
                                      "kube_node": {"hosts": dict.fromkeys(hosts)}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "pool").write_text("192.0.2.21\n")  # seen from n2: n1 is its peer today
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "gluster").write_text(FAKE_GLUSTER.format(folder=tmp_path))
    (bindir / "gluster").chmod(0o755)
    play = [{"name": "Pool", "hosts": "gluster:kube_node", "gather_facts": False, "tasks": [
        {"name": "Test | Pool steps",
         "ansible.builtin.import_role": {"name": "glusterfs", "tasks_from": "volume.yml"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    extra = {"kf_gluster_replica": 2, "glusterfs_peer_timeout": 4}
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
           "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
           "ANSIBLE_COLLECTIONS_PATH": str(PLAYBOOKS / "collections"), "ANSIBLE_FORKS": "1", "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), "--limit", "n3",
                             "-e", json.dumps(extra), str(tmp_path / "play.yml")],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert "--timeout=60 peer probe 192.0.2.23" in calls
    assert not any("create" in c for c in calls)  # the volume exists: never created again


def _run_pool_steps(
    tmp_path: Path, pool: str, tasks_before: list[dict[str, object]]
) -> subprocess.CompletedProcess[str]:
    """n2 (first) and n3 in group gluster; the pool as n2 sees it; `tasks_before` run ahead of the pool steps."""
    hosts = {"n2": "192.0.2.22", "n3": "192.0.2.23"}
    inventory = {"all": {"hosts": {h: {**LOCAL, "ansible_host": a} for h, a in hosts.items()},
                         "children": {"gluster": {"hosts": dict.fromkeys(hosts)},
                                      "kube_node": {"hosts": dict.fromkeys(hosts)}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "pool").write_text(pool)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "gluster").write_text(FAKE_GLUSTER.format(folder=tmp_path))
    (bindir / "gluster").chmod(0o755)
    play = [{"name": "Pool", "hosts": "gluster", "gather_facts": False, "tasks": [
        *tasks_before, {"name": "Test | Pool steps",
                        "ansible.builtin.import_role": {"name": "glusterfs", "tasks_from": "volume.yml"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
           "ANSIBLE_ROLES_PATH": str(PLAYBOOKS / "roles"),
           "ANSIBLE_COLLECTIONS_PATH": str(PLAYBOOKS / "collections"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           "-e", json.dumps({"kf_gluster_replica": 2, "glusterfs_peer_timeout": 4}),
                           str(tmp_path / "play.yml")],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False)


def _recap(output: str, host: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{host} ") and "ok=" in line)


@pytest.mark.slow
def test_the_peer_wait_does_not_wait_for_a_server_the_run_lost(tmp_path: Path) -> None:
    """n3's glusterd is down and n3 failed earlier in the run (as a host stopped mid-run is unreachable): the
    first server does not wait glusterfs_peer_timeout for it, and finishes without a failure of its own."""
    lose_n3 = {"name": "Test | Lose n3", "ansible.builtin.fail": {"msg": "lost"},
               "when": "inventory_hostname == 'n3'"}
    result = _run_pool_steps(tmp_path, "192.0.2.23 Disconnected\n", [lose_n3])
    assert result.returncode != 0  # n3 failed: the run says so
    assert "failed=0" in _recap(result.stdout, "n2"), result.stdout[-3000:]
    assert "failed=1" in _recap(result.stdout, "n3")
    assert "FAILED - RETRYING" not in result.stdout, result.stdout[-3000:]


@pytest.mark.slow
def test_the_peer_wait_still_waits_for_a_server_in_the_run(tmp_path: Path) -> None:
    """The same pool with n3 still in the run: its peer is waited for, and the wait fails after its timeout."""
    result = _run_pool_steps(tmp_path, "192.0.2.23 Disconnected\n", [])
    assert result.returncode != 0
    assert "FAILED - RETRYING: [n2]: GlusterFS | Wait until every peer is connected" in result.stdout, \
        result.stdout[-3000:]
    assert "failed=1" in _recap(result.stdout, "n2"), result.stdout[-3000:]
