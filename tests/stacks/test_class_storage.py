"""Class checks of storage and alerting on every profile x channel (issue 12 items 6, 7 and 8).

- One default StorageClass, and every claim the platform makes names its class.
- No workload on a storage class its upstream calls unsupported: Prometheus' TSDB and the hub's
  SQLite never on NFS, Filestore or GlusterFS.
- A site installed before keeps the class of claims whose class cannot change.
- No alert rule group enabled for a control-plane target nothing can scrape.

Helm releases are recorded with their values only (the chart is never rendered), so what a chart
makes of those values comes from its upstream templates, cited in each test.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, SHARED_SCHEMAS, helm_merge

from installer.render import evaluate, plain
from stacks.storage import (
    GKE_BLOCK_CLASS,
    HUB_DB_VOLUME,
    NODE_LOCAL_CLASS,
    PROMETHEUS_VOLUME,
    VOLUME_CLASSES_OUTPUT,
    volume_classes,
)

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
DEFAULT_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# Classes GKE creates in every cluster (cloud.google.com/kubernetes-engine/docs/concepts/persistent-volumes,
# "StorageClasses"; .../how-to/persistent-volumes/gce-pd-csi-driver): exactly one of them is marked default,
# and standard-rwo is a zonal pd-balanced disk of the Compute Engine persistent disk CSI driver.
GKE_SHIPPED = {GKE_BLOCK_CLASS: "pd.csi.storage.gke.io", "standard": "pd.csi.storage.gke.io",
               "premium-rwo": "pd.csi.storage.gke.io"}
GKE_SHIPPED_DEFAULTS = 1
# What each provisioner's volumes are. csi-driver-nfs mounts an NFS export (the host export or the
# Filestore share); a local-path-provisioner's kind depends on its ConfigMap (see _local_path_kind).
NETWORK_FS = {"nfs.csi.k8s.io": "NFS (host export or Filestore)"}
BLOCK = {"pd.csi.storage.gke.io": "Compute Engine persistent disk"}


# ---- helpers ------------------------------------------------------------------------------------

def _objects(rendered: Any, kind: str) -> list[dict[str, Any]]:
    return [o for o in (plain(r.inputs) for r in rendered.kubernetes_objects()) if o.get("kind") == kind]


def _release(rendered: Any, chart: str) -> dict[str, Any] | None:
    found = [plain(h.inputs) for h in rendered.helm() if plain(h.inputs).get("chart") == chart]
    return found[0] if found else None


def _dig(values: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(values, dict):
            return None
        values = values.get(key)
    return values


def _local_path_kind(rendered: Any, provisioner: str) -> str | None:
    """'node-local' or 'shared filesystem at <path>' for a local-path-provisioner kfinstall runs.

    rancher/local-path-provisioner (provisioner.go at v0.0.28, v0.0.31, v0.0.32): with
    `sharedFileSystemPath` every volume is a directory on that path and the PV has no node affinity;
    with `nodePathMap` it is a directory on the selected node's disk with that node's affinity.
    """
    for deployment in _objects(rendered, "Deployment"):
        command = deployment["spec"]["template"]["spec"]["containers"][0].get("command") or []
        if "--provisioner-name" not in command or command[command.index("--provisioner-name") + 1] != provisioner:
            continue
        config_map = command[command.index("--configmap-name") + 1]
        data = next(c["data"] for c in _objects(rendered, "ConfigMap") if c["metadata"]["name"] == config_map)
        config = json.loads(data["config.json"])
        if config.get("sharedFileSystemPath"):
            return f"shared filesystem at {config['sharedFileSystemPath']}"
        return "node-local" if config.get("nodePathMap") else None
    return None


def _classes(rendered: Any) -> dict[str, dict[str, Any]]:
    """Every StorageClass the cluster has after `up`: kfinstall's, plus GKE's own on gcp."""
    classes = {c["metadata"]["name"]: c for c in _objects(rendered, "StorageClass")}
    if rendered.cfg.spec.profile == "gcp":
        for name, provisioner in GKE_SHIPPED.items():
            classes.setdefault(name, {"metadata": {"name": name}, "provisioner": provisioner, "gke": True})
    return classes


def _kind(rendered: Any, class_name: str | None) -> str:
    """What a claim naming `class_name` ends up on (None: the default class)."""
    classes = _classes(rendered)
    if class_name is None:
        # With several defaults the newest wins (kubernetes.io/docs/concepts/storage/storage-classes,
        # "Default StorageClass"): kfinstall's classes are always newer than GKE's own.
        defaults = [n for n, c in classes.items()
                    if c["metadata"].get("annotations", {}).get(DEFAULT_ANNOTATION) == "true"]
        if not defaults and rendered.cfg.spec.profile == "gcp":
            return "block: GKE's default class (a persistent disk)"
        assert defaults, "no default class for a claim that names none"
        class_name = defaults[-1]
    assert class_name in classes, f"no StorageClass {class_name} in the cluster"
    provisioner = classes[class_name]["provisioner"]
    if provisioner in NETWORK_FS:
        return f"network filesystem: {NETWORK_FS[provisioner]}"
    if provisioner in BLOCK:
        return f"block: {BLOCK[provisioner]}"
    local = _local_path_kind(rendered, provisioner)
    if local and local.startswith("shared filesystem"):
        return f"network filesystem: {local}"  # the GlusterFS FUSE mount on every node
    assert local == "node-local", f"unknown provisioner {provisioner} of {class_name}"
    return "node-local disk"


# ---- item 6: one default class ------------------------------------------------------------------

@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_exactly_one_default_storage_class(renders, profile: str, channel: str) -> None:
    """Exactly one class is default once `up` is done: kfinstall's on hosts, GKE's own on gcp.

    Kubernetes takes the newest of several defaults for an unnamed claim (kubernetes.io/docs/concepts/
    storage/storage-classes, "Default StorageClass") and `kfinstall verify` wants exactly one. GKE
    creates its own default class in every cluster (cloud.google.com/kubernetes-engine/docs/concepts/
    persistent-volumes), so marking Filestore default as well made two.
    """
    rendered = renders.get(profile, channel)
    ours = [c["metadata"]["name"] for c in _objects(rendered, "StorageClass")
            if c["metadata"].get("annotations", {}).get(DEFAULT_ANNOTATION) == "true"]
    gke = GKE_SHIPPED_DEFAULTS if profile == "gcp" else 0
    assert len(ours) + gke == 1, f"default classes: kfinstall's {ours} plus {gke} of GKE's own"
    if profile != "gcp":
        storage = rendered.cfg.spec.storage
        expected = {"nfs": storage.nfs.storage_class, "gluster": storage.gluster.storage_class}[storage.default_class]
        assert ours == [expected]


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_every_claim_the_platform_makes_names_its_class(renders, profile: str, channel: str) -> None:
    """No claim the platform makes depends on which class is default.

    z2jh renders hub-db-dir with `storageClassName` only when hub.db.pvc.storageClassName is a string
    (jupyterhub/zero-to-jupyterhub-k8s jupyterhub/templates/hub/pvc.yaml, 3.3.8 to 4.4.0) and user
    volumes with the class of singleuser.storage.dynamic.storageClass; kube-prometheus-stack copies
    prometheus.prometheusSpec.storageSpec into the Prometheus resource, whose operator makes the
    StatefulSet's volumeClaimTemplates from it.
    """
    rendered = renders.get(profile, channel)
    unnamed = [c["metadata"]["name"] for c in _objects(rendered, "PersistentVolumeClaim")
               if not c["spec"].get("storageClassName")]
    hub = _release(rendered, "jupyterhub")
    if hub is not None:
        values = hub["values"]
        if not isinstance(_dig(values, "hub.db.pvc.storageClassName"), str):
            unnamed.append("jupyterhub/hub-db-dir")
        if not _dig(values, "singleuser.storage.dynamic.storageClass"):
            unnamed.append("jupyterhub/claim-<user>")
    kps = _release(rendered, "kube-prometheus-stack")
    if kps is not None and not _dig(kps["values"], "prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec."
                                                   "storageClassName"):
        unnamed.append("monitoring/prometheus-db")
    assert not unnamed, f"claims left to the default class: {unnamed}"


class _Classes:
    """A stand-in Kubectl answering `get storageclass` with the given (name, default?) pairs."""

    def __init__(self, *classes: tuple[str, bool]) -> None:
        self.items = [{"metadata": {"name": name, "annotations": {DEFAULT_ANNOTATION: "true" if default else "false"}}}
                      for name, default in classes]

    def json(self, *args: str) -> dict[str, Any]:
        assert args == ("get", "storageclass"), args
        return {"items": self.items}


@pytest.mark.parametrize(("profile", "classes", "problem"), [
    ("gcp", [("standard-rwo", True), ("filestore", False)], None),
    ("gcp", [("standard-rwo", False), ("filestore", True)], "filestore is marked default"),
    ("gcp", [("standard-rwo", True), ("filestore", True)], "exactly one default"),
    ("bare-metal", [("nfs", True), ("node-local", False)], None),
    ("bare-metal", [("nfs", False), ("node-local", True)], "the default StorageClass is node-local, not nfs"),
    ("bare-metal", [("nfs", False), ("node-local", False)], "exactly one default"),
])
def test_verify_wants_the_one_default_the_platform_sets(renders, profile: str, classes: list[tuple[str, bool]],
                                                        problem: str | None) -> None:
    """`kfinstall verify` agrees with what `up` makes: kfinstall's class on hosts, GKE's own on gcp."""
    from installer.verify import CheckFailed, _default_class

    cfg = renders.config(profile, CHANNELS[-1])
    if problem is None:
        assert _default_class(_Classes(*classes), cfg).startswith("default StorageClass ")
    else:
        with pytest.raises(CheckFailed, match=problem):
            _default_class(_Classes(*classes), cfg)


# ---- item 7: no database on a filesystem its upstream does not support --------------------------

@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_prometheus_tsdb_is_not_on_a_network_filesystem(renders, profile: str, channel: str) -> None:
    """Prometheus' TSDB lives on a node-local or block disk.

    prometheus/prometheus docs/storage.md (v2.54 to v3.11, the images kube-prometheus-stack 61.9.0 to
    82.18.0 run): "Non-POSIX compliant filesystems are not supported for Prometheus' local storage as
    unrecoverable corruptions may happen. NFS filesystems (including AWS's EFS) are not supported."
    Filestore is NFS; GlusterFS is a FUSE network filesystem.
    """
    rendered = renders.get(profile, channel)
    kps = _release(rendered, "kube-prometheus-stack")
    if kps is None:
        pytest.skip("monitoring is disabled in this sample")
    claim = _dig(kps["values"], "prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec")
    assert claim, "Prometheus has no persistent volume at all (its TSDB would be lost on every restart)"
    kind = _kind(rendered, claim.get("storageClassName"))
    assert not kind.startswith("network filesystem"), f"Prometheus' TSDB on {kind}"
    assert claim["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_hub_sqlite_is_not_on_a_network_filesystem(renders, profile: str, channel: str) -> None:
    """The hub's SQLite database lives on a node-local or block disk.

    z2jh's default hub.db.type is sqlite-pvc (jupyterhub/values.yaml, 3.3.8 to 4.4.0). SQLite: "SQLite
    ... does not work well on network filesystems" because their file locking is unreliable, and "WAL does
    not work over a network filesystem" (sqlite.org/useovernet.html, sqlite.org/wal.html, sqlite.org/faq.html#q5).
    """
    rendered = renders.get(profile, channel)
    hub = _release(rendered, "jupyterhub")
    if hub is None:
        pytest.skip("jupyterhub is disabled in this sample")
    db_type = _dig(hub["values"], "hub.db.type") or "sqlite-pvc"
    assert db_type == "sqlite-pvc", f"unexpected hub.db.type {db_type}"
    class_name = _dig(hub["values"], "hub.db.pvc.storageClassName")
    kind = _kind(rendered, class_name if isinstance(class_name, str) else None)
    assert not kind.startswith("network filesystem"), f"the hub's SQLite on {kind}"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_node_local_class_is_node_mode_waits_for_its_pod_and_is_not_default(renders, profile: str,
                                                                              channel: str) -> None:
    """Hosts get a node-local class; GKE uses its own persistent disk class instead.

    rancher/local-path-provisioner provisioner.go (v0.0.28, v0.0.31, v0.0.32): in node mode it refuses a
    claim without a selected node ("configuration error, no node was specified"), which only
    WaitForFirstConsumer gives, and supports ReadWriteOnce/ReadWriteOncePod only; its README makes
    nodePathMap and sharedFileSystemPath mutually exclusive. The class is never the default: an
    unnamed ReadWriteMany claim would fail there, and its volumes are tied to one node.
    """
    rendered = renders.get(profile, channel)
    classes = {c["metadata"]["name"]: c for c in _objects(rendered, "StorageClass")}
    if profile == "gcp":
        assert NODE_LOCAL_CLASS not in classes
        return
    local = classes[NODE_LOCAL_CLASS]
    assert local["volumeBindingMode"] == "WaitForFirstConsumer"
    assert local["metadata"]["annotations"][DEFAULT_ANNOTATION] == "false"
    assert _local_path_kind(rendered, local["provisioner"]) == "node-local"
    others = {c["provisioner"] for name, c in classes.items() if name != NODE_LOCAL_CLASS}
    assert local["provisioner"] not in others, "the node-local provisioner also serves another class"
    mount = rendered.cfg.spec.storage.gluster.mount_path
    config = next(json.loads(c["data"]["config.json"]) for c in _objects(rendered, "ConfigMap")
                  if c["metadata"]["name"] == "node-local-config")
    for entry in config["nodePathMap"]:
        for path in entry["paths"]:
            assert path.startswith("/") and not path.startswith(mount.rstrip("/") + "/"), path


# ---- item 7: sites installed before keep what cannot change -------------------------------------

def test_claim_classes_follow_the_plan_what_was_recorded_or_what_an_older_kfinstall_made(renders) -> None:
    """The class of an existing claim is never changed, because the API refuses it.

    A bound PVC's spec is immutable except resources.requests (kubernetes/kubernetes pkg/apis/core/
    validation ValidatePersistentVolumeClaimUpdate), and Helm patches hub-db-dir with the new class,
    so the jupyterhub release would fail on every `up`. prometheus-operator would instead delete and
    recreate its StatefulSet (prometheus-operator/prometheus-operator pkg/prometheus/server/operator.go,
    "recreating StatefulSet because the update operation wasn't possible", at v0.75.2, v0.81.0, v0.86.2
    and v0.89.0, the operators of kube-prometheus-stack 61.9.0 to 82.18.0) and the old claim, same
    name, would be reused on its old class.
    """
    args = type("Args", (), {"cfg": renders.config("bare-metal", CHANNELS[-1])})()
    fresh = volume_classes(args, None)
    assert fresh == {PROMETHEUS_VOLUME: NODE_LOCAL_CLASS, HUB_DB_VOLUME: NODE_LOCAL_CLASS}
    assert volume_classes(args, {}) == fresh
    recorded = {VOLUME_CLASSES_OUTPUT: {PROMETHEUS_VOLUME: "nfs", HUB_DB_VOLUME: ""}, "default_storage_class": "nfs"}
    assert volume_classes(args, recorded) == {PROMETHEUS_VOLUME: "nfs", HUB_DB_VOLUME: ""}
    older = {"default_storage_class": "nfs", "ingress_class": "nginx", "monitoring_release": "kube-prometheus-stack"}
    assert volume_classes(args, older) == {PROMETHEUS_VOLUME: "nfs", HUB_DB_VOLUME: ""}
    older_without_monitoring = {"default_storage_class": "nfs", "ingress_class": "nginx"}
    assert volume_classes(args, older_without_monitoring) == {PROMETHEUS_VOLUME: NODE_LOCAL_CLASS, HUB_DB_VOLUME: ""}
    gcp = type("Args", (), {"cfg": renders.config("gcp", CHANNELS[-1])})()
    assert volume_classes(gcp, None) == {PROMETHEUS_VOLUME: GKE_BLOCK_CLASS, HUB_DB_VOLUME: GKE_BLOCK_CLASS}


def test_an_operator_value_for_the_class_is_what_gets_recorded(renders) -> None:
    """spec.components.<x>.values is merged last (stacks/values.py), so its class is the one in effect."""
    cfg = renders.config("bare-metal", CHANNELS[-1], (
        "spec.components.jupyterhub.values.hub.db.pvc.storageClassName=fast-local",
        "spec.components.monitoring.values.prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec."
        "storageClassName=fast-local"))
    args = type("Args", (), {"cfg": cfg})()
    older = {"default_storage_class": "nfs", "monitoring_release": "kube-prometheus-stack"}
    assert volume_classes(args, older) == {PROMETHEUS_VOLUME: "fast-local", HUB_DB_VOLUME: "fast-local"}


def test_up_on_a_site_an_older_kfinstall_installed_leaves_the_claims_as_they_are(renders) -> None:
    """Rendered with the outputs an older kfinstall left, the release values keep the claims unchanged.

    z2jh jupyterhub/templates/hub/pvc.yaml (3.3.8 to 4.4.0) emits storageClassName only when the value is
    a string, so leaving it unset keeps the manifest Helm applied before, and Helm sends no patch.
    """
    cfg = renders.config("bare-metal", CHANNELS[-1])
    older = {"default_storage_class": "nfs", "ingress_class": "nginx", "monitoring_release": "kube-prometheus-stack"}
    records = evaluate(cfg, older)
    values = {plain(r.inputs)["chart"]: plain(r.inputs)["values"] for r in records
              if r.typ == "kubernetes:helm.sh/v3:Release"}
    assert _dig(values["jupyterhub"], "hub.db.pvc.storageClassName") is None
    assert _dig(values["kube-prometheus-stack"],
                "prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec.storageClassName") == "nfs"


def test_the_adapter_hands_the_last_deployment_outputs_to_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """`up` and `preview` run the program with what the stack's last deployment exported."""
    from installer.adapters import pulumi as adapter

    program_module = importlib.import_module("stacks.program")
    calls: list[dict[str, Any] | None] = []

    class Output:
        def __init__(self, value: Any, secret: bool = False) -> None:
            self.value, self.secret = value, secret

    class FakeStack:
        def outputs(self) -> dict[str, Output]:
            return {"default_storage_class": Output("nfs"), "hidden": Output("s3cr3t", secret=True)}

        def up(self, *, program: Any, **_: Any) -> Any:
            program()
            summary = type("Summary", (), {"result": "succeeded", "resource_changes": {}})()
            return type("Result", (), {"summary": summary, "outputs": {}})()

        def preview(self, *, program: Any, **_: Any) -> Any:
            program()
            return type("Preview", (), {"change_summary": {}})()

    monkeypatch.setattr(adapter, "_stack", lambda cfg, found: FakeStack())
    monkeypatch.setattr(program_module, "program", lambda cfg, installed=None: calls.append(installed) or {})
    monkeypatch.setattr(program_module, "export_outputs", lambda outputs: None)
    adapter._operation(None, None, "up", None, 0.0)  # type: ignore[arg-type]
    adapter._operation(None, None, "preview", None, 0.0)  # type: ignore[arg-type]
    assert calls == [{"default_storage_class": "nfs"}] * 2


