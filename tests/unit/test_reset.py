"""`kfinstall reset` (issue 15 item 4): the plan per host, the refusals that protect the hosts that stay
(exit 3, nothing touched), bad input (exit 2), JSON on every path, and the function other verbs call.

No host is reached: the playbook run (installer.reset._run) is replaced where a test goes that far.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from installer.config.load import load
from installer.errors import ConfigError, PreflightError
from installer.reset import ResetPlan, ResetReport, check_plan, plan_reset, reset_host, run_reset

GLUSTER_HOSTS = {
    "all.hosts.g1": {"ansible_host": "192.0.2.31"}, "all.hosts.g2": {"ansible_host": "192.0.2.32"},
    "all.hosts.g3": {"ansible_host": "192.0.2.33"},
    "all.children.gluster": {"hosts": {"g1": None, "g2": None, "g3": None}},
}


def converged(site: Path) -> Path:
    """The site as a `kfinstall up` that ran to its end leaves it: state.json names every host's roles."""
    from installer.config.inventory import ROLE_GROUPS
    from installer.state import State, read_state, write_state

    cfg = load(site, need_secrets=False)
    state = read_state(cfg.state_dir) or State(cluster=cfg.name)
    state.host_roles = {role: cfg.inventory.names(role) for role in ROLE_GROUPS}
    write_state(cfg.state_dir, state)
    return site


def test_a_worker_is_reset_with_a_warning_naming_node_remove(make_site) -> None:  # type: ignore[no-untyped-def]
    plan = plan_reset(load(converged(make_site()), need_secrets=False), "n1")
    assert plan.hosts == ("n1",) and not plan.whole_site and plan.refusals == ()
    assert "kfinstall node remove" in plan.warnings[0]
    [host] = plan.per_host
    assert host.roles == ("kube_node",) and "Leave the Kubernetes cluster" in host.steps
    assert "Withdraw the NFS export" not in host.steps  # reset.yml's plays that reach n1 only
    assert "Unmount the GlusterFS volume and stop serving bricks" not in host.steps  # Gluster is off here
    check_plan(plan)


@pytest.mark.parametrize(("limit", "says"), [
    ("cp1", "kfinstall node remove cp1"),  # the control plane the others stay in
    ("cp1", "NFS export /export/kfinstall"),  # ...and their NFS server
])
def test_a_host_the_others_depend_on_is_refused_with_the_safe_path(make_site, limit: str, says: str) -> None:  # type: ignore[no-untyped-def]
    plan = plan_reset(load(converged(make_site()), need_secrets=False), limit)
    assert any(says in refusal for refusal in plan.refusals), plan.refusals
    with pytest.raises(PreflightError) as refused:
        check_plan(plan)
    assert refused.value.exit_code == 3 and "nothing was changed" in refused.value.message


def test_the_whole_site_is_never_refused(make_site) -> None:  # type: ignore[no-untyped-def]
    cfg = load(converged(make_site()), need_secrets=False)
    for limit in (None, "all", "cp1,n1,n2"):
        plan = plan_reset(cfg, limit, purge_data=True)
        assert plan.whole_site and plan.refusals == () and plan.hosts == ("cp1", "n1", "n2")


def test_gluster_hosts_are_refused_below_the_volume_quorum(make_site) -> None:  # type: ignore[no-untyped-def]
    """Client quorum (cluster.quorum-type auto, the default of replica 3): more than half of a replica set's
    bricks must be up (Gluster Administrator Guide, "Arbiter volumes and quorum options"); below it "neither
    read nor write txns are allowed and we fail the fop with ENOTCONN" (gluster/glusterfs commit bd44d59741bb,
    "afr: add checks for allowing lookups")."""
    cfg = load(converged(make_site(cluster={"spec.storage.gluster": {"enabled": True, "replica": 3}},
                                   hosts=GLUSTER_HOSTS)), need_secrets=False)
    assert plan_reset(cfg, "g3").refusals == ()  # 2 of 3 stay: more than half of the replica
    two = plan_reset(cfg, "g2,g3")
    assert len(two.refusals) == 1 and "client quorum needs 2" in two.refusals[0]
    purge = plan_reset(cfg, "g3", purge_data=True)
    assert len(purge.refusals) == 1 and "gluster volume replace-brick kfinstall" in purge.refusals[0]


