"""One list of configuration refusals (installer/config/refusals.py) holds validate, plan, up and the playbooks
together.

For every row: an example site that `kfinstall inventory validate` and `kfinstall plan` refuse with exit 2,
naming the file, the key, the fix and the row's id. For every assert/fail in playbooks/: either it names
rows of the table ([kfinstall refusal <id>]), exactly in the playbooks the row lists, or it is listed
below as a check of the host's own state (which no configuration file can predict).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.config.load import load
from installer.config.problems import InvalidConfig, Problem
from installer.config.refusals import BY_ID, PLAYBOOK_MARK, REFUSALS

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"

THREE_CP = {"all.hosts.cp2": {"ansible_host": "192.0.2.12"}, "all.hosts.cp3": {"ansible_host": "192.0.2.13"},
            "all.children.kube_control_plane": {"hosts": {"cp1": None, "cp2": None, "cp3": None}}}

# id -> examples: (kfinstall.yaml changes, hosts.yml changes, secrets.yml ldap_bind_password or None,
# the key the problem names). Sites are conftest's valid base (cp1 192.0.2.11, n1/n2 192.0.2.21/22,
# MetalLB pool 192.0.2.240/28) with these changes.
EXAMPLES: dict[str, list[tuple[dict[str, Any], dict[str, Any], str | None, str]]] = {
    "setting-value": [({"spec.containerd": {"source": "ppa"}}, {}, None, "spec.containerd.source")],
    "control-plane-missing": [({}, {"all.children.kube_control_plane": {"hosts": {}}}, None, "kube_control_plane")],
    "control-plane-even": [({}, {"all.hosts.cp2": {"ansible_host": "192.0.2.12"},
                                 "all.children.kube_control_plane": {"hosts": {"cp1": None, "cp2": None}}},
                            None, "kube_control_plane")],
    "kube-node-missing": [({}, {"all.children.kube_node": {"hosts": {}},
                                "all.children.gluster": {"hosts": {"n1": None, "n2": None}}}, None, "kube_node")],
    "gpu-not-kube-node": [({}, {"all.children.gpu": {"hosts": {"cp1": None}}}, None, "gpu.hosts.cp1")],
    "nfs-server-missing": [({}, {"all.children.nfs_server": {"hosts": {}}}, None, "nfs_server")],
    "nfs-server-several": [({}, {"all.children.nfs_server": {"hosts": {"cp1": None, "n1": None}}}, None,
                            "nfs_server")],
    "gluster-hosts": [
        ({"spec.storage": {"gluster": {"enabled": True}}}, {"all.children.gluster": {"hosts": {"n1": None}}}, None,
         "gluster"),
        ({"spec.storage": {"gluster": {"enabled": True, "replica": 2}}},
         {"all.children.gluster": {"hosts": {"cp1": None, "n1": None, "n2": None}}}, None, "gluster"),
    ],
    "control-plane-endpoint-required": [({}, THREE_CP, None, "spec.kubernetes.controlPlaneEndpoint")],
    "control-plane-endpoint-taken": [
        ({"spec.kubernetes": {"controlPlaneEndpoint": "192.0.2.21"}}, {}, None, "spec.kubernetes.controlPlaneEndpoint"),
        ({"spec.kubernetes": {"controlPlaneEndpoint": "192.0.2.11:6443"}}, {}, None,
         "spec.kubernetes.controlPlaneEndpoint"),
        ({"spec.kubernetes": {"controlPlaneEndpoint": "192.0.2.241"}}, THREE_CP, None,
         "spec.kubernetes.controlPlaneEndpoint"),
    ],
    "subnet-holds-host": [
        ({"spec.kubernetes": {"podSubnet": "192.0.0.0/16"}}, {}, None, "spec.kubernetes.podSubnet"),
        ({"spec.kubernetes": {"serviceSubnet": "192.0.2.0/27"}}, {}, None, "spec.kubernetes.serviceSubnet"),
    ],
    "subnets-overlap": [({"spec.kubernetes": {"serviceSubnet": "10.244.128.0/20"}}, {}, None,
                         "spec.kubernetes.serviceSubnet")],
    "metallb-pool-holds-host": [
        ({"spec.networking.metallb.addresses": ["192.0.2.240/28", "192.0.2.16/28"]}, {}, None,
         "spec.networking.metallb.addresses[1]"),
        ({"spec.networking.metallb.addresses": ["192.0.2.10-192.0.2.11"]}, {}, None,
         "spec.networking.metallb.addresses[0]"),
    ],
    "package-mirror-required": [({"spec.kubernetes": {"packageSource": "mirror"}}, {}, None,
                                 "spec.kubernetes.packageMirror")],
    "ldap-bind-password": [({}, {}, "''", "ldap_bind_password")],
}

CASES = [(rule, *example) for rule, examples in EXAMPLES.items() for example in examples]


def _site(make_site: Any, cluster: dict[str, Any], hosts: dict[str, Any], bind_password: str | None) -> Path:
    site = make_site(cluster=cluster, hosts=hosts)
    if bind_password is not None:
        secrets = site / "secrets.yml"
        text = secrets.read_text().replace("bind-password-for-tests", bind_password)
        assert text != secrets.read_text()
        secrets.write_text(text)
    return site


def _refusal(site: Path, rule: str, key: str) -> Problem:
    with pytest.raises(InvalidConfig) as caught:
        load(site, need_secrets=False)  # as validate and plan read it: secrets.yml checked when present
    found = [p for p in caught.value.problems if p.rule == rule and p.key == key]
    assert found, f"no {rule} problem at {key}; got:\n" + "\n".join(caught.value.lines())
    return found[0]


@pytest.mark.parametrize(("rule", "cluster", "hosts", "bind_password", "key"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_validate_and_plan_refuse_each_example(make_site, kfinstall, rule, cluster, hosts, bind_password, key) -> None:
    site = _site(make_site, cluster, hosts, bind_password)
    problem = _refusal(site, rule, key)
    assert problem.severity == "error" and problem.fix and problem.message
    if problem.file in ("kfinstall.yaml", "secrets.yml"):  # hosts.yml lines: see test_inventory_hosts
        assert problem.line is not None and problem.column is not None, problem
    for verb in (("inventory", "validate"), ("plan",)):
        code, output = kfinstall(*verb, "-i", str(site))
        assert code == 2, (verb, output)
        assert problem.render() in output, (verb, output)


def test_every_row_has_an_example_and_a_check() -> None:
    assert len(BY_ID) == len(REFUSALS), "ids must be unique"
    assert set(EXAMPLES) == set(BY_ID)
    for refusal in REFUSALS:
        module, _, function = refusal.check.partition(":")
        assert callable(getattr(importlib.import_module(module), function, None)), refusal
        assert refusal.refuses and refusal.fix


# Asserts and fails about the host itself or about values kfinstall derives (release data, the verb's own
# inputs): no configuration file can predict them, so validate cannot refuse them. (file, task name) -> why.
NOT_CONFIGURATION = {
    # kfinstall's preflight verdict on the hosts (reachability, sudo, OS, free space, clock), given in up.yml's run.
    ("preflight.yml", "Preflight | Stop before any change when kfinstall refused a host"):
        "the hosts as preflight found them",
    ("roles/os_prepare/tasks/main.yml", "OS | Check the operating system family"): "the host's distribution",
    # The one minimum-version check of the package table (containerd's included), for os_prepare's one
    # transaction and for each role run alone.
    ("roles/kf_defaults/tasks/install.yml", "Packages | Check the minimum versions before installing"):
        "the host's apt sources and installed packages",
    ("roles/os_prepare/tasks/0040-kernel.yml", "OS | Assert the module features are built into the kernel"):
        "the host's kernel",
    ("roles/kubernetes/tasks/0010-preflight.yml", "Kubernetes | Stop when the packages cannot be installed"):
        "the package repository as seen from the host",
    ("roles/kubernetes/tasks/0030-init.yml", "Kubernetes | Check that kubeadm is the package version asked for"):
        "the kubeadm package installed on the host",
    ("roles/nvidia_gpu/tasks/main.yml", "GPU | Fail on a GPU host without a GPU"): "the host's PCI devices",
    ("roles/nvidia_gpu/tasks/0010-preflight.yml", "GPU driver | Stop while nouveau is loaded"): "the host's kernel",
    ("roles/nvidia_gpu/tasks/0010-preflight.yml", "GPU driver | Refuse to replace a driver of another branch"):
        "the driver installed on the host",
    ("roles/nvidia_gpu/tasks/0010-preflight.yml", "GPU driver | Stop without kernel headers"):
        "the host's kernel and apt sources",
    ("roles/nfs_server/tasks/ganesha.yml", "NFS server | Stop when the export is on overlayfs"):
        "the host's filesystem",
    ("roles/nfs_server/tasks/kernel.yml", "NFS server | Stop when the kernel has no nfsd"): "the host's kernel",
    ("roles/nfs_server/tasks/wait_for_port.yml", "NFS server | Stop with what nfs-ganesha reported"):
        "the running nfs-ganesha on the host",
    ("roles/kube_upgrade/tasks/precheck.yml", "Kube upgrade | Require SystemdCgroup in containerd"):
        "the node's runtime configuration",
    ("roles/kube_upgrade/tasks/precheck.yml", "Kube upgrade | Require the runtime the target minor needs"):
        "the node's containerd and cgroup version",
    ("roles/etcd_backup/tasks/main.yml", "Etcd backup | Check the inputs"): "backup's own inputs (--dest)",
    ("roles/etcd_backup/tasks/main.yml", "Etcd backup | Stop on a host without a control plane"):
        "what is installed on the host",
}
CHECK_MODULES = {"assert", "ansible.builtin.assert", "fail", "ansible.builtin.fail"}


def _tasks(node: Any) -> Any:
    """Every task mapping in a parsed playbook or task file, blocks and plays included."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        if CHECK_MODULES & node.keys():
            yield node
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            yield from _tasks(node.get(key))


