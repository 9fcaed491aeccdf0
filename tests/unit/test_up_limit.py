"""`up --limit` / `plan --limit` without hosts (issue 15 item 1): what is refused before any connection,
what plan shows for a new host, and that only the limited hosts (plus the hosts their delegated tasks
reach, for the host-key check) are handed to Ansible. ansible-runner and the host-key check stand in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.adapters import ansible, ssh
from installer.applied import read_applied, record_apply
from installer.config.load import load
from installer.limited import covered
from installer.phases import hosts as hosts_phase
from installer.phases import preflight

NEW = {"all.hosts.n3": {"ansible_host": "192.0.2.23"}, "all.children.kube_node.hosts.n3": None}
ADMITTED = {"spec.storage.nfs.allowedClients": ["192.0.2.0/24"]}
GOOD_FACTS = {"ansible_os_family": "Debian", "ansible_distribution": "Debian",
              "ansible_mounts": [{"mount": "/", "size_available": 50 * 1024**3}]}


def converged(make_site: Any, cluster: dict[str, Any] | None = None) -> Path:
    """A site whose 3 hosts had a recorded host-phase run; then n3 is added to hosts.yml."""
    site = make_site(cluster=cluster)
    record_apply(load(site, need_secrets=False), ("hosts",), run_id="first")
    return make_site(cluster=cluster, hosts=NEW)


@pytest.fixture
def playbooks(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every playbook started with its limit, and every host-key check with its hosts; each succeeds."""
    started: list[dict[str, Any]] = []

    def playbook(name: str, inventory: Any, extravars: Any, work_dir: Any, **kwargs: Any) -> ansible.PlaybookResult:
        hosts = (kwargs.get("limit") or "cp1,n1,n2,n3").split(",")
        started.append({"playbook": name, "limit": kwargs.get("limit")})
        return ansible.PlaybookResult(status="successful", rc=0, duration_s=0.1,
                                      hosts={h: ansible.HostStats(ok=1) for h in hosts},
                                      facts={h: GOOD_FACTS for h in hosts})

    def keys(policy: ssh.HostKeyPolicy) -> ssh.HostKeyReport:
        started.append({"hostKeys": sorted(policy.targets)})
        return ssh.HostKeyReport(policy.mode, str(policy.known_hosts))

    monkeypatch.setattr(hosts_phase, "run_playbook", playbook)
    monkeypatch.setattr(preflight, "run_playbook", playbook)
    monkeypatch.setattr(preflight, "check_host_keys", keys)
    monkeypatch.setattr(preflight, "clock_skew", lambda facts, now: 0.0)
    return started


def test_plan_shows_the_new_host_with_the_steps_it_gets(make_site, kfinstall_streams) -> None:
    site = converged(make_site, ADMITTED)
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--limit", "n3", "--output", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["diff"]["hostsAdded"] == {"kube_node": ["n3"]}
    limit = plan["limit"]
    assert limit["hosts"] == ["n3"] and limit["added"] == ["n3"] and limit["refusals"] == []
    assert limit["phases"] == ["preflight", "hosts"]
    # Every play that runs at all runs on n3 alone; the NFS server's play is not among them.
    steps = {(s["playbook"], s["play"]): s["hosts"] for s in limit["steps"]}
    assert {tuple(h) for h in steps.values()} == {(), ("n3",)}
    assert steps[("40-storage.yml", "Serve the NFS export")] == []
    assert steps[("50-kubernetes.yml", "Build the Kubernetes cluster")] == ["n3"]
    assert limit["contacts"] == ["cp1"]  # the join command comes from the first control plane
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--limit", "n3")
    assert code == 0, err
    assert "Limited to 1 host(s) (n3): n3" in out and "new host: n3" in out and "host added: n3 (kube_node)" in out


def test_up_limit_gives_tasks_to_the_limited_host_only(make_site, kfinstall_streams, playbooks) -> None:
    site = converged(make_site, ADMITTED)
    code, out, err = kfinstall_streams("up", "-i", str(site), "--limit", "kube_node:!n1:!n2", "--yes",
                                       "--output", "json")
    assert code == 0, err
    report = json.loads(out)
    assert [p["name"] for p in report["phases"]] == ["preflight", "hosts"]
    assert report["limit"] == ["n3"] and sorted(report["hosts"]) == ["n3"]
    # Ansible is given the resolved name, never the pattern; the host keys checked are n3's and those of
    # cp1, which its delegated tasks reach. No other host is contacted.
    # One Ansible run: preflight.yml's play, then site.yml's (playbooks/up.yml).
    assert playbooks == [{"hostKeys": ["cp1", "n3"]}, {"playbook": "up.yml", "limit": "n3"}]
    roles = read_applied(load(site, need_secrets=False).state_dir)["hosts"]["roles"]
    assert roles["kube_node"] == ["n1", "n2", "n3"] and roles["kube_control_plane"] == ["cp1"]