def test_gluster_hosts_of_a_distributed_replicated_volume_go_down_one_sets_spare_at_a_time(make_site) -> None:  # type: ignore[no-untyped-def]
    """g1..g6 with replica 3 is two replica sets: "Each replica_count consecutive bricks in the list you give
    will form a replica set" (Red Hat Gluster Storage 3.5 Administration Guide, 5.6 Creating Distributed
    Replicated Volumes, https://docs.redhat.com/en/documentation/red_hat_gluster_storage/3.5/html/
    administration_guide/sect-creating_distributed_replicated_volumes). glusterfs/tasks/volume.yml lists one
    brick per server in the group's order, but `gluster volume replace-brick` (node remove's safe path for a
    brick host) puts the new host's brick in the old one's place while the group lists it last, so the group
    stops showing the sets (review2 O2). Taking two of one set stops it (review1 finding 5), and kfinstall
    cannot tell which two share one: one host of the six at a time."""
    names = [f"g{i}" for i in range(1, 7)]
    hosts = {**{f"all.hosts.{h}": {"ansible_host": f"192.0.2.{30 + i}"} for i, h in enumerate(names, 1)},
             "all.children.gluster": {"hosts": dict.fromkeys(names)}}
    cfg = load(converged(make_site(cluster={"spec.storage.gluster": {"enabled": True, "replica": 3}}, hosts=hosts)),
               need_secrets=False)
    assert plan_reset(cfg, "g4").refusals == ()  # 2 of 3 stay in whichever set g4's brick is
    [refusal] = plan_reset(cfg, "g1,g2").refusals
    assert "leaves 2 Gluster host(s) down (g1, g2)" in refusal and "2 replica sets of 3" in refusal
    assert "reset at most 1 Gluster host(s) at a time" in refusal
    # One of each set by the group's order: after a replace-brick, g6 may hold the brick g1's set lost.
    [refusal] = plan_reset(cfg, "g1,g6").refusals
    assert "may share one" in refusal and "client quorum (2 of 3)" in refusal


def test_a_caller_that_removed_the_host_from_the_site_is_not_refused(make_site) -> None:  # type: ignore[no-untyped-def]
    plan = plan_reset(load(make_site(), need_secrets=False), "cp1", leaving=True)
    assert plan.refusals == () and plan.warnings == ()


def test_hosts_kfinstall_never_converged_are_refused(make_site, kfinstall_streams) -> None:  # type: ignore[no-untyped-def]
    """An inventory brought from elsewhere (a running Kubespray cluster) before any `up`: reset must not
    kubeadm-reset its nodes (review1 finding 1)."""
    from installer.state import State, write_state

    site = make_site()
    cfg = load(site, need_secrets=False)
    for limit in (None, "n1"):
        plan = plan_reset(cfg, limit)
        assert any("kfinstall never converged" in r and "n1" in r for r in plan.refusals), plan.refusals
    code, _, err = kfinstall_streams("reset", "-i", str(site), "--yes")
    assert code == 3 and "never converged cp1, n1, n2" in err and "leave them out of --limit" in err
    assert not (site / ".kfinstall" / "test" / "runs").exists()
    write_state(cfg.state_dir, State(cluster=cfg.name, host_roles={"kube_control_plane": ["cp1"],
                                                                   "kube_node": ["cp1", "n1"]}))
    assert plan_reset(cfg, "n1").refusals == ()
    assert any("never converged n2 " in r for r in plan_reset(cfg, "n2").refusals)


def test_a_pattern_matching_no_host_is_bad_input(make_site) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as bad:
        plan_reset(load(make_site(), need_secrets=False), "nope")
    assert bad.value.exit_code == 2 and "cp1, n1, n2" in bad.value.message


def test_a_profile_without_hosts_is_bad_input(tmp_path: Path) -> None:
    import shutil

    site = tmp_path / "gcp"
    shutil.copytree(Path(__file__).resolve().parents[2] / "inventories" / "gcp", site)
    with pytest.raises(ConfigError, match="no hosts") as bad:
        plan_reset(load(site, need_secrets=False))
    assert bad.value.exit_code == 2


