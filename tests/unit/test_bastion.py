"""Bastion and jump hosts (issue 15 item 5): a Kubespray `bastion` group, or -J / -o ProxyJump in the
inventory's ssh args; the jump host's key is checked against the site's known_hosts like every host's.
The run through a real bastion is tests/lab/test_bastion_lab.py.

Upstream facts relied on:
  * Kubespray's bastion: playbooks/boilerplate.yml runs roles/bastion-ssh-config on `bastion[0]`; its
    templates/ssh-bastion.conf.j2 sends every host outside groups['bastion'] through the bastion's
    ansible_host (or ansible_ssh_host), ansible_port (default 22), ansible_user and
    ansible_ssh_private_key_file (kubernetes-sigs/kubespray 46dbdd39); docs/ansible/inventory.md "Bastion host".
    It writes StrictHostKeyChecking no / UserKnownHostsFile /dev/null for the hop: kfinstall does not.
  * ssh passes a ProxyJump hop's ssh only -l, -p, -J, -F and -v, none of the command line's -o options
    (OpenSSH ssh.c, the implicit ProxyCommand; seen with OpenSSH 9.2p1: "Setting implicit ProxyCommand from
    ProxyJump: ssh -l u -p 2222 -F /tmp/cfg -vvv -W '[%h]:%p' 127.0.0.9"), so the hop's host-key
    settings must come from the -F file.
  * DeepOps' config.example/inventory writes a jump host as
    ansible_ssh_common_args='-o ProxyCommand="ssh -W %h:%p -q ubuntu@10.0.0.1"' (NVIDIA/deepops).
"""

from __future__ import annotations

import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from installer.adapters.ansible import ansible_environment
from installer.adapters.ssh import SSH_CONFIG, HostKeyPolicy, check_host_keys
from installer.config.load import load
from installer.config.problems import InvalidConfig

KUBESPRAY_SITE = Path(__file__).parent / "sites" / "kubespray-bastion"


def kubespray_site(make_site, text: str | None = None) -> Path:
    site = make_site(hosts_text="", hosts_name="hosts.ini")
    (site / "hosts.yml").unlink(missing_ok=True)
    (site / "hosts.ini").write_text(text if text is not None else (KUBESPRAY_SITE / "hosts.ini").read_text())
    return site


def ssh_settings(config: Path, *argv: str) -> dict[str, list[str]]:
    """What ssh itself makes of the config for a destination (`ssh -G`, no connection)."""
    out = subprocess.run(["ssh", "-G", "-F", str(config), *argv], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    settings: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, []).append(value)
    return settings


def test_the_kubespray_bastion_is_a_jump_host_checked_first_and_no_cluster_host(make_site) -> None:
    cfg = load(kubespray_site(make_site), need_secrets=False)
    policy = HostKeyPolicy.of(cfg)
    assert sorted(policy.targets) == ["node1", "node2", "node3"]
    assert list(policy.jumps) == ["bastion"]
    bastion = policy.jumps["bastion"]
    assert (bastion.address, bastion.user, bastion.port) == ("198.51.100.7", "ops", None)
    assert policy.proxied == ("10.3.0.1", "10.3.0.2", "10.3.0.3")
    # Every connection Ansible makes reads the site's ssh config (-F): the only thing a hop's ssh gets.
    args = shlex.split(ansible_environment(policy)["ANSIBLE_SSH_ARGS"])
    assert args[args.index("-F") + 1] == str(cfg.state_dir / SSH_CONFIG)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the ssh client (ssh -G reads the config)")
def test_ssh_reaches_the_hosts_through_the_bastion_and_checks_the_bastions_key_with_the_sites_policy(
    make_site, tmp_path: Path
) -> None:
    text = (KUBESPRAY_SITE / "hosts.ini").read_text().replace(
        "bastion ansible_host=198.51.100.7 ansible_user=ops",
        "bastion ansible_host=198.51.100.7 ansible_user=ops ansible_port=2222 ansible_ssh_private_key_file='/k/b 100%'")
    cfg = load(kubespray_site(make_site, text), need_secrets=False, state_dir=tmp_path / "state with space")
    policy = HostKeyPolicy.of(cfg)
    check_host_keys(HostKeyPolicy("off", policy.known_hosts, jumps=policy.jumps, bastion=policy.bastion,
                                  proxied=policy.proxied))
    config = policy.ssh_config
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    off = ssh_settings(config, "10.3.0.2")
    assert off["proxyjump"] == ["[198.51.100.7]"] or off["proxyjump"] == ["198.51.100.7"]
    assert off["stricthostkeychecking"] == ["false"] and off["userknownhostsfile"] == ["/dev/null"]
    policy.write_ssh_config()  # accept-new, as the site says
    # The hop: how ssh connects to the bastion when it is asked for only its address (as ProxyJump does).
    hop = ssh_settings(config, "198.51.100.7")
    assert hop["user"] == ["ops"] and hop["port"] == ["2222"]
    assert hop["identityfile"] == ["/k/b 100%%"]  # ssh's own escape of %: the file '/k/b 100%'
    assert hop["stricthostkeychecking"] == ["accept-new"]
    assert hop["userknownhostsfile"] == [str(policy.known_hosts)]
    assert hop["globalknownhostsfile"] == ["/dev/null"]
    assert "proxyjump" not in hop
    # A node: through the bastion, its own key against the same file.
    node = ssh_settings(config, "10.3.0.2")
    assert node["proxyjump"][0].strip("[]") == "198.51.100.7"
    assert node["userknownhostsfile"] == [str(policy.known_hosts)]


