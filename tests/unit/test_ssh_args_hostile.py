"""Hostile ssh settings in an inventory or the environment (issue 15 item 5, review 2): nothing an operator's
file says may replace kfinstall's ssh config file, the programs Ansible connects with, or run commands on
this machine, and every refusal names the file, the line, the key and a fix (exit 2) before any connection.

Upstream facts relied on:
  * ssh reads only the last -F it is given (`ssh -F a -F b -G host` prints b's settings; OpenSSH ssh.c keeps
    one config file name), and the ssh it starts for a ProxyJump hop gets only -F (see test_bastion.py).
  * Kubespray's roles/bastion-ssh-config/templates/ssh-bastion.conf.j2 writes `StrictHostKeyChecking no` for
    the bastion and a ProxyCommand `ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null`
    for the hosts behind it; Kubespray's contrib/terraform guides add `-F ssh-bastion.conf` to the ssh args
    (kubernetes-sigs/kubespray).
  * ssh_config(5): LocalCommand runs a command on the local machine after connecting when PermitLocalCommand
    is yes. sftp(1): -S program and -D sftp_server_path run another program for the connection, -b batchfile
    runs a batch of commands (a `!` line in a local shell). scp(1): -S program.
  * ansible-core's ssh connection plugin (2.19): ssh_executable / sftp_executable / scp_executable from
    ansible_ssh_executable & co., ANSIBLE_SSH_EXECUTABLE & co. or ansible.cfg [ssh_connection]; sftp_extra_args
    and scp_extra_args (ansible_sftp_extra_args, ANSIBLE_SFTP_EXTRA_ARGS, ...) go on every file transfer.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.adapters.ansible import ansible_environment
from installer.adapters.ssh import HostKeyPolicy, check_host_keys
from installer.config.load import load
from installer.config.problems import InvalidConfig
from installer.errors import ConfigError, PreflightError

KUBESPRAY_SITE = Path(__file__).parent / "sites" / "kubespray-bastion"


def refusals(make_site, hostvars: dict[str, object]) -> list[str]:
    site = make_site(hosts={"all.hosts.cp1": {"ansible_host": "192.0.2.11", **hostvars}})
    with pytest.raises(InvalidConfig) as caught:
        load(site, need_secrets=False)
    assert caught.value.exit_code == 2
    return caught.value.lines()


@pytest.mark.parametrize(
    ("hostvars", "key", "words"),
    [
        # Kubespray's way to its bastion: the file says StrictHostKeyChecking no for the hop.
        ({"ansible_ssh_common_args": "-F ssh-bastion.conf"}, "ansible_ssh_common_args", "-F would replace"),
        ({"ansible_ssh_extra_args": "-vF/tmp/other.conf"}, "ansible_ssh_extra_args", "-F would replace"),
        ({"ansible_ssh_common_args": "-o PermitLocalCommand=yes -o 'LocalCommand=touch /tmp/x'"},
         "ansible_ssh_common_args", "run a command on this machine"),
        # A ProxyCommand that runs ssh behind a wrapper or a shell: the inner ssh checks nothing of the site's.
        ({"ansible_ssh_common_args": "-o 'ProxyCommand=exec ssh -W %h:%p ops@10.0.0.1'"},
         "ansible_ssh_common_args", "ProxyJump=ops@10.0.0.1"),
        ({"ansible_ssh_common_args": "-o 'ProxyCommand=/usr/bin/env ssh -p 2200 -W %h:%p ops@10.0.0.1'"},
         "ansible_ssh_common_args", "ProxyJump=ops@10.0.0.1:2200"),
        ({"ansible_ssh_common_args": "-o ProxyCommand=\"sh -c 'ssh -W %h:%p ops@10.0.0.1'\""},
         "ansible_ssh_common_args", "ProxyJump=ops@10.0.0.1"),
        ({"ansible_ssh_common_args": "-o 'ProxyCommand=sshpass -p pw ssh -W %h:%p ops@10.0.0.1'"},
         "ansible_ssh_common_args", "ProxyJump=ops@10.0.0.1"),
        # Another program instead of ssh, sftp or scp: kfinstall's check never ran it.
        ({"ansible_ssh_executable": "/usr/local/bin/ssh-wrapper"}, "ansible_ssh_executable", "another program"),
        ({"ansible_sftp_executable": "/tmp/sftp"}, "ansible_sftp_executable", "another program"),
        ({"ansible_scp_executable": "/tmp/scp"}, "ansible_scp_executable", "another program"),
        # File transfers: the same checks as the ssh args, and sftp/scp's own program-running flags.
        ({"ansible_sftp_extra_args": "-o StrictHostKeyChecking=no"}, "ansible_sftp_extra_args",
         "StrictHostKeyChecking"),
        ({"ansible_sftp_extra_args": "-S /tmp/prog"}, "ansible_sftp_extra_args", "another program"),
        ({"ansible_sftp_extra_args": "-b /tmp/batch"}, "ansible_sftp_extra_args", "another program"),
        ({"ansible_sftp_extra_args": "-D /tmp/server"}, "ansible_sftp_extra_args", "another program"),
        ({"ansible_scp_extra_args": "-F /tmp/other.conf"}, "ansible_scp_extra_args", "-F would replace"),
        ({"ansible_scp_extra_args": "-J ops@10.0.0.1"}, "ansible_scp_extra_args", "ansible_ssh_common_args"),
        ({"ansible_scp_extra_args": "-o 'ProxyCommand=ssh -W %h:%p ops@10.0.0.1'"}, "ansible_scp_extra_args",
         "ProxyJump=ops@10.0.0.1"),
        ({"ansible_sftp_extra_args": "{{ lookup('env', 'X') }}"}, "ansible_sftp_extra_args", "template"),
    ],
)
def test_settings_that_replace_kfinstalls_ssh_or_run_commands_are_refused_at_their_line(
    make_site, hostvars: dict[str, object], key: str, words: str
) -> None:
    lines = [line for line in refusals(make_site, hostvars) if f"all.hosts.cp1.{key}:" in line]
    assert lines, refusals(make_site, hostvars)
    assert words in lines[0] and "Fix:" in lines[0], lines
    assert re.match(r"error: hosts\.yml:\d+:\d+: ", lines[0]), lines  # file and line of the setting


@pytest.mark.parametrize(
    "hostvars",
    [
        {"ansible_ssh_common_args": "-o 'ProxyCommand=nc -X connect -x proxy.example:3128 %h %p'"},
        # `ssh` as a subcommand, not a program: no ssh runs (Cloudflare's documented ProxyCommand).
        {"ansible_ssh_common_args": "-o 'ProxyCommand=cloudflared access ssh --hostname %h'"},
        {"ansible_ssh_executable": "ssh", "ansible_sftp_extra_args": "-l 8192 -o ServerAliveInterval=5"},
        {"ansible_scp_extra_args": "-l 8192"},
    ],
)
def test_the_operators_own_settings_stay_theirs(make_site, hostvars: dict[str, object]) -> None:
    site = make_site(hosts={"all.hosts.cp1": {"ansible_host": "192.0.2.11", **hostvars}})
    assert load(site, need_secrets=False).inventory.hosts


def test_a_group_variable_is_one_problem_at_its_own_file_and_line(make_site) -> None:
    site = make_site()
    (site / "group_vars").mkdir()
    (site / "group_vars" / "all.yml").write_text(
        "# the site's ssh settings\nansible_ssh_common_args: -F ssh-bastion.conf\n")
    with pytest.raises(InvalidConfig) as caught:
        load(site, need_secrets=False)
    lines = [line for line in caught.value.lines() if "-F would replace" in line]
    assert len(lines) == 1, caught.value.lines()  # not one per host
    assert lines[0].startswith("error: group_vars/all.yml:2:") and " ansible_ssh_common_args: " in lines[0], lines


def test_a_bastion_that_is_also_a_cluster_host_is_refused(make_site) -> None:
    site = make_site(hosts_text="", hosts_name="hosts.ini")
    (site / "hosts.yml").unlink(missing_ok=True)
    text = (KUBESPRAY_SITE / "hosts.ini").read_text().replace("[kube-node]\nnode2\n", "[kube-node]\nnode2\nbastion\n")
    (site / "hosts.ini").write_text(text)
    with pytest.raises(InvalidConfig) as caught:
        load(site, need_secrets=False)
    lines = [line for line in caught.value.lines() if "all.hosts.bastion:" in line]
    assert lines and "in the bastion group and also in kube_node" in lines[0], caught.value.lines()
    assert re.match(r"error: hosts\.ini:\d+:\d+: ", lines[0]) and "Fix: take bastion out of kube_node" in lines[0]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("ANSIBLE_SSH_COMMON_ARGS", "-F /tmp/ssh-bastion.conf", "-F would replace"),
        ("ANSIBLE_SSH_EXTRA_ARGS", "-o PermitLocalCommand=yes", "run a command on this machine"),
        ("ANSIBLE_SFTP_EXTRA_ARGS", "-S /tmp/prog", "another program"),
        ("ANSIBLE_SCP_EXTRA_ARGS", "-o UserKnownHostsFile=/dev/null", "UserKnownHostsFile"),
    ],
)
def test_the_same_settings_in_the_environment_are_refused(
    make_site, monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    policy = HostKeyPolicy.of(load(make_site(), need_secrets=False))
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        check_host_keys(policy)
    assert caught.value.exit_code == 2
    assert name in caught.value.message and words in caught.value.message and "Fix:" in caught.value.message


def test_ansible_runs_ssh_and_the_checked_args_whatever_an_ansible_cfg_says(
    make_site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ansible.cfg (ANSIBLE_CONFIG, the cwd's, ~/.ansible.cfg) may name other programs and extra args that no
    check reads: the environment kfinstall gives Ansible beats it (Ansible: environment over ini)."""
    cfg_file = tmp_path / "ansible.cfg"
    cfg_file.write_text("[ssh_connection]\nssh_executable = /tmp/x/ssh\nsftp_executable = /tmp/x/sftp\n"
                        "ssh_common_args = -F /tmp/x/ssh-bastion.conf\nsftp_extra_args = -S /tmp/x/prog\n")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(cfg_file))
    monkeypatch.setenv("ANSIBLE_SSH_EXTRA_ARGS", "-o ServerAliveInterval=5")  # the operator's, checked: kept
    env = ansible_environment(HostKeyPolicy.of(load(make_site(), need_secrets=False)))
    assert (env["ANSIBLE_SSH_EXECUTABLE"], env["ANSIBLE_SFTP_EXECUTABLE"], env["ANSIBLE_SCP_EXECUTABLE"]) == (
        "ssh", "sftp", "scp")
    assert env["ANSIBLE_SSH_COMMON_ARGS"] == "" and env["ANSIBLE_SFTP_EXTRA_ARGS"] == ""
    assert "ANSIBLE_SSH_EXTRA_ARGS" not in env  # the operator's own, checked (environment_conflicts): inherited
    # What Ansible makes of it: the environment wins over the file.
    from ansible.constants import config as manager
    from ansible.plugins.loader import connection_loader

    connection_loader.get("ssh", class_only=True)  # loads the plugin's option definitions
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for option, expected in (("ssh_executable", "ssh"), ("ssh_common_args", ""), ("sftp_extra_args", ""),
                             ("ssh_extra_args", "-o ServerAliveInterval=5")):
        value, origin = manager.get_config_value_and_origin(option, cfile=str(cfg_file), plugin_type="connection",
                                                            plugin_name="ssh")
        assert value == expected and str(origin).startswith("env:"), (option, value, origin)