def _playbook_checks() -> list[tuple[str, str, str]]:
    """(file under playbooks/, task name, message) of every assert and fail."""
    found = []
    for path in sorted(PLAYBOOKS.rglob("*.yml")):
        if "collections" in path.relative_to(PLAYBOOKS).parts:
            continue
        for task in _tasks(yaml.safe_load(path.read_text())):
            module = next(m for m in CHECK_MODULES if m in task)
            args = task[module] or {}
            message = str(args.get("fail_msg") or args.get("msg") or "")
            # A message built in the task's vars (00-validate.yml's one list of refusals) names its ids there.
            message += "".join(f" {value}" for value in (task.get("vars") or {}).values())
            found.append((str(path.relative_to(PLAYBOOKS)), task.get("name", ""), message))
    return found


def test_playbook_checks_name_refusals_or_the_host_state() -> None:
    checks = _playbook_checks()
    assert len(checks) >= 20, checks  # the walk found the playbooks' checks
    named: dict[str, set[str]] = {}
    for file, name, message in checks:
        ids = [i.strip() for mark in PLAYBOOK_MARK.findall(message) for i in mark.split(",")]
        if (file, name) in NOT_CONFIGURATION:
            assert not ids, f"{file}: {name!r} is listed as a host-state check but names {ids}"
            continue
        assert ids, (f"{file}: {name!r} checks something without naming a refusal id: add "
                     "[kfinstall refusal <id>] to its message (installer/config/refusals.py), or list it in "
                     "NOT_CONFIGURATION with the host state it checks")
        for rule in ids:
            assert rule in BY_ID, f"{file}: {name!r} names {rule!r}, which installer/config/refusals.py lacks"
            named.setdefault(rule, set()).add(f"playbooks/{file}")
    stale = set(NOT_CONFIGURATION) - {(file, name) for file, name, _ in checks}
    assert not stale, f"NOT_CONFIGURATION lists checks that are gone: {stale}"
    for refusal in REFUSALS:
        assert named.get(refusal.id, set()) == set(refusal.asserted_in), refusal.id


@pytest.mark.parametrize(("key", "written", "value"), [("channel", "1.10", "1.1"), ("version", "1.30", "1.3")])
def test_unquoted_decimal_is_named_as_written(make_site, kfinstall, key, written, value) -> None:
    """YAML reads `channel: 1.10` as the number 1.1: the message says so and quotes what was written."""
    site = make_site()
    text = (site / "kfinstall.yaml").read_text().replace("channel: '26.03'", f"channel: {written}"
                                                         if key == "channel" else "channel: '26.03'")
    if key == "version":
        text = text.replace("spec:\n", f"spec:\n  kubernetes:\n    version: {written}\n", 1)
    (site / "kfinstall.yaml").write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if row.strip() == f"{key}: {written}")
    column = text.splitlines()[line - 1].index(key) + 1
    path = "spec.channel" if key == "channel" else "spec.kubernetes.version"
    code, output = kfinstall("inventory", "validate", "-i", str(site))
    assert code == 2
    assert (f"error: kfinstall.yaml:{line}:{column}: {path}: YAML read the number {value} from {written} (unquoted), "
            f"not the text '{written}'. Fix: quote it: {key}: \"{written}\"") in output, output
    assert "did you mean" not in output
