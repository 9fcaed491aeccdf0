"""`kfinstall plan` on a site without Gluster hosts printed Ansible's "[WARNING]: Could not match supplied
host pattern, ignoring: gluster": a host step with no hosts is normal in a plan. The warning is silenced
while kfinstall resolves play patterns, and only then (Ansible's setting is back afterwards)."""

from __future__ import annotations

from ansible import constants

from installer.config.load import load


def test_plan_prints_no_pattern_warning_for_a_step_without_hosts(make_site, kfinstall_streams) -> None:
    site = make_site()  # no gluster group
    code, out, err = kfinstall_streams("plan", "-i", str(site))
    assert code == 0, out + err
    assert "Could not match supplied host pattern" not in out + err


def test_pattern_resolution_is_quiet_and_leaves_ansibles_setting_alone(make_site, capfd) -> None:
    cfg = load(make_site(), need_secrets=False)
    before = constants.HOST_PATTERN_MISMATCH
    assert cfg.inventory.pattern_hosts("gluster") == []
    assert cfg.inventory.pattern_hosts("kube_node:!nowhere") == ["n1", "n2"]
    captured = capfd.readouterr()
    assert "Could not match supplied host pattern" not in captured.out + captured.err
    assert before == constants.HOST_PATTERN_MISMATCH  # no global change
