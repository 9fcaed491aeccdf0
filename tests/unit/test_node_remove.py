"""`kfinstall node remove HOST` (issue 15 items 2 and 3): refusals decided from the inventory and the
config, the order of the steps, the commands built from upstream facts, and the edit of a commented
hosts.yml. Kubernetes is a stand-in kubectl on PATH (it logs its argv and answers from a table); the
host reset is a recorded stand-in. What needs a real cluster is in tests/e2e/test_node_remove_e2e.py.

Upstream facts relied on (each asserted below where it shapes a command):
- kubectl drain: "--force: Continue even if there are pods that do not declare a controller";
  "--grace-period: Period of time in seconds given to each pod to terminate gracefully. If negative,
  the default value specified in the pod will be used"; DaemonSet pods need --ignore-daemonsets and
  are never deleted; mirror (static) pods cannot be deleted through the API server
  (kubernetes/kubectl pkg/cmd/drain/drain.go, the command's flags and long help).
- Removing a kubeadm node: `kubectl drain <node> --delete-emptydir-data --force --ignore-daemonsets`,
  then "Before removing the node, reset the state installed by kubeadm: kubeadm reset", then
  `kubectl delete node <node>` (kubernetes/website content/en/docs/setup/production-environment/
  tools/kubeadm/create-cluster-kubeadm.md, "Remove the node").
- kubeadm reset runs the phase remove-etcd-member ("Remove a local etcd member") before cleanup-node
  (https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-reset).
- etcd: "(n/2)+1 members, a majority, must agree on a proposal before it can be committed to the
  cluster. These proposals include key-value updates and membership changes"; "When replacing an
  etcd node, it's important to remove the member first and then add its replacement"
  (etcd-io/website content/en/docs/v3.5/faq.md, "Should I add a member before removing an unhealthy
  member?").
- With --unreachable the drain is skipped: once the Node is deleted, the pod garbage collector deletes
  "pods that are bound to nodes that don't exist" (kubernetes/kubernetes pkg/controller/podgc/
  gc_controller.go, gcOrphaned).
- KubeSpawner labels JupyterHub user servers with component=singleuser-server (its component_label
  default; jupyterhub/kubespawner kubespawner/spawner.py) and creates them as bare pods (no controller).
- gluster replace-brick accepts only `volume replace-brick <VOLNAME> <SOURCE-BRICK> <NEW-BRICK>
  commit force` (gluster/glusterfs tests/bugs/glusterd/bug-1094119-remove-replace-brick-support-from-glusterd.t).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer import noderemove
from installer.noderemove import classify_pod, drain_args, etcd_member_id, etcd_quorum_refusal, quorum

# A stand-in kubectl: logs its argv, then answers with the first rule whose words are all among its arguments.
FAKE_KUBECTL = r'''#!{python}
import json, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\n")
for words, out, code in json.load(open({rules!r})):
    if all(w in args for w in words):
        sys.stdout.write(out)
        if code:
            sys.stderr.write("error: " + (out or "failed") + "\n")
        sys.exit(code)
sys.exit(0)
'''

COMMENTED_HOSTS = """\
# Site hosts (kept by the ops team; do not reorder)
all:
  hosts:
    cp1:
      ansible_host: 192.0.2.11   # rack 1
    n1:
      ansible_host: 192.0.2.21
      # n1's disks are the old ones
      ansible_user: ops
    # n2 replaced n7 in March
    n2:
      ansible_host: 192.0.2.22
  children:
    kube_control_plane:
      hosts:
        cp1:
    kube_node:
      hosts:
        n1:   # the slow one
        n2:
    gpu:
      hosts:
        n1:
    nfs_server:
      hosts:
        cp1:
# end of hosts
"""


def _node(name: str, address: str, ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": address}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _pod(namespace: str, name: str, owner: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": namespace, "name": name, "labels": extra.pop("labels", {})}
    if owner:
        kind, _, owner_name = owner.partition("/")
        meta["ownerReferences"] = [{"kind": kind, "name": owner_name, "controller": True}]
    meta.update(extra.pop("meta", {}))
    return {"metadata": meta, "spec": {"volumes": extra.pop("volumes", [])},
            "status": {"phase": extra.pop("phase", "Running")}}


class Cluster:
    """The fake kubectl's table, its log, and the site's kubeconfig."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch, site: Path) -> None:
        self.folder = folder
        self.log, self.rules_file = folder / "kubectl.log", folder / "rules.json"
        script = folder / "kubectl"
        script.write_text(FAKE_KUBECTL.format(python=sys.executable, log=str(self.log), rules=str(self.rules_file)))
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        state = site / ".kfinstall" / "test"
        state.mkdir(parents=True, exist_ok=True)
        (state / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
        self.nodes = [_node("cp1", "192.0.2.11"), _node("n1", "192.0.2.21"), _node("n2", "192.0.2.22")]
        self.pods = [
            _pod("kube-system", "calico-node-x", "DaemonSet/calico-node"),
            _pod("kfinstall-hub", "jupyter-alice", labels={"component": "singleuser-server"},
                 volumes=[{"name": "tmp", "emptyDir": {}}]),
            _pod("kfinstall-serving", "tf-serving-1", "ReplicaSet/tf-serving-7d"),
        ]
        self.etcd_pods: list[dict[str, Any]] = []
        self.members: dict[str, Any] = {"members": []}
        self.failing: list[str] = []

    def write(self) -> None:
        rules = [[[word], "refused by the test", 1] for word in self.failing]
        rules += [
            [["get", "nodes"], json.dumps({"items": self.nodes}), 0],
            [["get", "pods", "--all-namespaces"], json.dumps({"items": self.pods}), 0],
            [["get", "pods", "component=etcd"], json.dumps({"items": self.etcd_pods}), 0],
            [["member", "list"], json.dumps(self.members), 0],
        ]
        self.rules_file.write_text(json.dumps(rules))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        # Each call: the words after kfinstall's own --request-timeout and --kubeconfig PATH.
        return [json.loads(line)[3:] for line in self.log.read_text().splitlines()]

    def changes(self) -> list[list[str]]:
        return [c for c in self.calls() if c and c[0] in ("cordon", "drain", "delete", "exec")
                and "list" not in c]


REAL_NEVER_CONVERGED = noderemove.never_converged


@pytest.fixture(autouse=True)
def converged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sites here stand for sites kfinstall converged (its state is not what these tests are about);
    test_a_host_kfinstall_never_converged_is_refused puts the real check back."""
    monkeypatch.setattr(noderemove, "never_converged", lambda cfg, host: [])


@pytest.fixture
def resets(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hosts the stand-in host reset was asked to reset (and when, relative to kubectl calls)."""
    done: list[str] = []

    def fake_reset(cfg: Any, host: str, **options: Any) -> None:
        done.append(host)
        log = cfg.state_dir.parent.parent.parent / "kubectl-bin" / "kubectl.log"
        with log.open("a") as handle:  # the reset's place among kubectl calls, for the order
            handle.write(json.dumps(["", "", "", "RESET", host]) + "\n")

    monkeypatch.setattr("installer.cli.node._reset_host", fake_reset)
    return done


@pytest.fixture
def site(make_site: Any) -> Path:
    return make_site()


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: Path) -> Cluster:
    folder = tmp_path / "kubectl-bin"
    folder.mkdir()
    made = Cluster(folder, monkeypatch, site)
    made.write()
    return made


# ---- upstream facts in the commands ----------------------------------------------------------------------

def test_drain_takes_unmanaged_pods_with_a_grace_period_and_leaves_daemonsets() -> None:
    args = drain_args("n1", 120)
    assert args[:2] == ["drain", "n1"]
    # --force: pods no controller owns (notebook servers) would otherwise stop the drain (kubectl drain.go).
    assert "--force" in args and "--ignore-daemonsets" in args and "--delete-emptydir-data" in args
    # An explicit grace period, not -1 (which would use each pod's own), and a timeout beyond it.
    assert "--grace-period=120" in args
    timeout = next(a for a in args if a.startswith("--timeout="))
    assert int(timeout.removeprefix("--timeout=").removesuffix("s")) > 120


def test_each_pod_gets_the_fate_kubectl_drain_gives_it() -> None:
    fates = {p["metadata"]["name"]: classify_pod(p) for p in [
        _pod("kube-system", "calico", "DaemonSet/calico-node"),
        _pod("kube-system", "etcd-cp1", meta={"annotations": {"kubernetes.io/config.mirror": "x"}}),
        _pod("hub", "jupyter-bob", labels={"component": "singleuser-server"}),
        _pod("jobs", "done", "Job/j", phase="Succeeded"),
        _pod("serving", "tf", "ReplicaSet/tf-1", volumes=[{"name": "c", "emptyDir": {}}]),
    ]}
    assert fates["calico"].fate == "stays-daemonset"
    assert fates["etcd-cp1"].fate == "stays-static"
    assert fates["jupyter-bob"].fate == "deleted-unmanaged" and fates["jupyter-bob"].notebook
    assert "notebook server" in fates["jupyter-bob"].describe()
    assert fates["done"].fate == "deleted-finished"
    assert fates["tf"].fate == "evicted" and "emptyDir data is lost" in fates["tf"].describe()


