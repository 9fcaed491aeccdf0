"""Host names and connection values kfinstall reads from the inventory: exit 2 naming file:line and key.

A host name or address reaches ssh's command line, kubeadm's certificate SANs, export lists and
gluster commands; each of the audit's payloads must be refused before any connection, and a bad
port must be an error, not a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from installer.config.addresses import address_problem, inventory_name_problem, port_problem, user_problem
from installer.config.load import load
from installer.config.problems import InvalidConfig

HOST_LINE = "error: hosts.yml:{line}:"


def problems_of(site: Path) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        load(site)
    return caught.value.lines()


def validate(site: Path) -> tuple[int, str]:
    """The real command line: exit code and stderr, as an operator sees them."""
    kfinstall = Path(sys.executable).parent / "kfinstall"
    done = subprocess.run([str(kfinstall), "inventory", "validate", "-i", str(site)],
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout + done.stderr


def hosts_text(entry: str) -> str:
    """A valid inventory plus one host `entry` (YAML, line 6) in kube_node."""
    return (
        "all:\n"
        "  hosts:\n"
        "    cp1: {ansible_host: 192.0.2.11}\n"
        "    n1: {ansible_host: 192.0.2.21}\n"
        "    n2: {ansible_host: 192.0.2.22}\n"
        f"    {entry}\n"
        "  children:\n"
        "    kube_control_plane: {hosts: {cp1: }}\n"
        "    nfs_server: {hosts: {cp1: }}\n"
        "    kube_node:\n"
        "      hosts: {n1: , n2: , BADNAME: }\n"
    )


# (id, host entry, name as placed in kube_node, expected key, expected message start)
BAD_HOSTS = [
    ("name-help", '"--help": {}', '"--help"', "all.hosts.--help", "host name '--help' is not a host name"),
    ("name-proxycommand", '"-oProxyCommand=touch /tmp/kf-x": {}', '"-oProxyCommand=touch /tmp/kf-x"',
     "all.hosts.-oProxyCommand=touch /tm", "host name '-oProxyCommand=touch /tm...' is not a host name"),
    ("name-subshell", '"cp1$(touch x)": {}', '"cp1$(touch x)"', "all.hosts.cp1$(touch x)",
     "host name 'cp1$(touch x)' is not a host name"),
    ("name-space", '"cp 2": {}', '"cp 2"', "all.hosts.cp 2", "host name 'cp 2' is not a host name"),
    ("name-template", "\"cp{{ lookup('pipe','id') }}\": {}", "\"cp{{ lookup('pipe','id') }}\"",
     "all.hosts.cp{{ lookup('pipe','id')", "host name \"cp{{ lookup('pipe','id')...\" is not a host name"),
    ("host-semicolon", 'n3: {ansible_host: "192.0.2.23; touch x"}', "n3", "all.hosts.n3.ansible_host",
     "'192.0.2.23; touch x' is not an IP address or DNS name"),
    ("host-ipv6-zone", 'n3: {ansible_host: "fe80::1%$(touch x)"}', "n3", "all.hosts.n3.ansible_host",
     "'fe80::1%$(touch x)' is not an IP address or DNS name"),
    ("gluster-ipv6-zone", 'n3: {ansible_host: 192.0.2.23, glusterfs_address: "fe80::1%a b"}', "n3",
     "all.hosts.n3.glusterfs_address", "'fe80::1%a b' is not an IP address or DNS name"),
    # Ansible's older names for the same settings (they win over the new ones when both are set).
    ("ssh-host-option", 'n3: {ansible_host: 192.0.2.23, ansible_ssh_host: "-oProxyCommand=x"}', "n3",
     "all.hosts.n3.ansible_ssh_host", "'-oProxyCommand=x' is not an IP address or DNS name"),
    ("ssh-port-text", "n3: {ansible_host: 192.0.2.23, ansible_ssh_port: abc}", "n3", "all.hosts.n3.ansible_ssh_port",
     "must be a port number 1-65535, not 'abc'"),
    ("ssh-user-option", 'n3: {ansible_host: 192.0.2.23, ansible_ssh_user: "-oX"}', "n3",
     "all.hosts.n3.ansible_ssh_user", "'-oX' is not a user name"),
    ("host-list", "n3: {ansible_host: [192.0.2.23]}", "n3", "all.hosts.n3.ansible_host",
     "must be one IP address or DNS name, not a list"),
    ("host-option", 'n3: {ansible_host: "-oProxyCommand=x"}', "n3", "all.hosts.n3.ansible_host",
     "'-oProxyCommand=x' is not an IP address or DNS name"),
    ("host-template", "n3: {ansible_host: \"{{ lookup('pipe','id') }}\"}", "n3", "all.hosts.n3.ansible_host",
     "\"{{ lookup('pipe','id') }...\" is not an IP address or DNS name (templates are not allowed here"),
    ("port-too-big", "n3: {ansible_host: 192.0.2.23, ansible_port: 99999}", "n3", "all.hosts.n3.ansible_port",
     "99999 is outside the port range 1-65535"),
    ("port-zero", "n3: {ansible_host: 192.0.2.23, ansible_port: 0}", "n3", "all.hosts.n3.ansible_port",
     "0 is outside the port range 1-65535"),
    ("port-text", "n3: {ansible_host: 192.0.2.23, ansible_port: abc}", "n3", "all.hosts.n3.ansible_port",
     "must be a port number 1-65535, not 'abc'"),
    ("port-bool", "n3: {ansible_host: 192.0.2.23, ansible_port: true}", "n3", "all.hosts.n3.ansible_port",
     "must be a port number 1-65535, not a true/false"),
    ("user-option", 'n3: {ansible_host: 192.0.2.23, ansible_user: "-oProxyCommand=x"}', "n3",
     "all.hosts.n3.ansible_user", "'-oProxyCommand=x' is not a user name"),
    ("user-subshell", 'n3: {ansible_host: 192.0.2.23, ansible_user: "root$(id)"}', "n3",
     "all.hosts.n3.ansible_user", "'root$(id)' is not a user name"),
    ("gluster-address", 'n3: {ansible_host: 192.0.2.23, glusterfs_address: "a;b"}', "n3",
     "all.hosts.n3.glusterfs_address", "'a;b' is not an IP address or DNS name"),
    # A regex's `$` also matches before a final newline: each check must take the whole value.
    ("name-trailing-newline", '"cp3\\n": {}', '"cp3\\n"', "all.hosts.cp3\\n",
     "host name 'cp3\\n' is not a host name"),
    ("host-trailing-newline", 'n3: {ansible_host: "node3\\n"}', "n3", "all.hosts.n3.ansible_host",
     "'node3\\n' is not an IP address or DNS name"),
    ("user-trailing-newline", 'n3: {ansible_host: 192.0.2.23, ansible_user: "root\\n"}', "n3",
     "all.hosts.n3.ansible_user", "'root\\n' is not a user name"),
]


@pytest.mark.parametrize(("entry", "member", "key", "message"), [c[1:] for c in BAD_HOSTS],
                         ids=[c[0] for c in BAD_HOSTS])
def test_bad_host_is_refused_with_its_line_and_key(make_site, entry, member, key, message) -> None:
    site = make_site(hosts_text=hosts_text(entry).replace("BADNAME", member))
    lines = problems_of(site)
    line = next((text for text in lines if f" {key}: " in text), None)
    assert line is not None, lines
    assert line.startswith(HOST_LINE.format(line=6)), line
    assert f"{key}: {message}" in line, line
    assert "Fix: " in line


def test_the_audit_payloads_exit_2_on_the_command_line(make_site) -> None:
    entries = ['"--help": {}', '"cp1$(touch x)": {}', 'n3: {ansible_host: "192.0.2.23; touch x", ansible_port: abc}']
    text = hosts_text("\n    ".join(entries)).replace("BADNAME", '"--help", "cp1$(touch x)": , n3')
    code, output = validate(make_site(hosts_text=text))
    assert code == 2, output
    assert "Traceback" not in output
    for key in ("all.hosts.--help:", "all.hosts.cp1$(touch x):", "all.hosts.n3.ansible_host:",
                "all.hosts.n3.ansible_port:"):
        assert key in output, output


def test_no_payload_is_echoed_in_full(make_site) -> None:
    payload = "-oProxyCommand=" + "x" * 200
    site = make_site(hosts_text=hosts_text(f'"{payload}": {{}}').replace("BADNAME", f'"{payload}"'))
    output = "\n".join(problems_of(site))
    assert "-oProxyCommand=xxxxxxxxx" in output and payload[:40] not in output, output


def test_group_vars_values_are_checked_at_their_line(make_site) -> None:
    """ansible_port/ansible_user set in group_vars/ apply to every host: one problem at that file's line."""
    site = make_site()
    (site / "group_vars").mkdir()
    (site / "group_vars" / "all.yml").write_text("# connection\nansible_port: abc\nansible_user: root\n")
    lines = problems_of(site)
    assert [line for line in lines if "ansible_port" in line] == [
        "error: group_vars/all.yml:2:15: ansible_port: must be a port number 1-65535, not 'abc'. "
        "Fix: write the SSH port as a number from 1 to 65535"]


