"""SSH host keys (issue #11 item 5): spec.ssh.hostKeyChecking, the options every Ansible run gets,
the inventory settings refused because they would bypass (or be bypassed by) them, and the lab's
known_hosts writer. The checks against real hosts (pin, changed key, strict) are in
tests/lab/test_host_keys_lab.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from installer.adapters.ansible import ansible_environment
from installer.adapters.ssh import HostKeyPolicy, check_host_keys
from installer.config.load import load
from installer.config.problems import InvalidConfig
from installer.config.ssh import site_known_hosts, ssh_option_names
from installer.lab.inventory import known_hosts_text, public_keys, write_known_hosts

VENV_BIN = Path(sys.executable).parent
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOZ3Xh1uYyKD8VrXxYkX8v5m1KLs3Yy3hV5Y7tJ0b2cq"
OTHER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv8p6bq2Xb9e9lFJ6x8G0wZz7u6jvQeKkq0Z1b2m3n4"


def _policy_args(policy: HostKeyPolicy) -> list[str]:
    return shlex.split(ansible_environment(policy)["ANSIBLE_SSH_ARGS"])


def test_default_is_accept_new_against_known_hosts_in_the_state_dir(make_site) -> None:
    cfg = load(make_site(), need_secrets=False)
    policy = HostKeyPolicy.of(cfg)
    assert policy.mode == "accept-new"
    assert policy.known_hosts == cfg.state_dir / "known_hosts"
    env = ansible_environment(policy)
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    args = _policy_args(policy)
    assert args[:4] == [
        "-o", "StrictHostKeyChecking=accept-new", "-o", f'UserKnownHostsFile="{cfg.state_dir / "known_hosts"}"'
    ]
    assert sorted(policy.targets) == sorted(h.name for h in cfg.inventory.hosts)


def test_strict_and_off_are_what_the_file_says(make_site) -> None:
    strict = HostKeyPolicy.of(load(make_site(cluster={"spec.ssh.hostKeyChecking": "strict"}), need_secrets=False))
    assert "StrictHostKeyChecking=yes" in _policy_args(strict)
    off = HostKeyPolicy.of(load(make_site(cluster={"spec.ssh.hostKeyChecking": "off"}), need_secrets=False))
    assert _policy_args(off)[:4] == ["-o", "StrictHostKeyChecking=no", "-o", 'UserKnownHostsFile="/dev/null"']
    assert check_host_keys(off).mode == "off"  # nothing probed, nothing pinned


def test_no_master_connection_is_shared_across_sites_or_policies(tmp_path: Path) -> None:
    """A reused ControlMaster connection skips the host-key check."""
    dirs = {
        HostKeyPolicy(mode, tmp_path / site / "known_hosts").ansible_env()["ANSIBLE_SSH_CONTROL_PATH_DIR"]
        for mode in ("accept-new", "strict", "off") for site in ("a", "b")
    }
    assert len(dirs) == 6 and "~/.ansible/cp" not in dirs


def test_an_unknown_mode_is_refused_with_the_choices(make_site) -> None:
    with pytest.raises(InvalidConfig) as caught:
        load(make_site(cluster={"spec.ssh.hostKeyChecking": "no"}), need_secrets=False)
    text = "\n".join(caught.value.lines())
    assert "spec.ssh.hostKeyChecking" in text and "accept-new" in text and "strict" in text


def test_environment_without_a_site_keeps_ansible_checking_on() -> None:
    env = ansible_environment()
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "StrictHostKeyChecking" not in env["ANSIBLE_SSH_ARGS"]


def test_ansible_puts_kfinstall_host_key_options_before_the_inventory_ssh_args(make_site, tmp_path: Path) -> None:
    """Ansible's real ssh command line: ours first (ssh keeps the first value), the operator's after."""
    operator_args = "-o ConnectTimeout=2 -o ServerAliveInterval=7"
    site = make_site(hosts={"all.hosts.cp1": {"ansible_host": "127.0.0.1", "ansible_port": 1,
                                              "ansible_ssh_common_args": operator_args}})
    cfg = load(site, need_secrets=False)
    recorder = tmp_path / "ssh"
    argv_file = tmp_path / "argv"
    recorder.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {argv_file}\nexit 255\n')
    recorder.chmod(0o755)
    # The operator's shell turning checking off is replaced, under either of Ansible's names for it.
    operator = {"ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_SSH_HOST_KEY_CHECKING": "False"}
    env = {**os.environ, **operator, **ansible_environment(HostKeyPolicy.of(cfg)), "ANSIBLE_SSH_EXECUTABLE": str(recorder)}
    subprocess.run(
        [str(VENV_BIN / "ansible"), "cp1", "-i", str(site / "hosts.yml"), "-m", "ping"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    argv = argv_file.read_text().splitlines()
    names = ssh_option_names(argv)
    assert names.index("StrictHostKeyChecking") < names.index("ServerAliveInterval")
    assert names.count("StrictHostKeyChecking") == 1  # Ansible adds no StrictHostKeyChecking=no of its own
    assert "StrictHostKeyChecking=accept-new" in argv
    assert f'UserKnownHostsFile="{cfg.state_dir / "known_hosts"}"' in argv


@pytest.mark.parametrize(
    ("hostvars", "key", "words"),
    [
        ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"}, "ansible_ssh_common_args",
         "StrictHostKeyChecking"),
        ({"ansible_ssh_common_args": "-oUserKnownHostsFile=/dev/null"}, "ansible_ssh_common_args",
         "UserKnownHostsFile"),
        ({"ansible_ssh_extra_args": "-v -o stricthostkeychecking yes"}, "ansible_ssh_extra_args",
         "StrictHostKeyChecking"),
        ({"ansible_ssh_args": "-C"}, "ansible_ssh_args", "replace kfinstall's own ssh options"),
        ({"ansible_host_key_checking": False}, "ansible_host_key_checking", "spec.ssh.hostKeyChecking"),
        ({"ansible_ssh_host_key_checking": "no"}, "ansible_ssh_host_key_checking", "spec.ssh.hostKeyChecking"),
        ({"ansible_ssh_common_args": "{{ lookup('env', 'X') }}"}, "ansible_ssh_common_args", "template"),
        ({"ansible_connection": "paramiko"}, "ansible_connection", "ssh connections only"),
        # A control socket of the operator's choosing is shared with other ssh sessions: a master
        # opened there (by any policy) is reused without a host-key check.
        ({"ansible_ssh_common_args": "-S /tmp/shared"}, "ansible_ssh_common_args", "ControlPath"),
        ({"ansible_ssh_extra_args": "-o ControlPath=/tmp/shared-%h"}, "ansible_ssh_extra_args", "ControlPath"),
        ({"ansible_control_path_dir": "/tmp/shared"}, "ansible_control_path_dir", "control socket"),
        ({"ansible_control_path": "/tmp/shared-%%h"}, "ansible_control_path", "control socket"),
        # Keys trusted from elsewhere than the site's known_hosts.
        ({"ansible_ssh_common_args": "-o GlobalKnownHostsFile=/tmp/keys"}, "ansible_ssh_common_args",
         "GlobalKnownHostsFile"),
        ({"ansible_ssh_common_args": "-o KnownHostsCommand=/bin/cat"}, "ansible_ssh_common_args",
         "trust host keys from outside the site's known_hosts"),
        ({"ansible_ssh_extra_args": "-o verifyhostkeydns=yes"}, "ansible_ssh_extra_args",
         "trust host keys from outside the site's known_hosts"),
        # ssh_config syntax: a tab ends the keyword too.
        ({"ansible_ssh_common_args": "-o 'StrictHostKeyChecking\tno'"}, "ansible_ssh_common_args",
         "StrictHostKeyChecking"),
    ],
)
def test_inventory_settings_that_would_bypass_the_policy_are_refused(
    make_site, hostvars: dict[str, object], key: str, words: str
) -> None:
    site = make_site(hosts={"all.hosts.cp1": {"ansible_host": "192.0.2.11", **hostvars}})
    with pytest.raises(InvalidConfig) as caught:
        load(site, need_secrets=False)
    lines = [line for line in caught.value.lines() if f"all.hosts.cp1.{key}" in line]
    assert lines and words in lines[0] and "Fix:" in lines[0], caught.value.lines()


def test_group_vars_count_too(make_site) -> None:
    site = make_site()
    (site / "group_vars").mkdir()
    (site / "group_vars" / "all.yml").write_text(
        yaml.safe_dump({"ansible_ssh_common_args": "-o ProxyJump=bastion -o StrictHostKeyChecking=no"})
    )
    with pytest.raises(InvalidConfig) as caught:
        load(site, need_secrets=False)
    assert any("ansible_ssh_common_args" in line and "StrictHostKeyChecking" in line for line in caught.value.lines())


def test_other_ssh_args_are_the_operators_and_reach_the_check(make_site) -> None:
    site = make_site()
    (site / "group_vars").mkdir()
    (site / "group_vars" / "all.yml").write_text(yaml.safe_dump({"ansible_ssh_common_args": "-o ProxyJump=bastion"}))
    policy = HostKeyPolicy.of(load(site, need_secrets=False))
    assert all(target.args({}) == ["-o", "ProxyJump=bastion"] for target in policy.targets.values())
    # Where the inventory sets no extra args, Ansible takes the environment's, and so does the check.
    environ = {"ANSIBLE_SSH_COMMON_ARGS": "-o ProxyJump=other", "ANSIBLE_SSH_EXTRA_ARGS": "-o ServerAliveInterval=5"}
    assert all(target.args(environ) == ["-o", "ProxyJump=bastion", "-o", "ServerAliveInterval=5"]
               for target in policy.targets.values())


def test_ssh_option_names_follow_ssh_getopt() -> None:
    args = ["-4", "-oA=1", "-o", "B 2", "-vo", "C=3", "-p", "-oD=not-an-option", "-i", "key", "host", "-o", "E=5"]
    assert ssh_option_names(args) == ["A", "B", "C", "E"]
    assert ssh_option_names(["-o", " F\tno", "-vS", "/tmp/x", "-M"]) == ["F", "ControlPath", "ControlMaster"]


PING = """\
- name: Ping
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""
HOSTILE_CFG = """\
[defaults]
transport = paramiko
host_key_checking = False
[ssh_connection]
control_path = {shared}/%%h
control_path_dir = {shared}
"""


