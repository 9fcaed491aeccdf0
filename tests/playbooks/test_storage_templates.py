"""The storage roles write inventory and config values safely (issue #11, items 6 and 8).

The roles render /etc/exports.d/kfinstall.exports and ganesha.conf, and build gluster's auth.allow, on
the controller; here they are rendered with the template lookup (no host) from hostile values as a
role run on its own could get them (kfinstall's own validation is bypassed). A newline in the export
path or options never adds a line: exports(5) takes the path octal-escaped (\\012), ganesha.conf has no
escape for a newline so the render fails with the reason, options and clients are checked word by word.
The allowed clients default to the cluster's hosts, never '*'.

Syntax followed: exports(5) (client(options) after the path, octal escapes in the path); nfs-ganesha
src/config_samples/export.txt (EXPORT with Access_Type = None and a CLIENT block with Clients = a, b;
Access_Type; Squash = No_Root_Squash); its lexer (src/config_parsing/conf_lex.l: a double-quoted string
escapes '\\' and '"' only); gluster's auth.allow, a comma-separated list of addresses, CIDR networks and
names (xlators/protocol/auth/addr/src/addr.c).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "playbooks" / "roles"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

HOSTS = {"cp1": "10.0.0.1", "n1": "10.0.0.2", "n2": None, "nfs1": "10.0.0.9", "g1": "10.0.0.21",
         "g2": "10.0.0.22", "outsider": "10.0.0.99"}
GROUPS = {"kube_control_plane": ["cp1"], "kube_node": ["n1", "n2"], "nfs_server": ["nfs1"], "gluster": ["g1", "g2"]}

# (id, extra vars for the case, what to render)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("exports-default", {}, "exports"),
    ("ganesha-default", {}, "ganesha"),
    ("gluster-default", {}, "gluster"),
    ("exports-extra-clients", {"kf_nfs_allowed_clients": ["192.168.7.0/24", "gw.example.com"]}, "exports"),
    ("exports-newline-path", {"kf_nfs_export_path": "/srv/nfs\n/ *(rw,no_root_squash)"}, "exports"),
    ("exports-odd-path", {"kf_nfs_export_path": '/srv/a b"#\\'}, "exports"),
    ("exports-newline-options", {"kf_nfs_export_options": "rw\n/ *(rw,no_root_squash)"}, "exports"),
    ("exports-star-client", {"nfs_server_allowed_clients": ["*"]}, "exports"),
    ("ganesha-newline-path", {"kf_nfs_export_path": "/srv/nfs\n}\nEXPORT {"}, "ganesha"),
    ("ganesha-quote-path", {"kf_nfs_export_path": '/srv/a"; Access_Type = RW; #\\'}, "ganesha"),
    ("ganesha-newline-client", {"kf_nfs_allowed_clients": ["10.0.0.7;\n}\nEXPORT {"]}, "ganesha"),
    ("gluster-star-client", {"kf_gluster_allowed_clients": ["*"]}, "gluster"),
    ("gluster-comma-client", {"kf_gluster_allowed_clients": ["10.0.0.7,*"]}, "gluster"),
]

# The roles' settings are read as vars files (no task of theirs runs): a value a case sets (task vars or
# extra vars) outranks them as it outranks a role default. kf_host stands in for kf_defaults' probe.
PLAYBOOK = f"""
- name: Render the storage roles' files from hostile values
  hosts: nfs1
  gather_facts: false
  connection: local
  vars_files:
    - {ROLES}/nfs_server/defaults/main.yml
    - {ROLES}/nfs_server/vars/main.yml
    - {ROLES}/glusterfs/defaults/main.yml
    - {ROLES}/glusterfs/vars/main.yml
  vars:
    kf_host: {{container: false}}
  tasks:
"""

RENDER = {
    "exports": "{{ lookup('ansible.builtin.template', roles ~ '/nfs_server/templates/kfinstall.exports.j2') }}",
    "ganesha": "{{ lookup('ansible.builtin.template', roles ~ '/nfs_server/templates/ganesha.conf.j2') }}",
    "gluster": "{{ _glusterfs_auth_allow }}",
}


def _task(case_id: str, extra: dict[str, Any], what: str) -> dict[str, Any]:
    return {"name": case_id, "ansible.builtin.debug": {"msg": RENDER[what]}, "vars": extra, "ignore_errors": True}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """case id -> {"ok": text} or {"error": message}, from one ansible-playbook run on the controller."""
    work = tmp_path_factory.mktemp("storage-templates")
    hosts = {name: ({"ansible_host": address} if address else {}) for name, address in HOSTS.items()}
    inventory = {"all": {"hosts": hosts, "children": {g: {"hosts": dict.fromkeys(m, {})} for g, m in GROUPS.items()}}}
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
    plays = yaml.safe_load(PLAYBOOK)
    plays[0]["tasks"] = [_task(case_id, extra, what) for case_id, extra, what in CASES]
    (work / "render.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(work / "hosts.yml"), "-e", json.dumps({"roles": str(ROLES)}),
         str(work / "render.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {}
    for task in json.loads(proc.stdout)["plays"][0]["tasks"]:
        result = task["hosts"]["nfs1"]
        if task["task"]["name"] in dict.fromkeys(c[0] for c in CASES):
            results[task["task"]["name"]] = {"error": result["msg"]} if result.get("failed") else {"ok": result["msg"]}
    return results


def _ok(rendered: dict[str, dict[str, Any]], case_id: str) -> str:
    assert "ok" in rendered[case_id], rendered[case_id]
    return str(rendered[case_id]["ok"])


def _refused(rendered: dict[str, dict[str, Any]], case_id: str, words: str) -> None:
    assert "error" in rendered[case_id], f"{case_id} rendered: {rendered[case_id]}"
    assert words in rendered[case_id]["error"], rendered[case_id]["error"]


OPTIONS = "(rw,sync,no_root_squash,no_subtree_check)"
CLUSTER = ["10.0.0.1", "10.0.0.2", "n2", "10.0.0.9"]  # cp1, n1, n2 (no ansible_host), nfs1; never the outsider


def _export_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_kernel_export_lists_the_cluster_hosts_only(rendered) -> None:
    assert _export_lines(_ok(rendered, "exports-default")) == [
        "/export/kfinstall " + " ".join(f"{client}{OPTIONS}" for client in CLUSTER)]


def test_kernel_export_adds_the_allowed_clients(rendered) -> None:
    (line,) = _export_lines(_ok(rendered, "exports-extra-clients"))
    assert line.endswith(f" 192.168.7.0/24{OPTIONS} gw.example.com{OPTIONS}")
    assert "*" not in line and "10.0.0.99" not in line


def test_newline_in_the_export_path_stays_in_its_line(rendered) -> None:
    (line,) = _export_lines(_ok(rendered, "exports-newline-path"))
    assert line.startswith("/srv/nfs\\012/\\040\\052\\050rw,no_root_squash\\051 10.0.0.1(")
    (line,) = _export_lines(_ok(rendered, "exports-odd-path"))
    assert line.startswith("/srv/a\\040b\\042\\043\\134 10.0.0.1(")


def test_newline_in_the_export_options_is_refused(rendered) -> None:
    _refused(rendered, "exports-newline-options", "is not a word such as rw, sync or anonuid=1000")


def test_star_is_never_an_allowed_client(rendered) -> None:
    _refused(rendered, "exports-star-client", "allowed client '*' is not an IP address, CIDR network or DNS name")
    _refused(rendered, "gluster-star-client", "allowed client '*' is not")
    _refused(rendered, "gluster-comma-client", "allowed client '10.0.0.7,*' is not")


def test_ganesha_export_refuses_unlisted_clients(rendered) -> None:
    text = _ok(rendered, "ganesha-default")
    export = text.split("EXPORT {", 1)[1]
    assert "    Access_Type = None;\n" in export.split("CLIENT {")[0]
    client = export.split("CLIENT {", 1)[1].split("}", 1)[0]
    assert f"Clients = {', '.join(CLUSTER)};" in client
    assert "Access_Type = RW;" in client and "Squash = No_Root_Squash;" in client
    assert 'Path = "/export/kfinstall";' in export


def test_ganesha_path_cannot_add_a_line(rendered) -> None:
    _refused(rendered, "ganesha-newline-path", "holds a newline or another control character")
    _refused(rendered, "ganesha-newline-client", "is not an IP address, CIDR network or DNS name")
    text = _ok(rendered, "ganesha-quote-path")
    assert '    Path = "/srv/a\\"; Access_Type = RW; #\\\\";\n' in text
    # The CLIENT block's, and the text inside the quoted Path and Pseudo.
    assert text.count("Access_Type = RW;") == 3
    settings = [line.strip() for line in text.splitlines() if line.strip().startswith("Access_Type")]
    assert settings == ["Access_Type = None;", "Access_Type = RW;"]


def test_gluster_auth_allow_is_the_gluster_and_node_hosts(rendered) -> None:
    # kube_node (n1, n2) and gluster (g1, g2): the nodes mount through the first server's glusterd.
    assert _ok(rendered, "gluster-default") == "10.0.0.2,n2,10.0.0.21,10.0.0.22"


def test_values_as_kfinstall_passes_them_render_the_same(tmp_path: Path) -> None:
    """kfinstall hands its extra vars over tagged !unsafe (installer/adapters/ansible.py): the filters and
    the allowed-client lists work on such values as on plain ones, and a newline still stays in its line."""
    from installer.adapters.ansible import unsafe_vars_yaml

    hosts = {name: ({"ansible_host": address} if address else {}) for name, address in HOSTS.items()}
    inventory = {"all": {"hosts": hosts, "children": {g: {"hosts": dict.fromkeys(m, {})} for g, m in GROUPS.items()}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    plays = yaml.safe_load(PLAYBOOK)
    plays[0]["tasks"] = [_task("exports", {}, "exports"), _task("gluster", {}, "gluster")]
    (tmp_path / "render.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    (tmp_path / "extra.yml").write_text(unsafe_vars_yaml({
        "kf_nfs_export_path": "/srv/nfs\n/ *(rw)", "kf_nfs_allowed_clients": ["192.168.7.0/24"],
        "kf_gluster_allowed_clients": ["192.168.7.0/24"], "roles": str(ROLES)}))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(tmp_path / "hosts.yml"), "-e", f"@{tmp_path / 'extra.yml'}",
         str(tmp_path / "render.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {t["task"]["name"]: t["hosts"]["nfs1"] for t in json.loads(proc.stdout)["plays"][0]["tasks"]}
    (line,) = _export_lines(results["exports"]["msg"])
    assert line.startswith("/srv/nfs\\012/\\040\\052\\050rw\\051 10.0.0.1(")
    assert line.endswith(f" 192.168.7.0/24{OPTIONS}")
    assert results["gluster"]["msg"] == "10.0.0.2,n2,10.0.0.21,10.0.0.22,192.168.7.0/24"


def test_hosts_under_ansible_ssh_host_are_allowed_at_that_address(tmp_path: Path) -> None:
    """An inventory may use Ansible's older ansible_ssh_host, which wins over ansible_host as in Ansible
    (MAGIC_VARIABLE_MAPPING['remote_addr']): the export, ganesha's CLIENT block, gluster's auth.allow and
    the bricks name each host at the address ssh uses, and glusterfs_address still comes first for gluster."""
    hosts = {
        "cp1": {"ansible_ssh_host": "10.0.1.1"},
        "n1": {"ansible_host": "10.0.0.2", "ansible_ssh_host": "10.0.1.2"},
        "n2": {},
        "nfs1": {"ansible_ssh_host": "10.0.1.9", "ansible_host": ""},
        "g1": {"ansible_ssh_host": "10.0.1.21"},
        "g2": {"ansible_ssh_host": "10.0.1.22", "glusterfs_address": "10.0.2.22"},
        "outsider": {"ansible_ssh_host": "10.0.1.99"},
    }
    inventory = {"all": {"hosts": hosts, "children": {g: {"hosts": dict.fromkeys(m, {})} for g, m in GROUPS.items()}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    plays = yaml.safe_load(PLAYBOOK)
    plays[0]["tasks"] = [_task(what, {}, what) for what in ("exports", "ganesha", "gluster")]
    plays[0]["tasks"].append({"name": "bricks", "ansible.builtin.debug": {"msg": "{{ _glusterfs_bricks }}"}})
    (tmp_path / "render.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(tmp_path / "hosts.yml"), "-e", json.dumps({"roles": str(ROLES)}),
         str(tmp_path / "render.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {t["task"]["name"]: t["hosts"]["nfs1"] for t in json.loads(proc.stdout)["plays"][0]["tasks"]}
    cluster = ["10.0.1.1", "10.0.1.2", "n2", "10.0.1.9"]
    assert _export_lines(results["exports"]["msg"]) == [
        "/export/kfinstall " + " ".join(f"{client}{OPTIONS}" for client in cluster)]
    client = results["ganesha"]["msg"].split("CLIENT {", 1)[1].split("}", 1)[0]
    assert f"Clients = {', '.join(cluster)};" in client
    assert results["gluster"]["msg"] == "10.0.1.2,n2,10.0.1.21,10.0.2.22"
    assert [brick.split(":")[0] for brick in results["bricks"]["msg"]] == ["10.0.1.21", "10.0.2.22"]