def test_host_vars_address_is_checked(make_site) -> None:
    site = make_site()
    (site / "host_vars").mkdir()
    (site / "host_vars" / "n1.yml").write_text("ansible_host: 192.0.2.21 ; reboot\n")
    lines = problems_of(site)
    assert any(line.startswith("error: host_vars/n1.yml:1:") and "ansible_host: '192.0.2.21 ; reboot'" in line
               for line in lines), lines


def test_ini_inventory_values_are_checked(make_site) -> None:
    ini = ("[kube_control_plane]\ncp1 ansible_host=192.0.2.11 ansible_port=22\n"
           "[kube_node]\nn1 ansible_host=192.0.2.21 ansible_port=x22\n[nfs_server]\ncp1\n")
    site = make_site(hosts_text=ini, hosts_name="hosts.ini")
    (site / "hosts.yml").unlink(missing_ok=True)
    lines = problems_of(site)
    assert any(line.startswith("error: hosts.ini:") and "all.hosts.n1.ansible_port: must be a port number" in line
               for line in lines), lines


def test_the_older_ssh_names_win_as_in_ansible(make_site) -> None:
    """ansible_ssh_host/_port are what Ansible connects to when both names are set: so is the Host."""
    site = make_site(hosts={"all.hosts.n1": {"ansible_host": "192.0.2.21", "ansible_ssh_host": "192.0.2.99",
                                             "ansible_port": 22, "ansible_ssh_port": 2222}})
    host = next(h for h in load(site).inventory.hosts if h.name == "n1")
    assert (host.address, host.port) == ("192.0.2.99", 2222)
    assert (host.ssh.address, host.ssh.port) == ("192.0.2.99", 2222)