@pytest.mark.parametrize("where", ["ANSIBLE_CONFIG", "cwd", "environment"])
def test_an_ansible_cfg_or_the_shell_cannot_switch_transport_or_share_the_control_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Ansible reads ANSIBLE_CONFIG, ./ansible.cfg and the shell's ANSIBLE_*: none of them may make a run
    skip the site's known_hosts (paramiko ignores ssh's options) or use a control socket outside the site's
    own directory. A real ansible-playbook against a closed loopback port shows the ssh command it ran."""
    from installer.adapters.ansible import run_playbook

    shared = tmp_path / "shared"
    cfg = tmp_path / "cfg" / "ansible.cfg"
    cfg.parent.mkdir(mode=0o700)
    cfg.write_text(HOSTILE_CFG.format(shared=shared))
    if where == "ANSIBLE_CONFIG":
        monkeypatch.setenv("ANSIBLE_CONFIG", str(cfg))
    elif where == "cwd":
        monkeypatch.chdir(cfg.parent)
    else:
        monkeypatch.setenv("ANSIBLE_TRANSPORT", "paramiko")
        monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH", f"{shared}/%%h")
    monkeypatch.setenv("ANSIBLE_VERBOSITY", "3")  # Ansible prints the ssh command line it runs
    playbook = tmp_path / "ping.yml"
    playbook.write_text(PING)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("cp1 ansible_host=127.0.0.1 ansible_port=1\n")
    policy = HostKeyPolicy("strict", tmp_path / "site" / "known_hosts")
    work = tmp_path / "work"

    result = run_playbook(str(playbook), inventory, {}, work, host_keys=policy)

    assert [f.message.startswith("unreachable: ") for f in result.failures] == [True]
    (stdout,) = work.glob("artifacts/*/stdout")
    commands = [line for line in stdout.read_text().splitlines() if "SSH: EXEC ssh " in line]
    assert commands, "the ssh connection plugin was not used"
    own_dir = os.path.expanduser(policy.ansible_env()["ANSIBLE_SSH_CONTROL_PATH_DIR"])
    for command in commands:
        argv = shlex.split(command.split("SSH: EXEC ", 1)[1])
        assert f'UserKnownHostsFile="{policy.known_hosts}"' in argv
        assert "GlobalKnownHostsFile=/dev/null" in argv  # /etc/ssh/ssh_known_hosts is not the site's
        (control,) = [a for a in argv if a.startswith("ControlPath=")]
        assert control.startswith(f'ControlPath="{own_dir}/') and str(shared) not in command


def test_unreachable_hosts_are_left_to_the_preflight(make_site) -> None:
    site = make_site(hosts={f"all.hosts.{h}": {"ansible_host": "127.0.0.1", "ansible_port": port}
                            for h, port in (("cp1", 1), ("n1", 2), ("n2", 3))})
    report = check_host_keys(HostKeyPolicy.of(load(site, need_secrets=False)))
    assert sorted(report.unreachable) == ["cp1", "n1", "n2"] and not report.pinned and not report.verified
    known_hosts = Path(report.known_hosts)
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600 and known_hosts.read_text() == ""


# The lab's known_hosts writer ----------------------------------------------------------------------

def _hashed(name: str, key: str) -> str:
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()} {key}"


def test_lab_keys_replace_only_the_lab_machines_entries() -> None:
    current = "\n".join([
        f"10.89.7.11 {OTHER}",  # stale key of a re-created lab host
        _hashed("10.89.7.12", OTHER),  # pinned by accept-new with HashKnownHosts
        f"192.0.2.5 {OTHER}",  # the operator's own host
        _hashed("192.0.2.6", OTHER),
        "# a comment",
    ]) + "\n"
    text = known_hosts_text(current, {"10.89.7.11": [KEY], "10.89.7.12": [KEY]})
    lines = text.splitlines()
    assert f"192.0.2.5 {OTHER}" in lines and _hashed("192.0.2.6", OTHER) in lines and "# a comment" in lines
    assert f"10.89.7.11 {OTHER}" not in lines and _hashed("10.89.7.12", OTHER) not in lines
    assert lines[-2:] == [f"10.89.7.11 {KEY}", f"10.89.7.12 {KEY}"]


def test_lab_known_hosts_is_private_and_where_up_looks(make_site, tmp_path: Path) -> None:
    site = make_site()
    path = site_known_hosts(site)
    assert path == load(site, need_secrets=False).state_dir / "known_hosts"
    write_known_hosts(path, {"10.89.7.11": [KEY]})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"10.89.7.11 {KEY}\n"


def test_public_keys_take_only_well_formed_keys() -> None:
    text = f"{KEY} root@h1\nssh-rsa AAAA;touch /tmp/x\n\ngarbage\n{OTHER}\n"
    assert public_keys(text) == [KEY, OTHER]


def test_off_is_loud_and_recorded(make_site) -> None:
    from click.testing import CliRunner

    from installer.cli import cli

    hosts = {f"all.hosts.{h}": {"ansible_host": "127.0.0.1", "ansible_port": port,
                                "ansible_ssh_common_args": "-o ConnectTimeout=2"}
             for h, port in (("cp1", 1), ("n1", 2), ("n2", 3))}
    site = make_site(cluster={"spec.ssh.hostKeyChecking": "off"}, hosts=hosts)
    result = CliRunner().invoke(cli, ["up", "-i", str(site), "--only", "hosts", "--yes"])
    assert result.exception is not None and result.exception.exit_code == 3  # the hosts do not answer
    assert "WARNING: SSH host keys are NOT checked" in result.output
    (record,) = (site / ".kfinstall" / "test" / "runs").iterdir()
    recorded = yaml.safe_load((record / "host-keys.json").read_text())
    assert recorded["mode"] == "off" and recorded["known_hosts"] == "/dev/null"


def test_the_operators_environment_is_refused_or_named_never_silently_ignored(
    make_site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from installer.errors import ConfigError

    site = make_site(hosts={"all.hosts.cp1": {"ansible_host": "127.0.0.1", "ansible_port": 1}})
    policy = HostKeyPolicy.of(load(site, need_secrets=False))
    monkeypatch.setenv("ANSIBLE_SSH_COMMON_ARGS", "-o ConnectTimeout=3 -o UserKnownHostsFile=/dev/null")
    with pytest.raises(ConfigError) as caught:
        check_host_keys(policy)
    assert caught.value.exit_code == 2 and "ANSIBLE_SSH_COMMON_ARGS" in caught.value.message
    assert "UserKnownHostsFile" in caught.value.message and "Fix:" in caught.value.message
    monkeypatch.setenv("ANSIBLE_SSH_COMMON_ARGS", "-o ConnectTimeout=3")
    monkeypatch.setenv("ANSIBLE_HOST_KEY_CHECKING", "False")
    assert check_host_keys(policy).ignored == ["ANSIBLE_HOST_KEY_CHECKING='False'"]
    monkeypatch.setenv("ANSIBLE_SSH_COMMON_ARGS", "-o 'ProxyCommand=unbalanced")
    with pytest.raises(ConfigError, match="balance its quotes"):
        check_host_keys(policy)


def test_an_ssh_config_cannot_add_trusted_keys_beside_the_sites(tmp_path: Path) -> None:
    """ssh also trusts GlobalKnownHostsFile (/etc/ssh/ssh_known_hosts unless an ssh_config names another):
    kfinstall's options, first on the command line, leave the site's known_hosts the only file read."""
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n  GlobalKnownHostsFile {tmp_path / 'other_keys'}\n")
    policy = HostKeyPolicy("strict", tmp_path / "known_hosts")
    shown = subprocess.run(["ssh", "-G", "-F", str(config), *policy.ssh_options(), "--", "192.0.2.1"],
                           capture_output=True, text=True, timeout=30, check=True).stdout.splitlines()
    assert "globalknownhostsfile /dev/null" in shown
    assert f"userknownhostsfile {policy.known_hosts}" in shown
