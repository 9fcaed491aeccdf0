"""`kfinstall upgrade --dry-run` per host (issue 15 item 8; installer.upgrade.dryrun): the order, what each
drain evicts (from the cluster when it answers), where each hop's backup goes and its size, an estimated
duration per hop, and the rollback path of each hop; text and JSON. Nothing is changed.

Upstream facts the dry run relies on:
- kubectl drain (kubernetes/kubectl pkg/drain; reference text in werf/werf
  docs/_includes/reference/cli/werf_kubectl_drain.md): DaemonSet pods stay with --ignore-daemonsets, mirror
  (static) pods are never deleted, pods no controller owns are deleted only with --force;
- kubeadm does not downgrade, and `kubeadm upgrade` is run again to finish a failed one
  (https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/, "Recovering from a failure
  state"), so a Kubernetes hop's rollback is forward, or a restore from its backup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from installer.cli import cli
from installer.upgrade import dryrun
from installer.upgrade.dryrun import ClusterView


def _pod(namespace: str, name: str, node: str, owner: str | None = None, **meta: Any) -> dict[str, Any]:
    refs = [{"kind": owner, "name": f"{name}-owner", "controller": True}] if owner else []
    return {"metadata": {"namespace": namespace, "name": name, "ownerReferences": refs, **meta},
            "spec": {"nodeName": node, "volumes": []}, "status": {"phase": "Running"}}


NODES = [{"metadata": {"name": n}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
         for n in ("cp1", "n1", "n2")]
PODS = [
    _pod("jupyterhub", "jupyter-alice", "n1", labels={"component": "singleuser-server"}),  # KubeSpawner: no owner
    _pod("kubeflow-user", "tf-serving-abc", "n1", "ReplicaSet"),
    _pod("kube-system", "calico-node-x", "n1", "DaemonSet"),
    _pod("kube-system", "kube-apiserver-cp1", "cp1", annotations={"kubernetes.io/config.mirror": "x"}),
    _pod("kube-system", "coredns-1", "cp1", "ReplicaSet"),
]


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A cluster that answers with NODES and PODS; counts the reads."""
    reads: list[int] = []

    def read(cfg) -> ClusterView:  # type: ignore[no-untyped-def]
        reads.append(1)
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in PODS:
            by_node.setdefault(pod["spec"]["nodeName"], []).append(pod)
        return ClusterView(NODES, by_node)

    monkeypatch.setattr(dryrun, "read_cluster", read)
    return reads


def _dry_run(site: Path, *extra: str, json_out: bool = True) -> Any:
    args = ["upgrade", "-i", str(site), "--from", "1.9", "--to", "1.10", "--dry-run", *extra]
    result = CliRunner().invoke(cli, [*args, "-o", "json"] if json_out else args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output) if json_out else result.output.splitlines()


def _by_host(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in detail["hosts"]}


def test_each_hop_lists_the_hosts_in_the_playbooks_order(make_site, cluster) -> None:
    doc = _dry_run(make_site({"spec.channel": "1.10"}, secrets=False))
    kinds = [h["kind"] for h in doc["route"]["hops"]]
    assert kinds == ["kubernetes", "kubernetes", "platform"]
    first = doc["hopDetails"][0]
    assert [(h["order"], h["host"], h["role"]) for h in first["hosts"]] == [
        (1, "cp1", "first control plane"), (2, "n1", "worker"), (3, "n2", "worker")]
    platform = doc["hopDetails"][2]  # containerd moves: every node is drained in turn for it
    assert [h["host"] for h in platform["hosts"]] == ["cp1", "n1", "n2"]
    assert all("containerd" in h["does"] for h in platform["hosts"])
    assert cluster == [1], "the cluster is read once for the whole dry run"
    assert doc["drain"] == {"gracePeriodSeconds": 120, "force": True}


def test_the_evictions_are_the_pods_on_each_node_with_kubectl_drains_fate(make_site, cluster) -> None:
    doc = _dry_run(make_site({"spec.channel": "1.10"}, secrets=False))
    hosts = _by_host(doc["hopDetails"][0])
    n1 = {f"{p['namespace']}/{p['name']}": p for p in hosts["n1"]["evictions"]}
    assert set(n1) == {"jupyterhub/jupyter-alice", "kubeflow-user/tf-serving-abc"}  # the DaemonSet pod stays
    assert n1["jupyterhub/jupyter-alice"]["fate"] == "deleted-unmanaged" and n1["jupyterhub/jupyter-alice"]["notebook"]
    assert n1["kubeflow-user/tf-serving-abc"]["fate"] == "evicted"
    assert [p["name"] for p in hosts["cp1"]["evictions"]] == ["coredns-1"]  # the static pod is never deleted
    assert hosts["n2"]["evictions"] == []