def test_a_limited_record_keeps_the_others_settings(make_site, kfinstall_streams, playbooks) -> None:
    """n3 got a changed setting, cp1..n2 did not: plan still shows the change for the next full run."""
    site = converged(make_site, ADMITTED)
    changed = make_site(cluster={**ADMITTED, "spec.containerd.source": "distro"}, hosts=NEW)
    code, _, err = kfinstall_streams("up", "-i", str(changed), "--limit", "n3", "--yes")
    assert code == 0, err
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--output", "json")
    assert any(c["key"] == "spec.containerd.source" for c in json.loads(out)["diff"]["settings"])


@pytest.mark.parametrize(("args", "says"), [
    (("--limit", "nowhere"), "'nowhere' matches no host"),
    (("--limit", "n3", "--only", "platform"), "--only platform is cluster-wide"),
    (("--limit", "n3", "--from", "verify"), "--from verify is cluster-wide"),
    (("--limit", "@retry.txt"), "'@FILE' (a retry file) is not taken"),
])
def test_bad_limit_is_exit_2_before_any_host(make_site, kfinstall_streams, playbooks, args, says) -> None:
    site = converged(make_site, ADMITTED)
    code, out, err = kfinstall_streams("up", "-i", str(site), *args, "--yes", "--output", "json")
    assert code == 2, out + err
    assert says in json.loads(out)["error"] and playbooks == []


def test_new_host_the_nfs_export_does_not_admit_is_refused(make_site, kfinstall_streams, playbooks) -> None:
    site = converged(make_site)
    code, out, err = kfinstall_streams("up", "-i", str(site), "--limit", "n3", "--yes", "--output", "json")
    assert code == 3, out + err
    error = json.loads(out)["error"]
    assert "the NFS export on cp1 does not admit n3 yet" in error
    assert "kfinstall up --limit 'n3,cp1'" in error and "spec.storage.nfs.allowedClients" in error
    assert playbooks == [] and not (load(site, need_secrets=False).state_dir / "runs").exists()
    # The safe path it names is accepted.
    code, out, err = kfinstall_streams("up", "-i", str(site), "--limit", "n3,cp1", "--yes", "--output", "json")
    assert code == 0, out + err


def test_limit_before_any_recorded_run_is_refused(make_site, kfinstall_streams, playbooks) -> None:
    site = make_site(hosts=NEW)
    code, out, err = kfinstall_streams("up", "-i", str(site), "--limit", "n3", "--yes")
    assert code == 3 and "run `kfinstall up` on every host first" in out + err and playbooks == []
    code, out, err = kfinstall_streams("up", "-i", str(site), "--limit", "all", "--yes")  # every host: a full run
    assert code == 0, out + err


def test_a_new_gluster_host_joins_the_pool_through_the_first_gluster_host(make_site, kfinstall_streams) -> None:
    """The path `node remove` offers for a Gluster host (a new host in group gluster, `up --limit NEW`, then
    replace-brick) is not refused: plan says the new host is probed into the pool through n1."""
    gluster = {"spec.storage.gluster.enabled": True, "spec.storage.gluster.replica": 2, **ADMITTED}
    bricks = {"all.children.gluster.hosts.n1": None, "all.children.gluster.hosts.n2": None}
    site = make_site(cluster=gluster, hosts=bricks)
    record_apply(load(site, need_secrets=False), ("hosts",), run_id="first")
    site = make_site(cluster=gluster, hosts={**bricks, **NEW, "all.children.gluster.hosts.n3": None,
                                             "all.hosts.n4": {"ansible_host": "192.0.2.24"},
                                             "all.children.kube_node.hosts.n4": None,
                                             "all.children.gluster.hosts.n4": None})
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--limit", "n3,n4", "--output", "json")
    assert code == 0, out + err
    limit = json.loads(out)["limit"]
    assert limit["refusals"] == [] and limit["contacts"] == ["cp1", "n1"]
    assert any(note.startswith("n3, n4 join(s) the Gluster pool (peer probe through n1)") for note in limit["outside"])


