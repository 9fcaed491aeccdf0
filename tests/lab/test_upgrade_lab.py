"""playbooks/upgrade.yml and backup.yml on the 3 lab hosts, as far as this machine allows.

No Kubernetes packages (and so no control plane) exist on the lab hosts, so what runs here is:
the backup play's control-plane check (fail, or skip in check mode, with the reason), the facts
action that feeds the upgrade preflight, the node runtime gate refusing, and a Kubernetes hop in
check mode: the kubernetes role's preflight says why it stops, and the workers go one per batch.
The kubeadm steps themselves are in tests/e2e/test_upgrade_e2e.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_roles_common import PlaybookRun, lab_extra_vars, run_playbooks

from installer.upgrade.facts import read_host_facts

pytestmark = pytest.mark.lab

HOSTS = ["h1", "h2", "h3"]


@pytest.fixture(scope="module")
def extra(lab_site, tmp_path_factory: pytest.TempPathFactory) -> dict:
    values = lab_extra_vars(lab_site.out_dir, lab_site.repo_url, tmp_path_factory.mktemp("state"))
    # The upgrade precheck reads containerd's configuration: converge the OS and containerd first
    # unless an earlier lab test (site.yml) already did, so this file also runs on its own.
    probes = [lab_site.ssh(h, "containerd config dump 2>/dev/null | grep -q 'SystemdCgroup = true'") for h in HOSTS]
    if any(p.returncode != 0 for p in probes):
        run = run_playbooks(lab_site.inventory, ["10-os.yml", "20-containerd.yml"], values)
        assert run.rc == 0, run.tail()
    return values


def _plays(run: PlaybookRun, name: str) -> int:
    """How many times a play's banner was printed: once per serial batch."""
    return len(re.findall(rf"^PLAY \[{re.escape(name)}\]", run.output, re.M))


def test_backup_refuses_a_host_without_a_control_plane(lab_site, extra: dict, tmp_path: Path) -> None:
    run = run_playbooks(lab_site.inventory, ["backup.yml"], {**extra, "kf_backup_dest": str(tmp_path)})
    assert run.rc != 0
    assert "h1 has no kubeadm control plane (/etc/kubernetes/admin.conf is missing)" in run.output, run.tail()
    assert set(run.recap) == {"h1"}  # the first control-plane host only
    assert list(tmp_path.iterdir()) == []


def test_backup_in_check_mode_skips_with_the_reason(lab_site, extra: dict, tmp_path: Path) -> None:
    values = {**extra, "kf_backup_dest": str(tmp_path), "kf_backup_missing": "skip"}
    run = run_playbooks(lab_site.inventory, ["backup.yml"], values, "--check")
    assert run.rc == 0, run.tail()
    assert "SKIPPED etcd snapshot, PKI and kubeadm configuration on h1" in run.output
    assert run.recap["h1"]["changed"] == 0 and run.recap["h1"]["failed"] == 0


def test_facts_action_writes_what_the_preflight_reads(lab_site, extra: dict, tmp_path: Path) -> None:
    folder = tmp_path / "facts"
    values = {**extra, "kf_upgrade_action": "facts", "kf_upgrade_facts_dir": str(folder)}
    run = run_playbooks(lab_site.inventory, ["upgrade.yml"], values)
    assert run.rc == 0, run.tail()
    assert {r["failed"] for r in run.recap.values()} == {0}
    facts = read_host_facts(folder)
    assert len(facts) == 3, sorted(p.name for p in folder.iterdir())
    for node in facts.values():
        assert node["systemd_cgroup"] is True  # the containerd role writes it
        # The release numbers only (kfinstall.hosts.upstream_version): the distribution's containerd says
        # "1.6.20~ds1", which is not a version the precheck's comparison reads as 1.6.20.
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)+", node["containerd_version"]), node
        assert node["cgroup_version"] in (1, 2)


def test_runtime_gate_refuses_before_any_change(lab_site, extra: dict) -> None:
    minor = extra["kf_kubernetes_minor"]
    values = {**extra, "kf_upgrade_action": "kubernetes", "kf_upgrade_runtime_from_minor": minor,
              "kf_upgrade_containerd_min": "99.0", "kf_upgrade_cgroup_version": 2}
    run = run_playbooks(lab_site.inventory, ["upgrade.yml"], values, "--check")
    assert run.rc != 0
    assert f"Kubernetes {minor} needs containerd >= 99.0 and cgroup v2; this host runs containerd" in run.output
    assert _plays(run, "Upgrade the first control-plane host") == 0  # any_errors_fatal stopped the run


def test_kubernetes_hop_in_check_mode_stops_at_the_packages_and_batches_workers(lab_site, extra: dict) -> None:
    values = {**extra, "kf_upgrade_action": "kubernetes"}
    run = run_playbooks(lab_site.inventory, ["upgrade.yml"], values, "--check")
    assert run.rc == 0, run.tail()
    assert "SKIPPED kubeadm, kubelet, kubectl and the cluster steps" in run.output
    assert _plays(run, "Upgrade the first control-plane host") == 1
    assert _plays(run, "Upgrade the workers one at a time") == 2  # h2 and h3, one per batch
    assert "kubeadm upgrade apply" not in run.output
    assert {r["failed"] for r in run.recap.values()} == {0}


def test_runtime_change_in_check_mode_goes_one_node_at_a_time(lab_site, extra: dict) -> None:
    values = {**extra, "kf_upgrade_action": "runtime", "kf_upgrade_driver_changed": False}
    run = run_playbooks(lab_site.inventory, ["upgrade.yml"], values, "--check")
    assert run.rc == 0, run.tail()
    assert _plays(run, "Change the node runtime one node at a time") == 3  # h1, h2, h3 in turn
    assert _plays(run, "Upgrade the workers one at a time") == 2  # listed, every task skipped (another action)
    assert "TASK [containerd : Containerd | Check the requested source]" in run.output
    assert {r["failed"] for r in run.recap.values()} == {0}