@pytest.mark.parametrize(("members", "unhealthy", "removing", "refused"), [
    (["a", "b", "c"], set(), "c", False),            # 3 -> 2, both healthy: quorum 2 of 2
    (["a", "b", "c"], {"c"}, "c", False),            # replacing the failed one: 2 healthy commit it
    (["a", "b", "c"], {"c"}, "b", True),             # a healthy one while c is down: 1 of 2 left
    (["a", "b", "c"], {"b", "c"}, "c", True),        # no quorum now (1 of 3): nothing can commit
    (["a", "b", "c", "d", "e"], {"e"}, "d", False),  # 5 -> 4 with e down: 3 healthy of 4, quorum 3
    (["a", "b", "c", "d", "e"], {"d", "e"}, "c", True),  # 2 healthy of 4 left, quorum 3
])
def test_etcd_quorum_math(members: list[str], unhealthy: set[str], removing: str, refused: bool) -> None:
    # etcd FAQ: (n/2)+1 members must agree on a proposal, membership changes included.
    assert [quorum(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    refusal = etcd_quorum_refusal(members, removing, unhealthy)
    assert (refusal is not None) is refused
    if refusal is not None:
        assert "quorum" in refusal.reason and refusal.safe_path


def test_etcd_member_id_is_the_hex_form_etcdctl_member_remove_takes() -> None:
    # `etcdctl member list -w json` prints IDs as decimal integers; `member remove` takes hex.
    listed = {"members": [{"ID": 1234567890123456789, "name": "cp1", "peerURLs": ["https://192.0.2.11:2380"]},
                          {"ID": 255, "name": "other-name", "peerURLs": ["https://192.0.2.13:2380"]}]}
    assert etcd_member_id(listed, "cp1", "192.0.2.11") == "112210f47de98115"
    assert etcd_member_id(listed, "cp3", "192.0.2.13") == "ff"  # found by its peer address
    assert etcd_member_id(listed, "cp9", "192.0.2.99") is None


# ---- refusals from the inventory and the config (no cluster) -----------------------------------------

def _three_control_planes(make_site: Any, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Cluster]:
    """A site with control planes cp1, cp2 (192.0.2.12), cp3 (192.0.2.13) behind an endpoint, and its
    stand-in cluster (Nodes of cp2 and cp3 are the caller's to add, with the readiness the test needs)."""
    site = make_site(
        cluster={"spec.kubernetes.controlPlaneEndpoint": "192.0.2.100"},
        hosts={"all.hosts.cp2": {"ansible_host": "192.0.2.12"}, "all.hosts.cp3": {"ansible_host": "192.0.2.13"},
               "all.children.kube_control_plane.hosts": {"cp1": None, "cp2": None, "cp3": None}})
    folder = tmp_path / "kubectl-bin"
    folder.mkdir()
    return site, Cluster(folder, monkeypatch, site)


def _unchanged(site: Path, before: bytes) -> None:
    assert (site / "hosts.yml").read_bytes() == before


def test_the_nfs_server_is_refused_with_the_safe_path(site: Path, kfinstall: Any, cluster: Cluster) -> None:
    before = (site / "hosts.yml").read_bytes()
    code, out = kfinstall("node", "remove", "cp1", "-i", str(site), "--yes")
    assert code == 3, out
    assert "NFS server" in out and "Safe path" in out and "kfinstall backup" in out
    assert "last control plane" in out
    assert cluster.changes() == []
    _unchanged(site, before)


def test_the_last_kube_node_is_refused(make_site: Any, kfinstall: Any) -> None:
    site = make_site(hosts={"all.children.kube_node.hosts": {"n1": None}, "all.hosts.n2": ...})
    code, out = kfinstall("node", "remove", "n1", "-i", str(site), "--yes")
    assert code == 3, out
    assert "only kube_node" in out and "kfinstall up --limit NEW" in out


def test_a_gluster_brick_host_is_refused_with_the_replace_brick_command(make_site: Any, kfinstall: Any) -> None:
    site = make_site(
        cluster={"spec.storage.gluster": {"enabled": True, "replica": 3, "volume": "vol1", "brickPath": "/b/k"}},
        hosts={"all.hosts.n3": {"ansible_host": "192.0.2.23", "glusterfs_address": "10.9.0.23"},
               "all.children.kube_node.hosts": {"n1": None, "n2": None, "n3": None},
               "all.children.gluster.hosts": {"n1": None, "n2": None, "n3": None}})
    before = (site / "hosts.yml").read_bytes()
    code, out = kfinstall("node", "remove", "n3", "-i", str(site), "--yes", "-o", "json")
    assert code == 3, out
    doc = json.loads(out[: out.rindex("}") + 1])
    assert doc["exitCode"] == 3 and doc["refusals"], doc
    safe = doc["refusals"][0]["safePath"]
    # gluster's only replace-brick form, with the brick the role made (glusterfs_address:brick path).
    assert "gluster volume replace-brick vol1 10.9.0.23:/b/k NEW_ADDRESS:/b/k commit force" in safe
    assert "gluster volume heal vol1 full" in safe
    assert "below the volume's replica count" in doc["refusals"][0]["reason"]
    _unchanged(site, before)


def test_a_former_brick_host_out_of_the_gluster_group_gets_the_check_to_make(
        make_site: Any, kfinstall_streams: Any, cluster: Cluster) -> None:
    """The replace-brick path: n1 left group gluster in hosts.yml (n3 took its place), so the refusal no longer
    applies; whether `gluster volume replace-brick` already moved its brick is not something kfinstall sees, so
    the plan says what to check (shown before the question and in the dry run)."""
    from installer.applied import record_apply
    from installer.config.load import load

    gluster = {"spec.storage.gluster.enabled": True, "spec.storage.gluster.replica": 2,
               "spec.storage.nfs.allowedClients": ["192.0.2.0/24"]}
    site = make_site(cluster=gluster, hosts={"all.children.gluster.hosts": {"n1": None, "n2": None}})
    record_apply(load(site, need_secrets=False), ("hosts",), run_id="first")
    site = make_site(cluster=gluster, hosts={"all.hosts.n3": {"ansible_host": "192.0.2.23"},
                                             "all.children.kube_node.hosts.n3": None,
                                             "all.children.gluster.hosts": {"n2": None, "n3": None}})
    code, out, err = kfinstall_streams("node", "remove", "n1", "-i", str(site), "--dry-run", "-o", "json")
    assert code == 0, out + err
    warnings = " ".join(json.loads(out)["warnings"])
    assert "n1 served the brick 192.0.2.21:" in warnings and "gluster volume info" in warnings
    assert any(f.startswith("on n2: `gluster peer detach 192.0.2.21`") for f in json.loads(out)["followUp"])
    code, out, err = kfinstall_streams("node", "remove", "n2", "-i", str(site), "--dry-run", "-o", "json")
    assert code == 3 and "served the brick" not in out  # still in the group: refused, as before


def test_a_control_plane_whose_removal_loses_quorum_is_refused(make_site: Any, kfinstall: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    site, made = _three_control_planes(make_site, tmp_path, monkeypatch)
    made.nodes += [_node("cp2", "192.0.2.12"), _node("cp3", "192.0.2.13", ready=False)]
    made.write()
    code, out = kfinstall("node", "remove", "cp2", "-i", str(site), "--yes")
    assert code == 3, out
    assert "quorum" in out and "remove the failed control plane first (cp3)" in out
    assert made.changes() == []


def test_a_ready_control_plane_whose_etcd_is_failing_counts_against_quorum(
        make_site: Any, kfinstall: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Node is Ready, but cp2's etcd pod crash-loops (Running, Ready False: kubeadm's etcd has liveness
    and startup probes on /health). Removing cp3 would leave cp1 alone of the 2 members etcd needs: refused.
    The same site with cp2's etcd Ready may remove cp3."""
    site, made = _three_control_planes(make_site, tmp_path, monkeypatch)
    made.nodes += [_node("cp2", "192.0.2.12"), _node("cp3", "192.0.2.13")]

    def etcd(node: str, ready: bool) -> dict[str, Any]:
        return {"metadata": {"name": f"etcd-{node}"}, "spec": {"nodeName": node},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]}}

    made.etcd_pods = [etcd("cp1", True), etcd("cp2", False), etcd("cp3", True)]
    made.write()
    code, out = kfinstall("node", "remove", "cp3", "-i", str(site), "--dry-run")
    assert code == 3, out
    assert "quorum" in out and "remove the failed control plane first (cp2)" in out
    made.etcd_pods[1] = etcd("cp2", True)
    made.write()
    code, out = kfinstall("node", "remove", "cp3", "-i", str(site), "--dry-run")
    assert code == 0, out
    assert made.changes() == []


def test_a_host_kfinstall_never_converged_is_refused(site: Path, kfinstall: Any, cluster: Cluster,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An inventory brought from a running cluster kfinstall did not build: the reset (as `reset` refuses it)
    would leave that kubelet running and it would register the Node again after the delete. Refused (exit 3,
    nothing read or changed) until a host phase ran to its end on it; --unreachable (no reset) is not."""
    from installer.applied import record_apply
    from installer.config.load import load

    monkeypatch.setattr(noderemove, "never_converged", REAL_NEVER_CONVERGED)
    code, out = kfinstall("node", "remove", "n2", "-i", str(site), "--yes")
    assert code == 3, out
    assert "kfinstall never converged n2" in out and "kubeadm reset -f" in out
    assert cluster.calls() == []
    assert kfinstall("node", "remove", "n2", "-i", str(site), "--unreachable", "--dry-run")[0] == 0
    record_apply(load(site, need_secrets=False), ("hosts",), run_id="first")
    code, out = kfinstall("node", "remove", "n2", "-i", str(site), "--dry-run")
    assert code == 0, out


def test_a_worker_reset_before_is_sent_to_unreachable_not_to_up(site: Path, kfinstall: Any, cluster: Cluster,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`reset --limit n2` warns that n2's Node stays and names `node remove`; node remove then must not call n2
    never converged and send the operator to `up --limit n2` (which would put the host back): it names the
    path that works, --unreachable (Node deleted, hosts.yml edited, nothing left on n2 to reset) (review4)."""
    from installer.config.load import load
    from installer.reset import ResetReport, _remember, plan_reset
    from installer.state import State, write_state

    monkeypatch.setattr(noderemove, "never_converged", REAL_NEVER_CONVERGED)
    cfg = load(site, need_secrets=False)
    write_state(cfg.state_dir, State(cluster="test", host_roles={"kube_control_plane": ["cp1"],
                                                                 "kube_node": ["n1", "n2"], "nfs_server": ["cp1"]}))
    _remember(cfg, ResetReport("r1", "record", plan_reset(cfg, "n2")))
    code, out = kfinstall("node", "remove", "n2", "-i", str(site), "--yes")
    assert code == 3 and "n2 was reset by `kfinstall reset`" in out, out
    assert "never converged" not in out and "node remove n2 --unreachable" in out.replace("\n", " "), out
    assert cluster.calls() == []
    assert kfinstall("node", "remove", "n2", "-i", str(site), "--unreachable", "--dry-run")[0] == 0


def test_an_unknown_host_is_bad_input(site: Path, kfinstall: Any, make_site: Any) -> None:
    code, out = kfinstall("node", "remove", "n9", "-i", str(site), "--yes")
    assert code == 2, out
    assert "no host 'n9'" in out and "cp1, n1, n2" in out
    assert "Traceback" not in out
    code, out = kfinstall("node", "remove", "n1\x1b[2J", "-i", str(site), "--yes")
    assert code == 2 and "\x1b" not in out, out  # shown escaped, never sent to the terminal


def test_a_removed_host_is_no_longer_taken_for_converged(site: Path, kfinstall: Any, cluster: Cluster) -> None:
    """With --unreachable no reset runs (reset is what drops its hosts from state.json's converged hosts): a new
    machine added later under the same name must be a new host to plan/up --limit and to reset's refusal."""
    from installer.config.load import load
    from installer.limited import converged_roles
    from installer.state import State, read_state, write_state

    state_dir = load(site, need_secrets=False).state_dir
    write_state(state_dir, State(cluster="test", host_roles={"kube_control_plane": ["cp1"], "kube_node": ["n1", "n2"],
                                                             "nfs_server": ["cp1"]}))
    code, out = kfinstall("node", "remove", "n2", "-i", str(site), "--yes", "--unreachable")
    assert code == 0, out
    assert read_state(state_dir).host_roles["kube_node"] == ["n1"]
    assert "n2" not in {h for hosts in converged_roles(load(site, need_secrets=False)).values() for h in hosts}


def test_a_removed_host_leaves_a_state_older_than_host_roles(site: Path, kfinstall: Any, cluster: Cluster) -> None:
    """The same with a state.json of a kfinstall before host_roles (the converged hosts only in the applied
    record, which node remove keeps): n2 must leave the converged hosts all the same, or a new machine under its
    name is taken for the converged one (NFS admission, reset's refusal) (review4)."""
    from installer.applied import record_apply
    from installer.config.load import load
    from installer.limited import converged_roles
    from installer.state import State, write_state

    cfg = load(site, need_secrets=False)
    record_apply(cfg, ("hosts",), run_id="older")
    write_state(cfg.state_dir, State(cluster="test"))
    code, out = kfinstall("node", "remove", "n2", "-i", str(site), "--yes", "--unreachable")
    assert code == 0, out
    roles = converged_roles(load(site, need_secrets=False))
    assert roles is not None and roles["kube_node"] == ["n1"] and roles["kube_control_plane"] == ["cp1"], roles


def test_a_host_in_no_role_group_is_bad_input(make_site: Any, kfinstall: Any, cluster: Cluster) -> None:
    """Kubespray's bastion (or a host only in another tool's groups, left alone): exit 2 before the cluster
    is read, instead of a drain-less run that stops at its reset with exit 4."""
    site = make_site(hosts={"all.hosts.jump": {"ansible_host": "192.0.2.5"}, "all.children.bastion.hosts.jump": None})
    code, out = kfinstall("node", "remove", "jump", "-i", str(site), "--yes")
    assert code == 2, out
    assert "jump is in none of kfinstall's role groups" in out and "its groups: bastion" in out
    assert cluster.calls() == []


def test_a_profile_without_hosts_is_bad_input(kfinstall: Any, tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "inventories" / "gcp"
    code, out = kfinstall("node", "remove", "n1", "-i", str(sample), "--state-dir", str(tmp_path / "s"), "--yes")
    assert code == 2, out
    assert "profile gcp has no hosts" in out


# ---- the inventory edit -------------------------------------------------------------------------------------

def test_the_host_leaves_every_group_and_every_comment_stays(make_site: Any) -> None:
    from installer.config.hostsedit import plan_host_removal, write_host_removal

    site = make_site(hosts_text=COMMENTED_HOSTS)
    (site / "host_vars").mkdir()
    (site / "host_vars" / "n1.yml").write_text("nvidia_driver: 550\n")
    path = site / "hosts.yml"
    path.chmod(0o640)
    removal = plan_host_removal(path, "n1")
    assert removal.editable, removal.reason
    assert [e.group for e in removal.entries] == ["all", "kube_node", "gpu"]
    assert removal.host_vars == ["host_vars/n1.yml"]
    write_host_removal(removal)
    text = path.read_text()
    for comment in ("# Site hosts", "# rack 1", "# n2 replaced n7 in March", "# end of hosts"):
        assert comment in text
    assert "n1" not in text.replace("n1's", "")  # the host's entries and its own comments are gone
    assert "the slow one" not in text
    assert yaml.safe_load(text) == _without_n1(yaml.safe_load(COMMENTED_HOSTS))
    assert (site / "host_vars" / "n1.yml").read_text() == "nvidia_driver: 550\n"  # never touched
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    # Only those lines went, and every other line is the old one, in the old order.
    old_lines, new_lines = COMMENTED_HOSTS.splitlines(), text.splitlines()
    gone = [line for line in old_lines if line not in new_lines]
    assert gone == ["    n1:", "      ansible_host: 192.0.2.21", "      # n1's disks are the old ones",
                    "      ansible_user: ops", "        n1:   # the slow one", "        n1:"]
    assert [line for line in old_lines if line in new_lines] == new_lines


def test_the_edit_keeps_a_private_copy_and_the_owner(make_site: Any, tmp_path: Path) -> None:
    """The old hosts.yml is kept in the state dir (never read as an inventory) before the file is replaced, and
    the file keeps its owner: run with sudo, the operator must still be able to edit their inventory."""
    from installer.config.hostsedit import plan_host_removal, write_host_removal

    site = make_site(hosts_text=COMMENTED_HOSTS)
    path = site / "hosts.yml"
    if os.geteuid() == 0:
        os.chown(path, 1234, 1234)
    backup = write_host_removal(plan_host_removal(path, "n1"), tmp_path / "state")
    assert backup is not None and backup.parent == tmp_path / "state" and backup.name.startswith(
        "hosts.yml.before-node-remove-n1-")
    assert backup.read_text() == COMMENTED_HOSTS and backup.stat().st_mode & 0o777 == 0o600
    assert "n1" not in yaml.safe_load(path.read_text())["all"]["hosts"]
    if os.geteuid() == 0:
        assert (path.stat().st_uid, path.stat().st_gid) == (1234, 1234)


def _without_n1(data: dict[str, Any]) -> dict[str, Any]:
    data["all"]["hosts"].pop("n1")
    data["all"]["children"]["kube_node"]["hosts"].pop("n1")
    data["all"]["children"]["gpu"]["hosts"] = None
    return data


@pytest.mark.parametrize("kind", ["symlink", "ini", "flow"])
def test_an_inventory_kfinstall_cannot_edit_safely_is_refused_before_anything(
        kind: str, make_site: Any, kfinstall: Any, tmp_path: Path, cluster: Cluster) -> None:
    site = make_site()
    hosts = site / "hosts.yml"
    if kind == "symlink":
        real = tmp_path / "elsewhere.yml"
        real.write_text(hosts.read_text())
        hosts.unlink()
        hosts.symlink_to(real)
    elif kind == "ini":
        hosts.unlink()
        (site / "hosts.ini").write_text("[kube_control_plane]\ncp1 ansible_host=192.0.2.11\n[kube_node]\n"
                                        "n1 ansible_host=192.0.2.21\nn2 ansible_host=192.0.2.22\n"
                                        "[nfs_server]\ncp1\n")
    else:
        hosts.write_text("all:\n  hosts: {cp1: {ansible_host: 192.0.2.11}, n1: {ansible_host: 192.0.2.21}, "
                         "n2: {ansible_host: 192.0.2.22}}\n  children:\n    kube_control_plane: {hosts: {cp1: }}\n"
                         "    kube_node: {hosts: {n1: , n2: }}\n    nfs_server: {hosts: {cp1: }}\n")
    code, out = kfinstall("node", "remove", "n1", "-i", str(site), "--yes")
    assert code == 2, out
    assert "--keep-inventory" in out and "Traceback" not in out
    assert cluster.changes() == []


# ---- the whole removal -------------------------------------------------------------------------------------------

def test_a_worker_is_drained_reset_deleted_and_taken_out_of_hosts_yml_in_that_order(
        site: Path, kfinstall_streams: Any, cluster: Cluster, resets: list[str]) -> None:
    code, out, err = kfinstall_streams("node", "remove", "n1", "-i", str(site), "--yes", "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["result"] == "removed" and doc["node"] == "n1"
    assert [s["status"] for s in doc["steps"]] == ["done"] * 5
    notebook = next(p for p in doc["pods"] if p["name"] == "jupyter-alice")
    assert notebook["fate"] == "deleted-unmanaged" and notebook["notebook"]
    order = [c[0] for c in cluster.calls() if c and c[0] in ("cordon", "drain", "delete", "RESET")]
    assert order == ["cordon", "drain", "RESET", "delete"], cluster.calls()
    assert ["delete", "node", "n1", "--ignore-not-found"] in cluster.calls()
    assert resets == ["n1"]
    hosts = yaml.safe_load((site / "hosts.yml").read_text())
    assert "n1" not in hosts["all"]["hosts"] and list(hosts["all"]["children"]["kube_node"]["hosts"]) == ["n2"]
    # The NFS server admitted n1's address (root there is root on the export): the next command re-converges it.
    assert doc["followUp"] == [f"`kfinstall up -i {site} --only hosts --limit cp1 --yes`: the NFS export stops "
                               "admitting n1's address 192.0.2.21 (until then it still may mount them)"]


def test_dry_run_lists_the_evictions_and_changes_nothing(site: Path, kfinstall: Any, cluster: Cluster,
                                                         resets: list[str]) -> None:
    before = (site / "hosts.yml").read_bytes()
    code, out = kfinstall("node", "remove", "n1", "-i", str(site), "--dry-run")
    assert code == 0, out
    assert "jupyter-alice: deleted, not recreated (no controller); a notebook server" in out
    assert "kfinstall-serving/tf-serving-1: evicted, recreated elsewhere by ReplicaSet/tf-serving-7d" in out
    assert "kubectl drain n1 --ignore-daemonsets --delete-emptydir-data --force --grace-period=120" in out
    assert cluster.changes() == [] and resets == []
    _unchanged(site, before)


def test_keep_inventory_leaves_hosts_yml_and_names_the_lines(site: Path, kfinstall: Any, cluster: Cluster,
                                                            resets: list[str]) -> None:
    before = (site / "hosts.yml").read_bytes()
    code, out = kfinstall("node", "remove", "n2", "-i", str(site), "--yes", "--keep-inventory")
    assert code == 0, out
    _unchanged(site, before)
    assert "delete by hand: hosts.yml line" in out and "under kube_node" in out


def test_a_failed_drain_stops_before_the_reset_and_a_rerun_finishes(site: Path, kfinstall_streams: Any,
                                                                    cluster: Cluster, resets: list[str]) -> None:
    before = (site / "hosts.yml").read_bytes()
    cluster.failing = ["drain"]
    cluster.write()
    code, out, err = kfinstall_streams("node", "remove", "n1", "-i", str(site), "--yes", "-o", "json")
    assert code == 4, err
    doc = json.loads(out)
    assert doc["result"] == "failed" and "stopped at 'drain'" in doc["error"]
    assert [s["status"] for s in doc["steps"]][:3] == ["done", "failed", "pending"]
    assert resets == [] and (site / "hosts.yml").read_bytes() == before
    cluster.failing = []
    cluster.write()
    code, out, err = kfinstall_streams("node", "remove", "n1", "-i", str(site), "--yes")
    assert code == 0, err
    assert resets == ["n1"]


def test_replacing_a_failed_control_plane_removes_its_etcd_member_through_a_healthy_one(
        make_site: Any, kfinstall_streams: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        resets: list[str]) -> None:
    site, made = _three_control_planes(make_site, tmp_path, monkeypatch)
    made.nodes += [_node("cp2", "192.0.2.12"), _node("cp3", "192.0.2.13", ready=False)]
    made.pods = []
    made.etcd_pods = [{"metadata": {"name": f"etcd-{n}"}, "spec": {"nodeName": n}, "status": {"phase": "Running"}}
                      for n in ("cp3", "cp1")]
    made.members = {"members": [{"ID": 10, "name": "cp1"}, {"ID": 11, "name": "cp2"}, {"ID": 3054, "name": "cp3"}]}
    made.write()
    code, out, err = kfinstall_streams("node", "remove", "cp3", "-i", str(site), "--yes", "--unreachable",
                                       "-o", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert [s["status"] for s in doc["steps"]] == ["done", "skipped", "skipped", "done", "done", "done"]
    assert "2 control planes are left" in " ".join(doc["warnings"])
    calls = made.changes()
    # Through cp1's etcd pod (not the failed cp3's), the member's hex ID, before the Node is deleted.
    remove = next(c for c in calls if "remove" in c)
    assert remove[:4] == ["exec", "-n", "kube-system", "etcd-cp1"] and remove[-3:] == ["member", "remove", "bee"]
    assert calls.index(remove) < calls.index(["delete", "node", "cp3", "--ignore-not-found"])
    assert not any(c[0] == "drain" for c in calls) and resets == []  # unreachable: no drain, no reset
    hosts = yaml.safe_load((site / "hosts.yml").read_text())
    assert list(hosts["all"]["children"]["kube_control_plane"]["hosts"]) == ["cp1", "cp2"]


def test_a_reachable_control_plane_is_reset_before_its_leftover_etcd_member_is_removed(
        make_site: Any, kfinstall_streams: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        resets: list[str]) -> None:
    # kubeadm reset's remove-etcd-member phase normally removes the member; one still listed after it
    # (kubeadm only warns when it cannot) is removed through another control plane before the Node goes.
    site, made = _three_control_planes(make_site, tmp_path, monkeypatch)
    # cp3's machine registered its own hostname, not the inventory name: found by its address.
    made.nodes += [_node("cp2", "192.0.2.12"), _node("node-c", "192.0.2.13")]
    made.pods = []
    made.etcd_pods = [{"metadata": {"name": f"etcd-{n}"}, "spec": {"nodeName": n}, "status": {"phase": "Running"}}
                      for n in ("node-c", "cp2")]
    made.members = {"members": [{"ID": 16, "name": "node-c", "peerURLs": ["https://192.0.2.13:2380"]}]}
    made.write()
    code, out, err = kfinstall_streams("node", "remove", "cp3", "-i", str(site), "--yes", "-o", "json")
    assert code == 0, err
    order = [c[0] if c[0] != "exec" else " ".join(c[3:4] + c[-3:]) for c in made.calls()
             if c and c[0] in ("cordon", "drain", "RESET", "exec", "delete")]
    assert order == ["cordon", "drain", "RESET", "etcd-cp2 list -w json", "etcd-cp2 member remove 10", "delete"]
    assert ["delete", "node", "node-c", "--ignore-not-found"] in made.calls()


def test_the_host_reset_is_kfinstall_reset_of_that_host_alone(site: Path, kfinstall_streams: Any, cluster: Cluster,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # node remove hands the host to installer.reset.reset_host (reset.yml on that host, under node remove's
    # own lock: reset_host takes none), after the drain and before the Node is deleted.
    import installer.reset

    called: list[tuple[str, dict[str, Any]]] = []

    def fake(cfg: Any, host: str, **options: Any) -> None:
        from installer.lock import run_lock

        with run_lock(cfg.state_dir, "probe"):  # node remove holds the lock: a second taker is refused
            pass
        called.append((host, options))

    monkeypatch.setattr(installer.reset, "reset_host", fake)
    code, out, err = kfinstall_streams("node", "remove", "n2", "-i", str(site), "--yes", "-o", "json")
    assert code == 4, err
    assert "another kfinstall run holds" in json.loads(out)["error"] and called == []
    monkeypatch.setattr(installer.reset, "reset_host", lambda cfg, host, **options: called.append((host, options)))
    code, out, err = kfinstall_streams("node", "remove", "n2", "-i", str(site), "--yes", "-o", "json")
    assert code == 0, err
    assert [host for host, _ in called] == ["n2"] and set(called[0][1]) == {"console", "verbosity"}


def test_blank_lines_inside_an_entry_go_with_it_and_those_after_it_stay(make_site: Any) -> None:
    from installer.config.hostsedit import plan_host_removal

    text = COMMENTED_HOSTS.replace("      ansible_user: ops\n", "\n      ansible_user: ops\n\n")
    site = make_site(hosts_text=text)
    removal = plan_host_removal(site / "hosts.yml", "n1")
    assert removal.editable, removal.reason
    assert removal.new_text is not None and "ansible_user: ops" not in removal.new_text
    assert "192.0.2.22\n" in removal.new_text and "\n\n    # n2 replaced n7" in removal.new_text


def test_names_and_ids_from_the_cluster_are_checked_before_they_reach_kubectl() -> None:
    from installer.noderemove import etcd_pod_elsewhere, k8s_name

    # A name starting with '-' would be an option to kubectl; an ID that is not a number is no member.
    assert k8s_name("--kubeconfig=/tmp/x") is None and k8s_name("etcd-cp1") == "etcd-cp1"
    pods = {"items": [{"metadata": {"name": "--as=admin"}, "spec": {"nodeName": "cp1"}, "status": {"phase": "Running"}},
                      "junk", {"metadata": {"name": "etcd-cp2"}, "spec": {"nodeName": "cp2"},
                               "status": {"phase": "Running"}}]}
    assert etcd_pod_elsewhere(pods, "cp3") == "etcd-cp2"
    assert etcd_member_id({"members": [{"ID": "1; rm", "name": "cp3"}, "junk"]}, "cp3", "192.0.2.13") is None
    assert etcd_member_id({"members": "not a list"}, "cp3", "192.0.2.13") is None