@pytest.mark.parametrize(("address", "allowed", "expected"), [
    ("192.0.2.23", ["192.0.2.0/24"], True), ("192.0.2.23", ["192.0.2.23"], True),
    ("192.0.2.23", ["198.51.100.0/24", "nfs.example.com"], False), ("n3.example.com", ["n3.example.com"], True),
    ("n3.example.com", ["192.0.2.0/24"], False),
])
def test_covered(address: str, allowed: list[str], expected: bool) -> None:
    assert covered(address, allowed) is expected


def test_hosts_yml_stays_as_written(make_site, kfinstall_streams, playbooks) -> None:
    site = converged(make_site, ADMITTED)
    before = (site / "hosts.yml").read_bytes()
    assert kfinstall_streams("up", "-i", str(site), "--limit", "n3", "--yes")[0] == 0
    assert (site / "hosts.yml").read_bytes() == before and yaml.safe_load(before)


def test_an_incomplete_full_run_counts_as_converged(make_site, kfinstall_streams, playbooks) -> None:
    """Lab hosts skip the Kubernetes step on purpose (incomplete, so no apply is recorded): the hosts the host
    phase ran to its end on are kept in state.json, and --limit takes them as converged."""
    from installer import up as up_module
    from installer.phases.base import PhaseResult
    from installer.state import read_state

    site = make_site(cluster=ADMITTED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(up_module.PHASES, "hosts", lambda ctx: PhaseResult("hosts", "incomplete"))
        assert kfinstall_streams("up", "-i", str(site), "--only", "hosts", "--yes")[0] == 0
    state_dir = load(site, need_secrets=False).state_dir
    assert read_applied(state_dir) is None
    assert read_state(state_dir).host_roles["kube_node"] == ["n1", "n2"]
    site = make_site(cluster=ADMITTED, hosts=NEW)
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--limit", "n3", "--output", "json")
    assert code == 0 and json.loads(out)["limit"]["added"] == ["n3"], err
    code, out, err = kfinstall_streams("up", "-i", str(site), "--limit", "n3", "--yes")
    assert code == 0, out + err
    assert read_state(state_dir).host_roles["kube_node"] == ["n1", "n2", "n3"]


def test_limit_only_preflight_checks_what_up_limit_needs(make_site, kfinstall_streams, playbooks) -> None:
    """`up --limit n3 --only preflight` answers "would `up --limit n3` start?": the limited host only, and not
    the platform's tools (no Pulumi CLI here: a full `up --only preflight` refuses for that)."""
    site = converged(make_site, ADMITTED)
    code, out, err = kfinstall_streams("up", "-i", str(site), "--limit", "n3", "--only", "preflight", "--yes")
    assert code == 0, out + err
    assert playbooks[1:] == [{"playbook": "preflight.yml", "limit": "n3"}]


def _three_control_planes(first: list[str]) -> str:
    """hosts.yml of 3 control planes listed in the order `first` and one worker (cp1 serves NFS)."""
    names = sorted({*first, "n1"})
    hosts = {name: {"ansible_host": f"192.0.2.{30 + i}"} for i, name in enumerate(names)}
    return yaml.safe_dump({"all": {"hosts": hosts, "children": {
        "kube_control_plane": {"hosts": dict.fromkeys(first)}, "kube_node": {"hosts": {"n1": None}},
        "nfs_server": {"hosts": {"n1": None}}}}}, sort_keys=False)


HA = {**ADMITTED, "spec.kubernetes.controlPlaneEndpoint": "192.0.2.100"}


def test_a_new_first_control_plane_is_refused_with_the_order_that_works(make_site, kfinstall_streams,
                                                                       playbooks) -> None:
    """The failed cp1 replaced by cp4 on cp1's line: the kubernetes role runs `kubeadm init` on the first control
    plane when it has no admin.conf, so cp4 would start a second cluster. Refused for `up` with and without
    --limit (exit 3, nothing run) and shown by `plan --limit`; with cp2 first the same run goes ahead."""
    site = make_site(cluster=HA, hosts_text=_three_control_planes(["cp1", "cp2", "cp3"]))
    record_apply(load(site, need_secrets=False), ("hosts",), run_id="first")
    site = make_site(cluster=HA, hosts_text=_three_control_planes(["cp4", "cp2", "cp3"]))
    for args in (("--limit", "cp4"), ()):
        code, out, err = kfinstall_streams("up", "-i", str(site), *args, "--yes", "--output", "json")
        assert code == 3, out + err
        error = json.loads(out)["error"]
        assert "cp4 is listed first in kube_control_plane but is not one of its converged hosts (cp2, cp3)" in error
        assert "list cp2 first in kube_control_plane and cp4 after it" in error
    assert playbooks == []
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--limit", "cp4", "--output", "json")
    assert code == 0 and any("kubeadm init" in r for r in json.loads(out)["limit"]["refusals"]), out + err
    code, out, err = kfinstall_streams("plan", "-i", str(site))
    assert code == 0 and "refused by up: cp4 is listed first in kube_control_plane" in out, out + err
    site = make_site(cluster=HA, hosts_text=_three_control_planes(["cp2", "cp3", "cp4"]))
    code, out, err = kfinstall_streams("up", "-i", str(site), "--limit", "cp4", "--yes", "--output", "json")
    assert code == 0, out + err
    assert playbooks[-1] == {"playbook": "up.yml", "limit": "cp4"}


def test_a_new_first_gluster_host_is_refused(make_site, kfinstall_streams, playbooks) -> None:
    gluster = {"spec.storage.gluster.enabled": True, "spec.storage.gluster.replica": 2, **ADMITTED}
    bricks = {"all.children.gluster.hosts.n1": None, "all.children.gluster.hosts.n2": None}
    site = make_site(cluster=gluster, hosts=bricks)
    record_apply(load(site, need_secrets=False), ("hosts",), run_id="first")
    # n3 replaces n1 on its line: listed first in gluster.
    site = make_site(cluster=gluster, hosts={"all.children.gluster.hosts": {"n3": None, "n2": None}, **NEW})
    code, out, err = kfinstall_streams("up", "-i", str(site), "--limit", "n3", "--yes", "--output", "json")
    assert code == 3, out + err
    assert "n3 is listed first in gluster but is not one of its converged hosts (n2)" in json.loads(out)["error"]
    assert playbooks == []


def test_the_first_host_of_a_group_is_ansibles_first(make_site, kfinstall_streams) -> None:
    """The playbooks delegate to `groups['kube_control_plane'] | first` (the group's own order), whatever order
    all.hosts lists the hosts in: plan's contacts (whose host keys `up --limit` checks) name that host."""
    hosts = yaml.safe_load(_three_control_planes(["cp1", "cp2", "cp3"]))
    hosts["all"]["hosts"] = dict(reversed(list(hosts["all"]["hosts"].items())))  # n1, cp3, cp2, cp1
    site = make_site(cluster=HA, hosts_text=yaml.safe_dump(hosts, sort_keys=False))
    assert load(site, need_secrets=False).inventory.names("kube_control_plane") == ["cp1", "cp2", "cp3"]
    record_apply(load(site, need_secrets=False), ("hosts",), run_id="first")
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--limit", "n1", "--output", "json")
    assert code == 0 and json.loads(out)["limit"]["contacts"] == ["cp1"], out + err


def test_a_new_nfs_server_in_place_of_the_converged_one_is_refused(make_site, kfinstall_streams, playbooks) -> None:
    """hosts.yml names n3 as nfs_server instead of cp1: n3 would serve an empty export and the clients' mounts
    would move to it. Refused for up with and without --limit (node remove refuses the NFS server too)."""
    site = converged(make_site, ADMITTED)
    site = make_site(cluster=ADMITTED, hosts={**NEW, "all.children.nfs_server.hosts": {"n3": None}})
    for args in (("--limit", "n3"), ()):
        code, out, err = kfinstall_streams("up", "-i", str(site), *args, "--yes", "--output", "json")
        assert code == 3, out + err
        assert "nfs_server is n3 in hosts.yml but the converged NFS server is cp1" in json.loads(out)["error"]
    assert playbooks == []


def test_up_limit_on_a_state_older_than_host_roles_keeps_the_other_hosts_converged(
        make_site, kfinstall_streams, playbooks) -> None:
    """A site converged by a kfinstall whose state.json has no host_roles (converged_roles reads the applied
    record): `up --limit n3` must add n3 to the converged hosts, not make n3 the only one. Otherwise the rest
    of the site reads as never converged: reset refuses it, and the first-host/NFS refusals see no site (review4)."""
    from installer.limited import converged_roles
    from installer.state import State, read_state, write_state

    site = converged(make_site, ADMITTED)
    cfg = load(site, need_secrets=False)
    write_state(cfg.state_dir, State(cluster=cfg.name))  # an older kfinstall's state: no host_roles
    assert kfinstall_streams("up", "-i", str(site), "--limit", "n3", "--yes")[0] == 0
    assert read_state(cfg.state_dir).host_roles["kube_node"] == ["n1", "n2", "n3"]
    roles = converged_roles(cfg)
    assert roles is not None and roles["kube_control_plane"] == ["cp1"], roles
    code, out, err = kfinstall_streams("reset", "-i", str(site), "--dry-run")
    assert code == 0 and "never converged" not in out + err, out + err