# ---- item 8: no alert for a target nothing can scrape -------------------------------------------

# Which values gate the ServiceMonitor and the rule groups of each control-plane component, in
# prometheus-community/helm-charts charts/kube-prometheus-stack at kube-prometheus-stack-61.9.0,
# -70.10.0, -79.12.0 and -82.18.0 (identical at the four tags):
# templates/exporters/<component>/servicemonitor.yaml: and .Values.<c>.enabled .Values.<c>.serviceMonitor.enabled
#   .Values.kubernetesServiceMonitors.enabled
# templates/prometheus/rules-1.14/<group>.yaml: and .Values.defaultRules.create .Values.<c>.enabled
#   .Values.defaultRules.rules.<rule key>
CONTROL_PLANE = {
    # component: (its rule groups and their defaultRules.rules key, alerts that fire with no target)
    "kubeControllerManager": ({"kubernetes-system-controller-manager": "kubeControllerManager"},
                              "KubeControllerManagerDown"),
    "kubeScheduler": ({"kubernetes-system-scheduler": "kubeSchedulerAlerting",
                       "kube-scheduler.rules": "kubeSchedulerRecording"}, "KubeSchedulerDown"),
    "kubeEtcd": ({"etcd": "etcd"}, "etcdMembersDown, etcdInsufficientMembers"),
    "kubeProxy": ({"kubernetes-system-kube-proxy": "kubeProxy"}, "KubeProxyDown"),
}


