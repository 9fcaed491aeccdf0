"""-v reached Ansible only in `up` (F1 item 5): `plan --check-hosts`, `upgrade` and `backup --cluster`
now pass the group's -v count to every ansible-playbook they start (installer.adapters.ansible.run_playbook's
`verbosity`). ansible-runner, the SSH host-key check and the upgrade's cluster facts stand in."""

from __future__ import annotations

from typing import Any

import pytest

from installer.adapters import ansible, ssh
from installer.phases import preflight
from installer.state import State, write_state


@pytest.fixture
def playbooks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every playbook started, with the verbosity it was given; each one fails, so the command stops there."""
    started: list[tuple[str, int]] = []

    def playbook(name: str, inventory: Any, extravars: Any, work_dir: Any, **kwargs: Any) -> ansible.PlaybookResult:
        started.append((name, kwargs.get("verbosity", 0)))
        return ansible.PlaybookResult(status="failed", rc=2, duration_s=0.1)

    def keys(policy: ssh.HostKeyPolicy) -> ssh.HostKeyReport:
        return ssh.HostKeyReport(policy.mode, str(policy.known_hosts))

    monkeypatch.setattr(ansible, "run_playbook", playbook)
    monkeypatch.setattr(preflight, "run_playbook", playbook)
    monkeypatch.setattr(ssh, "check_host_keys", keys)
    monkeypatch.setattr(preflight, "check_host_keys", keys)
    return started


@pytest.mark.parametrize("flags, level", [((), 0), (("-vv",), 2)])
def test_plan_check_hosts_passes_the_verbosity(make_site, kfinstall, playbooks, flags, level) -> None:
    code, out = kfinstall(*flags, "plan", "-i", str(make_site()), "--check-hosts")
    assert playbooks and playbooks[0] == ("preflight.yml", level), out


@pytest.mark.parametrize("flags, level", [((), 0), (("-vvv",), 3)])
def test_backup_cluster_passes_the_verbosity(make_site, kfinstall, playbooks, monkeypatch, flags, level) -> None:
    from installer.cli import backup

    monkeypatch.setattr(backup, "hub_db_skip_reason", lambda cfg: "JupyterHub is not enabled")
    code, out = kfinstall(*flags, "backup", "-i", str(make_site()), "--cluster")
    assert [v for name, v in playbooks if name == "backup.yml"] == [level], out


def test_upgrade_passes_the_verbosity(make_site, kfinstall, playbooks, monkeypatch) -> None:
    from installer.upgrade import run as upgrade_run
    from installer.upgrade.facts import ClusterFacts, NodeFacts, Z2jhSettings

    def facts(ctx: Any, hop: Any) -> ClusterFacts:
        version = f"v{hop.kubernetes_from}.3"
        node = NodeFacts("cp1", True, True, version, "2.1.4", 2, True)
        return ClusterFacts(nodes=(node,), apiserver_versions=(version,), z2jh=Z2jhSettings("escape", True))

    monkeypatch.setattr(upgrade_run, "live_facts", facts)
    monkeypatch.setattr(upgrade_run.run_upgrade, "__kwdefaults__",
                        {**upgrade_run.run_upgrade.__kwdefaults__, "collect": facts, "backup": lambda ctx, hop: None})
    monkeypatch.setattr(upgrade_run, "hub_db_skip_reason", lambda cfg: "JupyterHub is not enabled")
    site = make_site({"spec.channel": "26.03", "spec.kubernetes.version": "1.35"})
    installed = State(cluster="test", installed_channel="26.03", kubernetes_version="1.34")
    write_state(site / ".kfinstall" / "test", installed)
    code, out = kfinstall("-vv", "upgrade", "-i", str(site), "--to", "26.03", "--yes")
    assert ("upgrade.yml", 2) in playbooks and all(v == 2 for _, v in playbooks), out


@pytest.mark.parametrize("flags, level", [(("plan", "-vv"), 2), (("-v", "plan", "-v"), 2), (("plan",), 0)])
def test_v_after_the_verb_counts_like_v_before_it(make_site, kfinstall, playbooks, flags, level) -> None:
    """`kfinstall plan -vv` was "No such option: -v"; -v after the verb now adds to the group's count."""
    verb, *extra = flags if flags[0] == "plan" else flags[1:]
    before = () if flags[0] == "plan" else flags[:1]
    code, out = kfinstall(*before, verb, "-i", str(make_site()), "--check-hosts", *extra)
    assert "No such option" not in out
    assert playbooks and playbooks[0] == ("preflight.yml", level), out
