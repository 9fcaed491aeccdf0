"""playbooks/reset.yml (issue 15 item 4): what it runs, checked without hosts.

Upstream facts it relies on, each cited:
* kubeadm reset "Performs a best effort revert of changes made to this host by 'kubeadm init' or 'kubeadm
  join'", `-f, --force` "Reset the node without prompting for confirmation"; for a control plane it removes
  the node's stacked etcd member; it does not clean /etc/cni/net.d, iptables/IPVS/nftables rules, or
  kubeconfig files such as $HOME/.kube/config (https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/,
  sections "Cleanup of CNI configuration", "Cleanup of network traffic rules", "Cleanup of kubeconfig files").
* Calico's install-cni container writes /etc/cni/net.d/10-calico.conflist (env CNI_CONF_NAME) and
  calico-kubeconfig beside it (projectcalico/calico, manifests/calico.yaml, the calico-node DaemonSet's
  install-cni init container).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
VENV_BIN = Path(sys.executable).parent


def tasks(path: Path) -> list[dict]:  # type: ignore[type-arg]
    found = []
    for task in yaml.safe_load(path.read_text()) or []:
        found.append(task)
        found += task.get("block", [])
    return found


def named(path: Path, name: str) -> dict:  # type: ignore[type-arg]
    return next(t for t in tasks(path) if t.get("name") == name)


def test_reset_syntax() -> None:
    done = subprocess.run([str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
                           "playbooks/reset.yml"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def test_reset_reaches_every_group_site_yml_changes() -> None:
    """The plays that read the record and undo files/services reach every host site.yml touches."""
    from installer.phases.hosts import site_plays

    def groups(entry: str) -> set[str]:
        return {g for _, _, pattern in site_plays(PLAYBOOKS, entry) for g in str(pattern).split(":") if g != "all"}

    reset_plays = site_plays(PLAYBOOKS, "reset.yml")
    first, services = reset_plays[0], next(p for p in reset_plays if "remove the files" in p[1])
    assert groups("site.yml") <= set(str(first[2]).split(":")) == set(str(services[2]).split(":"))


def test_kubeadm_reset_is_forced_and_guarded_by_kubeadm_being_there() -> None:
    path = PLAYBOOKS / "roles/kubernetes/tasks/reset.yml"
    block = next(t for t in tasks(path) if t.get("name") == "Kubernetes | Reset the node")
    assert block["when"] == ["_kubernetes_reset_kubeadm.stdout | length > 0", "_kubernetes_reset_ours | bool"]
    argv = named(path, "Kubernetes | Reset the node with kubeadm")["ansible.builtin.command"]["argv"]
    assert argv == ["kubeadm", "reset", "--force"]
    calico = named(path, "Kubernetes | Remove Calico's CNI configuration")
    assert calico["loop"] == ["10-calico.conflist", "calico-kubeconfig"]
    assert calico["ansible.builtin.file"]["path"] == "/etc/cni/net.d/{{ item }}"  # only Calico's, not the folder


def test_only_kube_proxy_and_calico_rules_are_removed(tmp_path: Path) -> None:
    """The task's own script, run with stand-in iptables-save/-restore: the host's own rules stay."""
    script = named(PLAYBOOKS / "roles/kubernetes/tasks/reset.yml",
                   "Kubernetes | Remove kube-proxy's and Calico's iptables rules")["ansible.builtin.shell"]
    saved = "\n".join([
        "*filter", ":INPUT ACCEPT [0:0]", ":KUBE-FIREWALL - [0:0]", ":cali-INPUT - [0:0]",
        "-A INPUT -j KUBE-FIREWALL", "-A INPUT -m comment --comment \"cali:Cz_u1IQiXIMmKD4c\" -j cali-INPUT",
        "-A INPUT -p tcp --dport 22 -j ACCEPT", "-A KUBE-FIREWALL -j DROP", "COMMIT", ""])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("iptables", "ip6tables"):
        (bin_dir / f"{tool}-save").write_text(f"#!/bin/sh\ncat {tmp_path}/saved\n")
        (bin_dir / f"{tool}-restore").write_text(f"#!/bin/sh\ncat > {tmp_path}/restored-{tool}\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (tmp_path / "saved").write_text(saved)
    done = subprocess.run(["/bin/bash", "-c", script], env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for tool in ("iptables", "ip6tables"):
        assert (tmp_path / f"restored-{tool}").read_text().splitlines() == [
            "*filter", ":INPUT ACCEPT [0:0]", "-A INPUT -p tcp --dport 22 -j ACCEPT", "COMMIT"]


def test_root_kubeconfig_goes_only_when_it_is_the_copy_of_admin_conf() -> None:
    task = named(PLAYBOOKS / "roles/kubernetes/tasks/reset.yml",
                 "Kubernetes | Remove root's kubeconfig when it is the role's copy of admin.conf")
    assert any("checksum ==" in condition for condition in task["when"])


def test_the_gluster_mount_is_removed_only_when_it_is_kfinstalls_volume() -> None:
    task = named(PLAYBOOKS / "roles/glusterfs/tasks/reset.yml",
                 "GlusterFS | Unmount the volume and remove its fstab entry")
    assert "== 'glusterfs'" in task["when"] and "':/' ~ glusterfs_volume" in task["when"]


def test_the_volume_and_pool_go_only_with_purge_data_and_every_gluster_host() -> None:
    """A volume whose bricks were deleted could not start again; one whose bricks stay must be kept."""
    path = PLAYBOOKS / "roles/glusterfs/tasks/reset.yml"
    block = next(t for t in tasks(path)
                 if t.get("name") == "GlusterFS | Delete the volume and the trusted pool kfinstall made")
    assert "kf_reset_purge_data | default(false) | bool" in block["when"]
    assert "glusterfs_servers | difference(ansible_play_hosts_all) | length == 0" in block["when"]
    assert block["run_once"] is True


def run_play(tmp_path: Path, play: list[dict]) -> dict[str, Any]:  # type: ignore[type-arg]
    """Each task's debug msg of a local play (ansible-playbook, json callback): task name -> msg."""
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    done = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return {task["task"]["name"]: task["hosts"]["localhost"]["msg"]
            for task in json.loads(done.stdout)["plays"][0]["tasks"]}