def test_a_proxyjump_in_the_ssh_args_is_a_jump_host_too(make_site) -> None:
    hosts = {"all.vars.ansible_ssh_common_args": "-o ProxyJump=ops@203.0.113.5:2200"}
    policy = HostKeyPolicy.of(load(make_site(hosts=hosts), need_secrets=False))
    (name,) = policy.jumps
    hop = policy.jumps[name]
    assert name == "jump ops@203.0.113.5:2200"
    assert (hop.address, hop.port, hop.user) == ("203.0.113.5", 2200, "ops")
    assert policy.bastion is None and policy.proxied == ()


def test_a_chain_of_jumps_checks_each_hop_through_the_ones_before(make_site) -> None:
    hosts = {"all.vars.ansible_ssh_common_args": "-J a.example,b.example:2022"}
    policy = HostKeyPolicy.of(load(make_site(hosts=hosts), need_secrets=False))
    assert list(policy.jumps) == ["jump a.example", "jump b.example:2022"]
    assert policy.jumps["jump a.example"].args({}) == []
    assert policy.jumps["jump b.example:2022"].args({}) == ["-J", "a.example"]


def test_a_host_with_its_own_proxy_keeps_it_beside_a_bastion(make_site) -> None:
    text = (KUBESPRAY_SITE / "hosts.ini").read_text().replace(
        "node3 ansible_host=10.3.0.3 ip=10.3.0.3",
        "node3 ansible_host=10.3.0.3 ip=10.3.0.3 ansible_ssh_common_args='-J other.example'")
    policy = HostKeyPolicy.of(load(kubespray_site(make_site, text), need_secrets=False))
    assert policy.proxied == ("10.3.0.1", "10.3.0.2")
    assert sorted(policy.jumps) == ["bastion", "jump other.example"]


def test_a_site_without_jump_hosts_has_no_ssh_config(make_site, tmp_path: Path) -> None:
    cfg = load(make_site(cluster={"spec.ssh.hostKeyChecking": "off"}), need_secrets=False, state_dir=tmp_path)
    policy = HostKeyPolicy.of(cfg)
    check_host_keys(policy)
    assert "-F" not in shlex.split(ansible_environment(policy)["ANSIBLE_SSH_ARGS"])
    assert not (tmp_path / SSH_CONFIG).exists()


def test_deepops_proxycommand_through_ssh_is_refused_with_the_proxyjump_to_write(make_site) -> None:
    hosts = {"all.vars.ansible_ssh_common_args": '-o ProxyCommand="ssh -W %h:%p -q ubuntu@10.0.0.1"'}
    with pytest.raises(InvalidConfig) as caught:
        load(make_site(hosts=hosts), need_secrets=False)
    lines = caught.value.lines()
    assert caught.value.exit_code == 2
    assert any("ansible_ssh_common_args: -o ProxyCommand runs ssh to a jump host whose key kfinstall cannot "
               "check" in line and "Fix: write -o ProxyJump=ubuntu@10.0.0.1 instead" in line for line in lines), lines


def test_a_proxycommand_that_is_not_ssh_is_the_operators(make_site) -> None:
    hosts = {"all.vars.ansible_ssh_common_args": '-o ProxyCommand="nc -X connect -x proxy.example:3128 %h %p"'}
    policy = HostKeyPolicy.of(load(make_site(hosts=hosts), need_secrets=False))
    assert policy.jumps == {}  # no SSH hop: the host's own key is checked, through the proxy


@pytest.mark.parametrize("key_file", ['"/k/a\\"b"', "'{{ lookup(\"env\", \"X\") }}'"])
def test_a_bastion_key_file_that_cannot_be_written_literally_is_refused(make_site, key_file: str) -> None:
    text = (KUBESPRAY_SITE / "hosts.ini").read_text().replace(
        "bastion ansible_host=198.51.100.7 ansible_user=ops",
        f"bastion ansible_host=198.51.100.7 ansible_user=ops ansible_ssh_private_key_file={key_file}")
    with pytest.raises(InvalidConfig) as caught:
        load(kubespray_site(make_site, text), need_secrets=False)
    assert any("all.hosts.bastion.ansible_ssh_private_key_file: the bastion's key file must be a literal path"
               in line for line in caught.value.lines()), caught.value.lines()


def test_plan_shows_the_jump_hosts_checked_first_and_counts_only_cluster_hosts(make_site) -> None:
    from installer.plan import build_plan

    plan = build_plan(load(kubespray_site(make_site), need_secrets=False)).as_dict()
    (preflight,) = [p for p in plan["phases"] if p["name"] == "preflight"]
    assert preflight["actions"][:2] == ["check the SSH host keys of the jump host(s) bastion first",
                                        "check SSH, OS, disk, sudo and clock skew on 3 host(s)"]