def _unscrapable(profile: str) -> set[str]:
    """Control-plane components whose metrics no in-cluster Prometheus reaches on a fresh install.

    kubeadm (kubernetes/kubernetes cmd/kubeadm/app/phases/controlplane/manifests.go and etcd/local.go):
    controller-manager and scheduler get --bind-address=127.0.0.1, etcd --listen-metrics-urls=
    http://127.0.0.1:2381; kube-proxy's metricsBindAddress defaults to 127.0.0.1:10249 (pkg/proxy/apis/
    config/v1alpha1/defaults.go) and playbooks/roles/kubernetes sets none of them. GKE runs controller-
    manager, scheduler and etcd outside the cluster, and its kube-proxy (absent with Dataplane V2)
    listens on localhost too.
    """
    return set(CONTROL_PLANE)


def _kps_values(rendered: Any) -> dict[str, Any] | None:
    kps = _release(rendered, "kube-prometheus-stack")
    if kps is None:
        return None
    defaults = SHARED_SCHEMAS / "kube-prometheus-stack" / kps["version"] / "values.yaml"
    if not defaults.is_file():
        pytest.skip(f"upstream defaults {defaults} are absent")
    return helm_merge(yaml.safe_load(defaults.read_text()), kps["values"])


def _on(values: dict[str, Any], path: str) -> bool:
    return bool(_dig(values, path))


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_no_rule_group_or_monitor_for_a_target_nothing_can_scrape(renders, profile: str, channel: str) -> None:
    """A healthy fresh install fires no alert forever (Watchdog excepted, by design).

    KubeControllerManagerDown, KubeSchedulerDown and KubeProxyDown are `absent(up{job=...} == 1)` and the
    etcd group's etcdInsufficientMembers counts up == 0 targets (templates/prometheus/rules-1.14/, gates
    above): with no reachable target they fire from the first evaluation on.
    """
    values = _kps_values(renders.get(profile, channel))
    if values is None:
        pytest.skip("monitoring is disabled in this sample")
    rules_on = _on(values, "defaultRules.create")
    firing = []
    for component in sorted(_unscrapable(profile)):
        groups, alerts = CONTROL_PLANE[component]
        enabled = _on(values, f"{component}.enabled")
        monitors = _on(values, f"{component}.serviceMonitor.enabled") and _on(values,
                                                                             "kubernetesServiceMonitors.enabled")
        if enabled and monitors:
            firing.append(f"ServiceMonitor {component} (targets down: TargetDown)")
        for group, key in groups.items():
            if rules_on and enabled and _on(values, f"defaultRules.rules.{key}"):
                firing.append(f"rule group {group} ({alerts})")
    assert not firing, f"enabled for targets nothing can scrape on {profile}: {firing}"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_the_rest_of_the_default_alerting_stays_on(renders, profile: str, channel: str) -> None:
    """Turning the unscrapable monitors off keeps every other default rule group, Watchdog's included.

    general.rules holds Watchdog, which fires always by design (a dead man's switch for the alerting
    pipeline), TargetDown and InfoInhibitor (templates/prometheus/rules-1.14/general.rules.yaml).
    """
    values = _kps_values(renders.get(profile, channel))
    if values is None:
        pytest.skip("monitoring is disabled in this sample")
    assert _on(values, "defaultRules.create")
    assert _on(values, "defaultRules.rules.general")
    for component in ("kubelet", "kubeApiServer", "kubeStateMetrics", "nodeExporter"):
        assert _dig(values, f"{component}.enabled") is not False, component