def test_only_a_node_kfinstall_built_is_reset(tmp_path: Path) -> None:
    """review1 finding 1: kubeadm reset, Calico's CNI files and the iptables chains are undone only when the
    host's record shows kfinstall's work directory as created by kfinstall. The role's own condition,
    evaluated by Ansible for each kind of record."""
    path = PLAYBOOKS / "roles/kubernetes/tasks/reset.yml"
    skip = named(path, "Kubernetes | Report a node kfinstall did not build")
    assert skip["ansible.builtin.debug"]["msg"].startswith("SKIPPED ")  # listed as skipped, result incomplete
    work = "/etc/kubernetes/kfinstall"
    records = {
        "built": {"record": True, "created_dirs": ["/etc/kubernetes", work]},
        "work_dir_was_there": {"record": True, "created_dirs": []},
        "no_record": {"record": False, "created_dirs": []},
    }
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [str(PLAYBOOKS / "roles/kubernetes/vars/main.yml")],
             "tasks": [{"name": name, "ansible.builtin.debug": {"msg": "{{ _kubernetes_reset_ours | bool }}"},
                        "vars": {"kf_reset": record}} for name, record in records.items()]}]
    assert {name: str(msg) for name, msg in run_play(tmp_path, play).items()} == {
        "built": "True", "work_dir_was_there": "False", "no_record": "False"}


def test_the_apt_key_is_in_the_record_like_its_source() -> None:
    """review2 finding 5: the key came with get_url (not in the record) and reset removed it whenever kfinstall
    had created kubernetes.list, an operator's key of the same name included. Now the key is written by
    kfinstall.hosts.files before the source, so reset removes it only when kfinstall created it and puts back
    one that was there before; no task of the role writes or deletes it any other way."""
    preflight = PLAYBOOKS / "roles/kubernetes/tasks/0010-preflight.yml"
    written = named(preflight, "Kubernetes | Write the repository key and the apt source")
    files = written["kfinstall.hosts.files"]["files"]
    assert files.index("_kubernetes_keyring") < files.index("/etc/apt/sources.list.d/kubernetes.list")
    assert "_kubernetes_key.content" in files
    for task_file in (PLAYBOOKS / "roles/kubernetes/tasks").glob("*.yml"):
        for task in tasks(task_file):
            if "kfinstall.hosts.files" not in task and "block" not in task:
                assert "_kubernetes_keyring" not in json.dumps({k: v for k, v in task.items() if k != "name"}), (
                    task_file.name, task.get("name"))