def test_purges_are_shown_and_passed_to_the_playbook(make_site) -> None:  # type: ignore[no-untyped-def]
    from installer.reset import reset_vars

    cfg = load(converged(make_site()), need_secrets=False)
    kept = plan_reset(cfg, "n1")
    assert any("--purge-packages" in keep for keep in kept.per_host[0].keeps)
    purged = plan_reset(cfg, None, purge_packages=True, purge_data=True)
    variables = reset_vars(cfg, purged)
    assert variables["kf_reset_purge_packages"] is True and variables["kf_reset_purge_data"] is True
    assert variables["kf_nfs_export_path"] == "/export/kfinstall"  # the playbook finds the data it keeps
    cp1 = purged.per_host[0]
    assert not any("packages kfinstall installed" in keep for keep in cp1.keeps)
    assert any("would also remove a package installed since" in keep for keep in cp1.keeps)  # review2 finding 4
    # Two purges, each all or nothing: the Kubernetes packages can go while the others stay (review4)
    assert any(keep.startswith("the Kubernetes packages (kubelet, kubeadm, kubectl), and apart the rest of "
                               "kfinstall's packages, each set") for keep in cp1.keeps), cp1.keeps
    assert any("--purge-data deletes it" in keep for keep in cp1.keeps)


def test_refused_or_unconfirmed_resets_touch_nothing(make_site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import installer.reset as module

    cfg = load(converged(make_site()), need_secrets=False)
    ran: list[Any] = []
    monkeypatch.setattr(module, "_run", lambda *args: ran.append(args))
    with pytest.raises(PreflightError):
        run_reset(cfg, plan_reset(cfg, "cp1"), console=None, confirm=lambda q: True)  # type: ignore[arg-type]
    with pytest.raises(PreflightError, match="not confirmed"):
        run_reset(cfg, plan_reset(cfg, "n1"), console=None, confirm=lambda q: False)  # type: ignore[arg-type]
    assert ran == [] and not (cfg.state_dir / "runs").exists() and not (cfg.state_dir / "lock").exists()


def test_reset_host_runs_under_the_callers_lock_without_asking(make_site, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import installer.reset as module
    from installer.lock import run_lock

    cfg = load(make_site(), need_secrets=False)
    seen: list[ResetPlan] = []

    def fake_run(cfg: Any, plan: ResetPlan, console: Any, verbosity: int) -> ResetReport:
        seen.append(plan)
        return ResetReport("id", "record", plan)

    monkeypatch.setattr(module, "_run", fake_run)
    with run_lock(cfg.state_dir, "node remove cp1"):  # node remove holds the lock; reset must not take it again
        report = reset_host(cfg, "cp1")
    assert report.plan.hosts == ("cp1",) and seen[0].refusals == ()


def test_a_partial_reset_keeps_the_applied_hosts_a_whole_one_drops_them(make_site) -> None:  # type: ignore[no-untyped-def]
    """The hosts that stay still admit the reset one (NFS export list, auth.allow): up --limit reads that."""
    from installer.applied import read_applied, record_apply
    from installer.reset import _remember
    from installer.state import read_state

    cfg = load(converged(make_site()), need_secrets=False)
    record_apply(cfg, ("hosts",), run_id="r1")
    recorded = read_applied(cfg.state_dir)["hosts"]["roles"]  # type: ignore[index]
    _remember(cfg, ResetReport("r2", "record", plan_reset(cfg, "n2")))
    assert read_applied(cfg.state_dir)["hosts"]["roles"] == recorded  # type: ignore[index]
    _remember(cfg, ResetReport("r3", "record", plan_reset(cfg)))
    assert "hosts" not in read_applied(cfg.state_dir)  # type: ignore[operator]
    history = read_state(cfg.state_dir).history  # type: ignore[union-attr]
    assert [(h.action, h.run_id, h.result) for h in history] == [
        ("reset n2", "r2", "ok"), ("reset cp1,n1", "r3", "ok")]  # n2, reset already, is left out


def test_reset_hosts_are_no_longer_converged(make_site) -> None:  # type: ignore[no-untyped-def]
    """After a reset, `up --limit` must not take the reset hosts for converged ones (review1 finding 4)."""
    from installer.limited import converged_roles
    from installer.reset import _remember

    cfg = load(converged(make_site()), need_secrets=False)
    _remember(cfg, ResetReport("r1", "record", plan_reset(cfg, "n2")))
    roles = converged_roles(cfg)
    assert roles is not None and roles["kube_node"] == ["n1"] and "n2" not in str(roles)
    _remember(cfg, ResetReport("r2", "record", plan_reset(cfg)))
    assert converged_roles(cfg) is None


def test_after_a_partial_reset_the_rest_of_the_site_can_be_reset(make_site, kfinstall_streams) -> None:  # type: ignore[no-untyped-def]
    """A host already reset (or added to hosts.yml and not converged yet) is in no cluster and mounts nothing:
    it must not make the control plane and NFS server it no longer uses impossible to reset (review2 finding 2:
    the safe path the refusal offered was itself refused). A host reset since its last converge is left out."""
    from installer.limited import converged_roles
    from installer.reset import _remember
    from installer.state import read_state, write_state

    site = converged(make_site())
    cfg = load(site, need_secrets=False)
    _remember(cfg, ResetReport("r1", "record", plan_reset(cfg, "n2")))
    everything = plan_reset(cfg)
    assert everything.hosts == ("cp1", "n1") and everything.already_reset == ("n2",), everything
    assert everything.refusals == () and everything.whole_site
    state = read_state(cfg.state_dir)
    assert state is not None
    state.reset_hosts = []  # reset by a kfinstall that did not keep the list: refused, naming the way out
    write_state(cfg.state_dir, state)
    refused = plan_reset(cfg)
    assert any("never converged n2 " in r and "kfinstall reset --limit 'cp1,n1'" in r for r in refused.refusals)
    rest = plan_reset(cfg, "cp1,n1")
    assert rest.refusals == () and rest.whole_site, rest.refusals
    code, out, err = kfinstall_streams("reset", "-i", str(site), "--limit", "cp1,n1", "--dry-run")
    assert code == 0 and "the whole site (2 host(s); no converged host stays)" in out, err
    _remember(cfg, ResetReport("r2", "record", rest))
    assert converged_roles(cfg) is None  # nothing of the site is converged any more


def test_reset_twice_is_nothing_to_do_until_up_runs_again(make_site, kfinstall_streams, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Idempotence: the same reset run again after it finished leaves the hosts it reset out and exits 0
    (it was refused, exit 3, as 'never converged'). Once the host phase runs on a host again, even failing
    halfway, the host is kfinstall's to undo again: it is refused until `up` finishes there (review2 finding 12)."""
    import io

    from rich.console import Console

    from installer import up as up_module
    from installer.errors import PhaseFailed
    from installer.phases import PhaseResult
    from installer.reset import _remember

    site = converged(make_site())
    cfg = load(site, need_secrets=False)
    _remember(cfg, ResetReport("r1", "record", plan_reset(cfg)))
    code, out, err = kfinstall_streams("reset", "-i", str(site), "--yes")
    assert code == 0 and "already reset" in out and "nothing to do" in out, err
    code, out, _ = kfinstall_streams("reset", "-i", str(site), "--yes", "--output", "json")
    document = json.loads(out)
    assert code == 0 and document["result"] == "ok" and document["hosts"] == []
    assert document["alreadyReset"] == ["cp1", "n1", "n2"]
    assert not (site / ".kfinstall" / "test" / "runs").exists()  # nothing ran

    def hosts_fail(ctx):  # type: ignore[no-untyped-def]
        raise PhaseFailed("host phase failed", phase=PhaseResult("hosts", "failed"))

    monkeypatch.setitem(up_module.PHASES, "preflight", lambda ctx: PhaseResult("preflight", "ok"))
    monkeypatch.setitem(up_module.PHASES, "hosts", hosts_fail)
    with pytest.raises(PhaseFailed):
        up_module.run_up(load(site), Console(file=io.StringIO()), only="hosts")
    again = plan_reset(cfg)
    assert again.already_reset == () and any("never converged cp1, n1, n2" in r for r in again.refusals)



def test_a_partial_reset_of_a_site_whose_state_predates_host_roles(make_site) -> None:  # type: ignore[no-untyped-def]
    """state.json without host_roles (an older kfinstall): converged_roles reads the applied record, which a
    partial reset keeps, so the reset host has to leave what the state says instead (review2 finding 6)."""
    from installer.applied import record_apply
    from installer.limited import converged_roles
    from installer.reset import _remember
    from installer.state import State, write_state

    cfg = load(make_site(), need_secrets=False)
    record_apply(cfg, ("hosts",), run_id="r1")
    write_state(cfg.state_dir, State(cluster=cfg.name))
    assert "n2" in str(converged_roles(cfg))
    _remember(cfg, ResetReport("r2", "record", plan_reset(cfg, "n2")))
    roles = converged_roles(cfg)
    assert roles is not None and "n2" not in str(roles) and roles["kube_node"] == ["n1"], roles


# ---- the command ----------------------------------------------------------------------------------------


def test_dry_run_json_is_the_plan(make_site, kfinstall_streams) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kfinstall_streams("reset", "-i", str(converged(make_site())), "--limit", "kube_node:!n2",
                                     "--dry-run", "--output", "json")
    assert code == 0
    document = json.loads(out)
    assert document["hosts"] == ["n1"] and document["dryRun"] is True and document["result"] == "ok"
    assert document["perHost"][0]["host"] == "n1" and document["warnings"]


def test_dry_run_of_a_refused_reset_shows_the_plan_then_exits_3(make_site, kfinstall_streams) -> None:  # type: ignore[no-untyped-def]
    code, out, err = kfinstall_streams("reset", "-i", str(converged(make_site())), "--limit", "cp1", "--dry-run")
    assert code == 3
    assert "cp1 (kube_control_plane, nfs_server):" in out and "refused: cp1 is a control plane" in out
    assert "kfinstall node remove cp1" in err


def test_refused_reset_prints_one_json_document_and_exits_3(make_site, kfinstall_streams) -> None:  # type: ignore[no-untyped-def]
    site = make_site()
    code, out, _ = kfinstall_streams("reset", "-i", str(site), "--limit", "cp1", "--yes", "--output", "json")
    assert code == 3
    document = json.loads(out)
    assert document["exitCode"] == 3 and document["plan"]["refusals"] and document["result"] == "failed"
    assert not (site / ".kfinstall" / "test" / "runs").exists()


def test_bad_pattern_is_exit_2_with_json(make_site, kfinstall_streams) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = kfinstall_streams("reset", "-i", str(make_site()), "--limit", "@retry.txt", "--output", "json")
    assert code == 2 and json.loads(out)["result"] == "invalid"


def test_off_a_terminal_without_yes_nothing_runs(make_site, kfinstall_streams) -> None:  # type: ignore[no-untyped-def]
    site = converged(make_site())
    code, _, err = kfinstall_streams("reset", "-i", str(site), "--limit", "n1")
    assert code == 3 and "--yes" in err and "n1 (kube_node)" in err
    assert not (Path(site) / ".kfinstall" / "test" / "runs").exists()


@pytest.mark.parametrize("purge", ["--purge-data", "--purge-packages"])
def test_a_purge_after_a_reset_is_not_nothing_to_do(make_site, kfinstall_streams, purge) -> None:  # type: ignore[no-untyped-def]
    """A reset keeps the packages and the data directories (they stay in the host's record). The same hosts
    reset again with --purge-data or --purge-packages still have those to purge: they are not left out as
    'already reset, nothing of kfinstall's to undo' with exit 0 while the data stays (review4)."""
    from installer.reset import _remember

    site = converged(make_site())
    cfg = load(site, need_secrets=False)
    _remember(cfg, ResetReport("r1", "record", plan_reset(cfg)))
    assert plan_reset(cfg).already_reset == ("cp1", "n1", "n2")  # without a purge: nothing to do
    options = {"purge_data": purge == "--purge-data", "purge_packages": purge == "--purge-packages"}
    again = plan_reset(cfg, **options)
    assert again.hosts == ("cp1", "n1", "n2") and again.already_reset == () and again.refusals == (), again
    code, out, err = kfinstall_streams("reset", "-i", str(site), purge, "--dry-run")
    assert code == 0 and "nothing to do" not in out and "n2 (kube_node)" in out, out + err