def test_the_kube_prometheus_stack_defaults_are_the_pinned_ones() -> None:
    """The gates above read the upstream defaults of exactly the chart versions the channels pin."""
    from installer.releases import load_release

    folder = SHARED_SCHEMAS / "kube-prometheus-stack"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    pinned = {load_release(channel).charts["kube-prometheus-stack"].version for channel in CHANNELS}
    assert pinned <= {p.name for p in folder.iterdir()}, pinned
    for version in pinned:
        defaults = yaml.safe_load((folder / version / "values.yaml").read_text())
        for component in CONTROL_PLANE:
            assert defaults[component]["enabled"] is True, (version, component)


def test_docs_say_what_losing_the_node_means() -> None:
    """The node-loss behaviour and the recovery steps are written down where operators look."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "storage.md").read_text()
    for needed in (NODE_LOCAL_CLASS, GKE_BLOCK_CLASS, "Pending", "hub-db-dir", "delete pvc"):
        assert needed in text, needed


@pytest.mark.parametrize(("sets", "key", "words"), [
    (("spec.storage.nfs.storageClass=node-local",), "spec.storage.nfs.storageClass", "node-local class kfinstall"),
    (("spec.storage.gluster.storageClass=nfs",), "spec.storage.gluster.storageClass", "is also spec.storage.nfs"),
])
def test_a_class_name_kfinstall_uses_twice_is_refused(renders, sets: tuple[str, ...], key: str, words: str) -> None:
    """Two StorageClass objects of one name would replace each other: refused as bad input (exit 2)."""
    from installer.config.problems import InvalidConfig
    from installer.config.rules import RESERVED_HOST_CLASSES

    assert NODE_LOCAL_CLASS in RESERVED_HOST_CLASSES
    with pytest.raises(InvalidConfig) as refused:
        renders.config("private-gpu", CHANNELS[-1], sets)
    problems = [p for p in refused.value.problems if p.key == key]
    assert problems and words in problems[0].message, refused.value.lines()