def test_the_text_names_the_notebooks_that_stop(make_site, cluster) -> None:
    lines = _dry_run(make_site({"spec.channel": "1.10"}, secrets=False), "--grace-period", "300", json_out=False)
    assert "drain: kubectl drain --force --grace-period=300 (notebook servers get 300 s, then stop)" in lines
    at = lines.index("    host 2. n1 (worker): kubeadm upgrade node, drain, kubelet and kubectl, restart, wait Ready, "
                     "uncordon")
    assert lines[at + 1] == ("       evicts: 2 pod(s) leave; notebook server(s) stopped after 300 s and not restarted: "
                             "jupyterhub/jupyter-alice")
    assert "       evicts: nothing to evict" in lines
    assert lines[-1] == "nothing was changed (--dry-run)"


def test_without_a_cluster_the_evictions_are_unknown_and_the_reason_is_said(make_site) -> None:
    site = make_site({"spec.channel": "1.10"}, secrets=False)
    doc = _dry_run(site)
    assert doc["clusterRead"]["ok"] is False
    assert doc["clusterRead"]["note"].startswith("cluster not read, so evictions are unknown: no cluster reachable")
    assert all(h["evictions"] is None for d in doc["hopDetails"] for h in d["hosts"])
    lines = _dry_run(site, json_out=False)
    assert "       evicts: evictions unknown (see the cluster note)" in lines
    assert any(line.startswith("note: cluster not read, so evictions are unknown: ") for line in lines)


def test_backups_go_to_the_hops_folder_and_their_size_is_estimated(make_site, cluster) -> None:
    site = make_site({"spec.channel": "1.10"}, secrets=False)
    state = site / ".kfinstall" / "test"
    doc = _dry_run(site)
    backup = doc["hopDetails"][0]["backup"]
    assert backup["folder"] == f"{state}/runs/<run id>/backup/hop-01-kubernetes"
    assert backup["bytes"]["resolved-config"] > (site / "kfinstall.yaml").stat().st_size
    assert set(backup["unknown"]) == {"etcd-snapshot", "pki-kubeadm-config", "jupyterhub-db"}
    assert backup["skipped"] == {"pulumi-stack": "no Pulumi state yet"}
    # An earlier backup's manifest gives the cluster parts' sizes; the Pulumi state is measured now.
    earlier = state / "runs" / "20260101-000000" / "backup" / "hop-01-kubernetes"
    earlier.mkdir(parents=True)
    files = {"cluster/etcd-snapshot.db": 5_000_000, "cluster/pki.tar.gz": 9_000,
             "cluster/kubeadm-config.yaml": 1_000, "cluster/jupyterhub.sqlite": 200_000}
    (earlier / "manifest.json").write_text(json.dumps({"files": [{"path": p, "size": s} for p, s in files.items()]}))
    (state / "pulumi" / ".pulumi").mkdir(parents=True)
    (state / "pulumi" / ".pulumi" / "stack.json").write_text("x" * 4096)
    backup = _dry_run(site)["hopDetails"][2]["backup"]
    assert backup["bytes"]["etcd-snapshot"] == 5_000_000
    assert backup["bytes"]["pki-kubeadm-config"] == 10_000
    assert backup["bytes"]["jupyterhub-db"] == 200_000
    assert backup["bytes"]["pulumi-stack"] == 4096
    assert backup["unknown"] == [] and backup["sources"]["etcd-snapshot"] == f"as in the last backup {earlier}"


def test_a_hub_turned_off_has_no_database_to_back_up(make_site, cluster) -> None:
    site = make_site({"spec.channel": "1.10", "spec.components.jupyterhub.enabled": False,
                      "spec.components.tensorboard.enabled": False}, secrets=False)
    backup = _dry_run(site)["hopDetails"][0]["backup"]
    assert backup["skipped"]["jupyterhub-db"] == "JupyterHub is not enabled"
    assert "jupyterhub-db" not in backup["bytes"]


def test_the_duration_grows_with_the_grace_period_on_nodes_with_pods(make_site, cluster) -> None:
    site = make_site({"spec.channel": "1.10"}, secrets=False)
    short = _dry_run(site, "--grace-period", "60")["hopDetails"][0]["duration"]
    long = _dry_run(site, "--grace-period", "660")["hopDetails"][0]["duration"]
    # cp1 and n1 have pods that leave (n2 has none): each drain waits out the grace period.
    assert long["estimateSeconds"] - short["estimateSeconds"] == 2 * 600
    assert short["estimateSeconds"] < short["atMostSeconds"]


def test_each_hop_says_how_to_roll_it_back(make_site, cluster) -> None:
    site = make_site({"spec.channel": "1.10"}, secrets=False)
    details = _dry_run(site)["hopDetails"]
    kube, platform = details[0]["rollback"], details[2]["rollback"]
    assert kube[0].startswith("forward first: run the same `kfinstall upgrade` again")
    assert "kubeadm does not downgrade" in kube[1] and "hop-01-kubernetes/cluster/" in kube[1]
    folder = details[2]["backup"]["folder"]
    restore = f"`kfinstall restore {folder} -i {site} --yes`"
    assert platform[0].startswith(f"{restore} puts back kfinstall.yaml (channel 1.9)")
    assert "--only platform" in platform[0]
    assert any("containerd" in line and "not rolled back" in line for line in platform)