def test_without_the_openssh_client_the_check_refuses_before_any_connection(
    make_site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    policy = HostKeyPolicy.of(load(make_site(), need_secrets=False))
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("ssh") is None
    with pytest.raises(PreflightError) as caught:
        check_host_keys(policy)
    assert caught.value.exit_code == 3
    assert "ssh and ssh-keygen not found on PATH" in caught.value.message and "openssh-client" in caught.value.message
    assert not policy.known_hosts.exists()  # nothing written, nothing reached


def test_group_vars_yaml_is_read_as_ansible_reads_it(make_site) -> None:
    """The transfer args count from group_vars/ too (Ansible's own variable manager)."""
    site = make_site()
    (site / "group_vars").mkdir()
    (site / "group_vars" / "all.yml").write_text(yaml.safe_dump({"ansible_sftp_extra_args": "-S /tmp/prog"}))
    with pytest.raises(InvalidConfig) as caught:
        load(site, need_secrets=False)
    assert any(line.startswith("error: group_vars/all.yml:1:") and "ansible_sftp_extra_args" in line
               for line in caught.value.lines()), caught.value.lines()


class FakeSsh:
    """Stands for ssh and ssh-keygen: `ssh -G` answers `settings` (what an ssh config file added), and a
    connection is recorded and refused at login (the key verified)."""

    def __init__(self, settings: str) -> None:
        self.settings, self.connections = settings, []

    def __call__(self, argv: list[str], *, timeout: float, input: str | None = None, env: Any = None) -> Any:
        import subprocess

        if argv[0] == "ssh" and "-G" in argv:  # the jump host itself is reached directly
            added = "" if argv[-1] == "203.0.113.9" else self.settings
            return subprocess.CompletedProcess(argv, 0, f"hostname {argv[-1]}\nport 22\n{added}", "")
        if argv[0] == "ssh":
            self.connections.append(argv[-2])
            return subprocess.CompletedProcess(argv, 255, "", "root@h: Permission denied (publickey).")
        return subprocess.CompletedProcess(argv, 1, "", "")  # ssh-keygen -F: nothing pinned


@pytest.mark.parametrize("settings", ["proxyjump ops@203.0.113.9\n",
                                      "proxyjump none\nproxycommand ssh -W %h:%p -q ops@203.0.113.9\n"])
def test_a_jump_that_only_an_ssh_config_file_adds_is_refused_before_any_connection(
    make_site, monkeypatch: pytest.MonkeyPatch, settings: str
) -> None:
    """~/.ssh/config's `Host 192.0.2.* / ProxyJump ops@...`: ssh gives that hop's ssh none of kfinstall's -o
    options, so the hop's key would be checked as the operator's own files say, not against the site's."""
    import installer.adapters.ssh as ssh_adapter

    fake = FakeSsh(settings)
    monkeypatch.setattr(ssh_adapter, "run_child", fake)
    policy = HostKeyPolicy.of(load(make_site(), need_secrets=False))
    with pytest.raises(ConfigError) as caught:
        check_host_keys(policy)
    assert caught.value.exit_code == 2 and fake.connections == []
    assert "sends it through the jump host ops@203.0.113.9" in caught.value.message
    assert "Fix: write -J ops@203.0.113.9 in its ansible_ssh_common_args" in caught.value.message


def test_a_jump_the_inventory_names_is_checked_first_not_refused(make_site, monkeypatch: pytest.MonkeyPatch) -> None:
    import installer.adapters.ssh as ssh_adapter

    fake = FakeSsh("proxyjump ops@203.0.113.9\n")
    monkeypatch.setattr(ssh_adapter, "run_child", fake)
    site = make_site(hosts={"all.vars.ansible_ssh_common_args": "-J ops@203.0.113.9"})
    report = check_host_keys(HostKeyPolicy.of(load(site, need_secrets=False)))
    assert fake.connections[0] == "203.0.113.9" and "jump ops@203.0.113.9" in report.verified