def test_good_hosts_load_with_their_port(make_site) -> None:
    site = make_site(hosts={"all.hosts.n1": {"ansible_host": "node-1.example.com", "ansible_port": 2222,
                                             "ansible_user": "ubuntu"},
                            "all.hosts.n2": {"ansible_host": "2001:db8::22", "ansible_port": "22"}})
    cfg = load(site)
    hosts = {h.name: h for h in cfg.inventory.hosts}
    assert (hosts["n1"].address, hosts["n1"].port) == ("node-1.example.com", 2222)
    assert (hosts["n2"].address, hosts["n2"].port) == ("2001:db8::22", 22)


@pytest.mark.parametrize("name", ["cp1", "gpu_node1", "node-1.example.com", "192.0.2.1", "2001:db8::1", "N1"])
def test_usual_inventory_names_are_accepted(name) -> None:
    assert inventory_name_problem(name) is None


@pytest.mark.parametrize("value", ["10.0.0.1", "::1", "host.example.com", "h1", "host.example.com.", "fe80::1%eth0",
                                   "2001:db8::1", "::ffff:192.0.2.1"])
def test_addresses_accepted(value) -> None:
    assert address_problem(value) is None


@pytest.mark.parametrize("value", ["", "-x", "a b", "a;b", "a\nb", "10.0.0", "x" * 64 + ".com", "a..b", "[::1]",
                                   "{{ x }}", "a_b.example.com", 5, None, ["a"],
                                   # An IPv6 zone is an interface name, not any text after '%'.
                                   "fe80::1%$(touch x)", "fe80::1%{{ lookup('pipe','id') }}", "fe80::1% -oX=y",
                                   "fe80::1%a;b", "fe80::1%" + "e" * 16])
def test_addresses_refused(value) -> None:
    assert address_problem(value) is not None


@pytest.mark.parametrize("name", ["fe80::1%$(touch x)", "fe80::1%{{ lookup('pipe','id') }}", "fe80::1%a b"])
def test_a_host_name_cannot_hide_a_payload_in_an_ipv6_zone(name) -> None:
    assert inventory_name_problem(name) is not None


def test_ports_and_users() -> None:
    assert [port_problem(v) is None for v in (1, 22, "22", 65535)] == [True] * 4
    assert [port_problem(v) is None for v in (0, 65536, -1, "２２", "22 ", 22.0, True, None)] == [False] * 8
    assert [user_problem(v) is None for v in ("root", "ubuntu", "svc.ansible", "ci-bot", "_x")] == [True] * 5
    assert [user_problem(v) is None for v in ("-o", "a b", "a;b", "{{u}}", "", 0)] == [False] * 6


def test_vault_encrypted_group_vars_without_a_password_is_a_warning(make_site, monkeypatch) -> None:
    """Ansible users encrypt group_vars files; without the vault password kfinstall cannot read them, so it
    says what it did not check instead of failing (Ansible itself asks for the password at run time)."""
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    site = make_site()
    (site / "group_vars").mkdir()
    from ansible.parsing.vault import VaultLib, VaultSecret

    encrypted = VaultLib([("default", VaultSecret(b"pw"))]).encrypt("ansible_user: root\n")
    (site / "group_vars" / "all.yml").write_bytes(encrypted)
    cfg = load(site)
    [warning] = [w for w in cfg.warnings if w.key == "group_vars"]
    assert warning.render().startswith("warning: hosts.yml: group_vars: group_vars/host_vars could not be read (")