def purge(tmp_path: Path, simulated: list[str], names: list[str], check: bool = False) -> tuple[dict[str, Any], str]:
    """kfinstall.hosts.purge_packages run as Ansible runs it, with a stand-in apt-get that prints `simulated`
    for --simulate and logs every call; (the module's result, the log)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "simulated").write_text("\n".join(simulated) + "\n")
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path}/calls\n"
                                     f"case \"$1\" in --simulate) cat {tmp_path}/simulated;; esac\n")
    (bin_dir / "apt-get").chmod(0o755)
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"names": names, "_ansible_check_mode": check,
                                                        "_ansible_tmpdir": str(tmp_path)}}))
    module = PLAYBOOKS / "collections/ansible_collections/kfinstall/hosts/plugins/modules/purge_packages.py"
    done = subprocess.run([sys.executable, str(module), str(args)], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"})
    calls = (tmp_path / "calls").read_text() if (tmp_path / "calls").exists() else ""
    (tmp_path / "calls").unlink(missing_ok=True)
    return json.loads(done.stdout), calls


def test_packages_are_purged_only_when_apt_would_remove_nothing_else(tmp_path: Path) -> None:
    """review2 finding 4: apt-get purge also removes the packages that depend on those named, which may be the
    operator's. kfinstall.hosts.purge_packages asks `apt-get --simulate purge` first (one "Purg NAME [VERSION]"
    line per package, "Remv" without purge) and purges only when nothing else would go."""
    alone = ["NOTE: This is only a simulation!", "Purg socat [1.7.4.4-2]", "Purg curl [7.88.1-10]"]
    result, calls = purge(tmp_path, alone, ["curl", "socat"])
    assert result["changed"] is True and result["purged"] == ["socat", "curl"] and result["also"] == [], result
    assert calls.splitlines() == ["--simulate --allow-change-held-packages purge curl socat",
                                  "--yes --allow-change-held-packages purge curl socat"]
    theirs = [*alone, "Purg their-tool:amd64 [2.0]", "Remv their-lib [1.0]"]
    result, calls = purge(tmp_path, theirs, ["curl", "socat"])
    assert result["changed"] is False and result["also"] == ["their-tool", "their-lib"], result
    assert "--yes" not in calls  # nothing purged
    result, calls = purge(tmp_path, alone, ["curl", "socat"], check=True)
    assert result["changed"] is True and "--yes" not in calls
    assert purge(tmp_path, alone, ["-o", "curl"])[0]["failed"] is True  # never an option
    for path in (PLAYBOOKS / "roles/kf_defaults/tasks/reset.yml", PLAYBOOKS / "roles/kubernetes/tasks/reset.yml"):
        used = [t for t in tasks(path) if "kfinstall.hosts.purge_packages" in t]
        assert used and not [t for t in tasks(path) if t.get("ansible.builtin.apt", {}).get("state") == "absent"]



def test_reset_uncomments_only_the_swap_lines_kfinstall_commented_out(tmp_path: Path) -> None:
    """review2 finding 9: os_prepare comments out the swap lines of /etc/fstab, and reset left them so, so the
    host came back without swap at its next boot. os_prepare marks its own comment and reset uncomments exactly
    those lines: the two tasks' own replace arguments, run by Ansible on a copy of an fstab."""
    comment = named(PLAYBOOKS / "roles/os_prepare/tasks/0030-swap.yml", "OS | Comment out swap entries in fstab")
    uncomment = named(PLAYBOOKS / "roles/kf_defaults/tasks/reset.yml",
                      "Reset | Uncomment the swap entries kfinstall commented out in fstab")
    fstab = tmp_path / "fstab"
    before = ["UUID=1 / ext4 defaults 0 1", "/dev/sda2 none swap sw 0 0", "# /dev/sdb1 none swap sw 0 0  (mine)", ""]
    fstab.write_text("\n".join(before))
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "up", "ansible.builtin.replace": {**comment["ansible.builtin.replace"], "path": str(fstab)}},
        {"name": "converged", "ansible.builtin.debug": {"msg": f"{{{{ lookup('file', '{fstab}') }}}}"}},
        {"name": "reset", "ansible.builtin.replace": {**uncomment["ansible.builtin.replace"], "path": str(fstab)}},
    ]}]
    converged = run_play(tmp_path, play)["converged"].splitlines()
    assert converged[1].startswith("# ") and "/dev/sda2 none swap" in converged[1]
    assert fstab.read_text() == "\n".join(before)


def test_roots_kubeconfig_is_written_through_the_record() -> None:
    """review2 finding 8: ansible's copy overwrote a kubeconfig the operator had at /root/.kube/config and kept
    nothing of it. The role now copies admin.conf with kfinstall.hosts.files (src), so the record keeps the
    operator's file; reset's own removal leaves a file the record restores to kf_defaults' reset."""
    give = named(PLAYBOOKS / "roles/kubernetes/tasks/0030-init.yml", "Kubernetes | Give root a kubeconfig")
    assert give["kfinstall.hosts.files"]["files"] == [
        {"path": "/root/.kube/config", "src": "{{ _kubernetes_admin_conf }}", "mode": "0600"}]
    removal = named(PLAYBOOKS / "roles/kubernetes/tasks/reset.yml",
                    "Kubernetes | Remove root's kubeconfig when it is the role's copy of admin.conf")
    assert ("'/root/.kube/config' not in kf_reset.files | difference(kf_reset.removed) | difference(kf_reset.adopted)"
            in removal["when"])  # review4: an older kfinstall's copy (adopted) is removed, not put back
