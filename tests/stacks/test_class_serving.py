"""Class checks of the model server on every profile x channel: healthy with no model, a model picked
up without a restart, no fixed replicas beside an HPA, the HPA bounded by the GPUs where known.

Upstream sources (tensorflow/serving, read at the tags the channels pin: 2.17.0 6311b72e, 2.19.0
c491ba65, 2.19.1 eab9c352, 2.20.0 bc7e9d2b; the lines cited are the same at each):
* tensorflow_serving/model_servers/server.cc, Server::BuildAndStart: ServerCore::Create(...) runs
  before builder.BuildAndStart() (gRPC) and CreateAndStartHttpServer (REST), so no port is open until
  Create returns; the config poll thread (PollFilesystemAndReloadConfig) starts only when
  fs_model_config_poll_wait_seconds > 0 and calls ServerCore::ReloadConfig with the file re-read.
* tensorflow_serving/model_servers/server_core.cc: Create ends in ReloadConfig(first config);
  AddModelsViaModelConfigList, first config, ConnectAdaptersToManagerAndAwaitModelLoads waits for
  ServableRequest::Latest of every listed model; server_core.h servable_state_waiter_timeout =
  InfiniteDuration. A listed model with no version keeps the ports closed for ever (the crash loop of
  issue 12 item 2 under a TCP liveness probe). An empty model_config_list awaits nothing
  (core/servable_state_monitor.cc ShouldSendStateReachedNotification: an empty request list is
  reached at once, so ConnectSourcesWithFastInitialLoad returns and the ports open). Later
  configs of the same kind are accepted ("only legal to transition from one ModelConfigList to
  another") and new models are added to the running server (non-first branch: no restart).
* tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc: a version is a child
  directory of base_path whose name parses as an integer (ParseVersionNumber); UpdateConfig does not
  poll at once, so a new model waits up to file_system_poll_wait_seconds.
* tensorflow_serving/model_servers/get_model_status_impl.cc + http_server.cc: GET /v1/models/<name>
  answers NotFound -> HTTP 404 "Could not find any versions of model" until a version is loaded; the
  REST dispatcher has no model-free health path.
* tensorflow_serving/g3doc/serving_config.md "Reloading Model Server Configuration":
  --model_config_file_poll_wait_seconds makes the server re-read --model_config_file periodically.
Kubernetes: kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/ "Migrating Deployments
and StatefulSets to horizontal autoscaling": remove spec.replicas from a manifest an HPA scales, or every
apply sets the scale back to it; kubernetes/kubernetes pkg/apis/apps/v1/defaults.go
SetDefaults_Deployment: an omitted replicas is defaulted to 1 on create (the HPA then raises it to
minReplicas).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stackhelpers import CHANNELS, PROFILES, containers

from installer.render import evaluate, plain
from installer.serving import (
    FILE_SYSTEM_POLL_S,
    LISTER_INTERVAL_S,
    MODEL_CONFIG_POLL_S,
    MODEL_LOAD_S,
    ReplicaBounds,
    model_pickup_s,
    replica_bounds,
)

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
SH = "/bin/sh"


def _objects(records: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r.inputs["kind"], r.inputs["metadata"]["name"]): plain(r.inputs)
            for r in records if r.is_kubernetes_object}


def _serving(renders, profile: str, channel: str) -> tuple[dict[str, Any], dict[str, Any]]:
    objects = _objects(renders.get(profile, channel).records)
    return objects[("Deployment", "tf-serving")], objects[("ConfigMap", "tf-serving-config")]


def _server(deployment: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                if c.get("command") == ["tensorflow_model_server"])


def _flags(container: dict[str, Any]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in container["args"])


def _mount_of(container: dict[str, Any], volume: str) -> dict[str, Any] | None:
    return next((m for m in container.get("volumeMounts", []) if m["name"] == volume), None)


# --- item 11: no fixed replicas beside an HPA -------------------------------------------------------

@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_no_hpa_target_has_fixed_replicas(renders, profile: str, channel: str) -> None:
    """Every HPA's target leaves spec.replicas to the HPA (Kubernetes HPA docs, 'Migrating Deployments
    and StatefulSets to horizontal autoscaling'): an applied replicas resets the scale on every update."""
    objects = _objects(renders.get(profile, channel).records)
    hpas = [o for (kind, _), o in objects.items() if kind == "HorizontalPodAutoscaler"]
    assert hpas or not renders.config(profile, channel).spec.components.serving.enabled
    for hpa in hpas:
        ref = hpa["spec"]["scaleTargetRef"]
        target = objects[(ref["kind"], ref["name"])]
        assert "replicas" not in target["spec"], f"{ref['kind']} {ref['name']} sets replicas beside its HPA"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


# --- item 2: healthy with no model, picked up without restart ---------------------------------------

@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_model_server_is_healthy_with_no_model(renders, profile: str, channel: str) -> None:
    """No probe asks for a model (REST /v1/models/<name> is 404 until a version loads,
    get_model_status_impl.cc), probes use the server's ports, and the startup probe covers loading the
    models listed at start (server.cc opens the ports only after ServerCore::Create has loaded them)."""
    deployment, _ = _serving(renders, profile, channel)
    server = _server(deployment)
    ports = {p["containerPort"] for p in server["ports"]}
    flags = _flags(server)
    assert {int(flags["port"]), int(flags["rest_api_port"])} == ports
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = server[kind]
        assert "httpGet" not in probe and "exec" not in probe, f"{kind} must not depend on a model: {probe}"
        handler = probe.get("tcpSocket") or probe.get("grpc")
        assert handler and handler["port"] in ports, f"{kind} is not on a server port: {probe}"
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    startup = server["startupProbe"]
    assert startup["tcpSocket"]["port"] == int(flags["rest_api_port"]), "REST opens last in BuildAndStart"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= MODEL_LOAD_S
    assert "initialDelaySeconds" not in server["livenessProbe"], "the startup probe gates liveness"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_model_config_lists_only_models_with_a_version(renders, profile: str, channel: str) -> None:
    """The server's --model_config_file lives in an emptyDir written by the lister (init container once,
    sidecar every LISTER_INTERVAL_S), not a ConfigMap listing models that may have no version
    (server_core.cc waits for every listed model before the ports open), and the server polls it
    (--model_config_file_poll_wait_seconds > 0, server.cc) so a new model is added without a restart."""
    deployment, config = _serving(renders, profile, channel)
    cfg = renders.config(profile, channel)
    pod = deployment["spec"]["template"]["spec"]
    server = _server(deployment)
    flags = _flags(server)
    assert int(flags["model_config_file_poll_wait_seconds"]) == MODEL_CONFIG_POLL_S > 0
    assert int(flags["file_system_poll_wait_seconds"]) == FILE_SYSTEM_POLL_S
    config_dir, config_name = flags["model_config_file"].rsplit("/", 1)
    volume = next(v for v in pod["volumes"] if _mount_of(server, v["name"]) and
                  _mount_of(server, v["name"])["mountPath"] == config_dir)
    assert "emptyDir" in volume and _mount_of(server, volume["name"]).get("readOnly") is True
    writers = [c for c in containers(deployment)
               if c is not server and _mount_of(c, volume["name"]) and not _mount_of(c, volume["name"]).get("readOnly")]
    init = [c for c in pod["initContainers"] if c in writers]
    sidecars = [c for c in pod["containers"] if c in writers]
    assert len(init) == 1 and len(sidecars) == 1
    assert init[0]["command"][-1] == "once" and sidecars[0]["command"][-1] == str(LISTER_INTERVAL_S)
    for lister in (*init, *sidecars):
        assert lister["image"] == cfg.release.images["busybox"].ref
        assert lister["command"][-2] == f"{config_dir}/{config_name}"
        assert _mount_of(lister, "models")["mountPath"] == _mount_of(server, "models")["mountPath"]
    expected = "".join(f"{m.name} {m.base_path or '/models/' + m.name}\n" for m in cfg.spec.components.serving.models)
    assert config["data"]["models"] == expected
    static = [key for key, text in config["data"].items() if text.lstrip().startswith("model_config_list")]
    assert not static, f"the ConfigMap hands the server a fixed model list: {static}"


# --- the lister script, run for real ----------------------------------------------------------------

def _lister(renders) -> str:
    _, config = _serving(renders, "bare-metal", CHANNELS[-1])
    return config["data"]["list-models.sh"]


@dataclass
class Lister:
    """The rendered lister script in a temp dir, run by one shell: `once` (init container) or a loop."""

    argv: list[str]
    env: dict[str, str]
    script: Path
    models: Path
    out: Path
    root: Path

    def once(self) -> None:
        subprocess.run([*self.argv, str(self.script), str(self.models), str(self.out), "once"],
                       check=True, timeout=30, env=self.env)

    def loop(self, every: str) -> subprocess.Popen:
        return subprocess.Popen([*self.argv, str(self.script), str(self.models), str(self.out), every],
                                env=self.env, start_new_session=True)


def _version(base: Path, name: str, complete: bool = True) -> Path:
    version = base / name
    version.mkdir(parents=True)
    if complete:
        (version / "saved_model.pb").write_bytes(b"\x08\x01")
    return version


EMPTY = "model_config_list {\n}\n"


def _listed(name: str, base: Path) -> str:
    return f"  config {{\n    name: '{name}'\n    base_path: '{base}'\n    model_platform: 'tensorflow'\n  }}\n"


def _busybox_env(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """Like the pinned busybox image: every command the script runs is a busybox applet, nothing else on PATH."""
    busybox = shutil.which("busybox")
    if busybox is None:
        reason = "busybox is not installed here: the lister ran with /bin/sh only (apt-get install busybox)"
        print(reason)
        pytest.skip(reason)
    bin_dir = tmp_path / "busybox-bin"
    bin_dir.mkdir()
    for applet in ("sh", "cmp", "mv", "rm", "sleep", "printf", "cat", "echo", "test", "["):
        (bin_dir / applet).symlink_to(busybox)
    return [str(bin_dir / "sh")], {"PATH": str(bin_dir)}


@pytest.fixture(params=["sh", "busybox"])
def lister(request, renders, tmp_path: Path) -> Lister:
    argv, env = ([SH], dict(os.environ)) if request.param == "sh" else _busybox_env(tmp_path)
    script = tmp_path / "list-models.sh"
    script.write_text(_lister(renders))
    root = tmp_path / "models"
    root.mkdir()
    models = tmp_path / "configured"
    models.write_text(f"issue-summarization {root / 'issue-summarization'}\nother {root / 'other'}\n")
    out = tmp_path / "run" / "models.config"
    out.parent.mkdir()
    return Lister(argv, env, script, models, out, root)


def test_lister_writes_an_empty_list_with_no_model(lister: Lister) -> None:
    """No model yet: `model_config_list {}`, which ServerCore loads without waiting (server_core.cc)."""
    lister.once()
    assert lister.out.read_text() == EMPTY
    (lister.root / "issue-summarization").mkdir()  # base path without versions: still nothing to list
    lister.once()
    assert lister.out.read_text() == EMPTY


def test_lister_lists_a_model_once_a_complete_numeric_version_exists(lister: Lister) -> None:
    """Only a directory named by digits is a version (ParseVersionNumber); it must hold saved_model.pb
    (the SavedModel loader's file), so an export still being written is not listed."""
    base = lister.root / "issue-summarization"
    _version(base, "tmp-1")
    _version(base, ".1700000000.partial")
    _version(base, "1700000000", complete=False)
    lister.once()
    assert lister.out.read_text() == EMPTY
    (base / "1700000000" / "saved_model.pb").write_bytes(b"\x08\x01")
    lister.once()
    assert lister.out.read_text() == "model_config_list {\n" + _listed("issue-summarization", base) + "}\n"
    _version(lister.root / "other", "2")
    lister.once()
    assert lister.out.read_text() == ("model_config_list {\n" + _listed("issue-summarization", base)
                                      + _listed("other", lister.root / "other") + "}\n")


def test_lister_replaces_the_file_atomically_and_only_on_change(lister: Lister) -> None:
    """The server re-reads the whole file each poll (server.cc PollFilesystemAndReloadConfig): a new
    config arrives by rename (a new inode, no partial file, no temp file left); an unchanged one is
    not rewritten."""
    lister.once()
    first = lister.out.stat().st_ino
    lister.once()
    assert lister.out.stat().st_ino == first, "unchanged config rewritten"
    _version(lister.root / "issue-summarization", "1")
    lister.once()
    assert lister.out.stat().st_ino != first, "changed config not renamed into place"
    assert sorted(p.name for p in lister.out.parent.iterdir()) == ["models.config"]


def test_lister_sidecar_picks_up_a_new_version_while_running(lister: Lister) -> None:
    """The sidecar loop: a version written while it runs is listed within one interval, no restart."""
    proc = lister.loop("1")
    try:
        deadline = time.monotonic() + 10
        while not lister.out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lister.out.read_text() == EMPTY
        _version(lister.root / "issue-summarization", "1")
        while "issue-summarization" not in lister.out.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "name: 'issue-summarization'" in lister.out.read_text()
        assert proc.poll() is None, "the sidecar exited"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def test_lister_sidecar_stops_at_once_on_sigterm(lister: Lister) -> None:
    """A container's PID 1 ignores a signal it installs no handler for (Linux pid_namespaces(7): "the
    only signals that can be sent to the init process are those for which init has established a
    handler"), and a shell runs its trap only after the foreground command ends. So the sidecar traps
    TERM and sleeps in the background; otherwise every pod stop would wait out the 30 s grace period.
    Here the shell gets TERM mid-interval and must exit 0 at once (an untrapped shell dies by the signal)."""
    proc = lister.loop("30")
    try:
        deadline = time.monotonic() + 10
        while not lister.out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):  # the interval's sleep, if still running
            os.killpg(proc.pid, signal.SIGKILL)


def _model_server_config() -> Any:
    """tensorflow_serving's own ModelServerConfig message (pip install --no-deps tensorflow-serving-api)."""
    try:
        from tensorflow_serving.config import model_server_config_pb2
    except ImportError:
        reason = ("tensorflow_serving's protos are not importable here (pip install --no-deps "
                  "tensorflow-serving-api): the lister's output was checked by its text only")
        print(reason)
        pytest.skip(reason)
    return model_server_config_pb2.ModelServerConfig


def test_lister_output_parses_as_upstreams_model_server_config(lister: Lister) -> None:
    """What the server parses (server.cc ParseProtoTextFile<ModelServerConfig>): the empty list sets the
    model_config_list case with no model (so ServerCore::ReloadConfig takes the ModelConfigList path,
    not 'Taking no action for empty config'), and a listed model carries name, base path and platform."""
    from google.protobuf import text_format

    message = _model_server_config()
    lister.once()
    empty = text_format.Parse(lister.out.read_text(), message())
    assert empty.WhichOneof("config") == "model_config_list" and not empty.model_config_list.config
    _version(lister.root / "issue-summarization", "7")
    lister.once()
    (model,) = text_format.Parse(lister.out.read_text(), message()).model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == (
        "issue-summarization", str(lister.root / "issue-summarization"), "tensorflow")


# --- verify --demo waits as long as the Deployment needs ----------------------------------------------

@pytest.mark.parametrize("channel", CHANNELS)
def test_verify_waits_for_the_deployments_own_pickup_time(renders, channel: str) -> None:
    """verify's wait is derived from the timings the Deployment is rendered with: the lister interval,
    the config poll, the file-system poll (each can take a whole period) plus a model load."""
    deployment, _ = _serving(renders, "bare-metal", channel)
    server = _server(deployment)
    flags = _flags(server)
    sidecar = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c is not server)
    rendered = (int(sidecar["command"][-1]) + int(flags["model_config_file_poll_wait_seconds"])
                + int(flags["file_system_poll_wait_seconds"]))
    assert model_pickup_s() >= rendered + MODEL_LOAD_S


def test_verify_demo_waits_long_enough_for_a_new_model(renders, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that answers only after the pickup time minus one poll still passes (the old 90 s wait
    declared it missing), and one that never answers fails only after the whole pickup time."""
    import installer.verify as verify

    clock = {"now": 0.0}
    monkeypatch.setattr(verify.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(verify, "pause", lambda s: clock.__setitem__("now", clock["now"] + s))
    ready_at = model_pickup_s() - 10

    def status(k, cfg, service="tf-serving"):
        if clock["now"] < ready_at:
            raise verify.CheckFailed("model issue-summarization not AVAILABLE (no versions)")
        return "AVAILABLE"

    monkeypatch.setattr(verify, "_serving_status", status)
    monkeypatch.setattr(verify, "_predict", lambda k, service: "predicted")
    cfg = renders.config("bare-metal", CHANNELS[-1])
    assert verify._loaded_then_predict(None, cfg, "tf-serving") == "predicted"
    assert clock["now"] >= ready_at
    clock["now"], ready_at = 0.0, 10**9
    with pytest.raises(verify.CheckFailed):
        verify._loaded_then_predict(None, cfg, "tf-serving")
    assert clock["now"] > model_pickup_s()


# --- item 11: GPU serving replicas bounded by the GPUs, or said in plan -----------------------------

def _gpu_serving(renders, profile: str, *sets: str):
    return renders.config(profile, CHANNELS[-1], ("spec.components.serving.gpu=true", *sets))


def test_gke_gpu_serving_hpa_is_bounded_by_the_gpu_pool(renders) -> None:
    """On gcp kfinstall makes the GPU pool, so the HPA's ceiling is gpuCount x gpuNodeCount: replicas
    beyond the GPUs would stay Pending (each takes one nvidia.com/gpu)."""
    cfg = _gpu_serving(renders, "gcp", "spec.gcp.gpuCount=1", "spec.gcp.gpuNodeCount=2",
                       "spec.components.serving.maxReplicas=4")
    hpa = _objects(evaluate(cfg))[("HorizontalPodAutoscaler", "tf-serving")]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
    from installer.plan import build_plan

    warnings = [w["message"] for w in build_plan(cfg).as_dict()["warnings"]]
    assert replica_bounds(cfg).note in warnings
    assert "maxReplicas 4 lowered to 2" in replica_bounds(cfg).note


def test_gke_gpu_bounds_edge_cases(renders) -> None:
    """Every replica fits (no note, bounds kept); the floor above the GPUs comes down too; no GPU node:
    one replica (an HPA needs maxReplicas >= 1) and plan says it stays Pending."""
    fits = _gpu_serving(renders, "gcp", "spec.gcp.gpuCount=2", "spec.gcp.gpuNodeCount=2")
    assert replica_bounds(fits) == ReplicaBounds(1, 4, None)
    floor = _gpu_serving(renders, "gcp", "spec.gcp.gpuCount=1", "spec.gcp.gpuNodeCount=2",
                         "spec.components.serving.replicas=3", "spec.components.serving.maxReplicas=5")
    assert (replica_bounds(floor).min_replicas, replica_bounds(floor).max_replicas) == (2, 2)
    assert "(replicas 3 to 2 too)" in str(replica_bounds(floor).note)
    none = _gpu_serving(renders, "gcp", "spec.gcp.gpuNodeCount=0")
    assert (replica_bounds(none).min_replicas, replica_bounds(none).max_replicas) == (1, 1)
    assert "stays Pending" in str(replica_bounds(none).note)


def test_gke_gpu_pool_is_not_time_shared(renders) -> None:
    """The GKE bound counts each GPU once because the pool sets no GPU sharing (gpu_sharing_config);
    if the pool starts sharing GPUs, installer.serving.gke_serving_gpus must count the shares."""
    cfg = _gpu_serving(renders, "gcp")
    pools = [r for r in evaluate(cfg) if r.typ.endswith("NodePool") and r.inputs.get("name") == "gpu-pool"]
    assert pools
    assert "sharing" not in str(pools[0].inputs).lower()


def test_host_gpu_serving_says_in_plan_that_gpus_bound_replicas(renders) -> None:
    """On hosts kfinstall does not know how many GPUs each gpu host has: plan says so (the same note
    the stack computes), and the HPA keeps the configured bounds."""
    cfg = _gpu_serving(renders, "private-gpu")
    from installer.plan import build_plan

    note = replica_bounds(cfg).note
    assert note and "does not know how many GPUs" in note
    assert note in [w["message"] for w in build_plan(cfg).as_dict()["warnings"]]
    assert (replica_bounds(cfg).min_replicas, replica_bounds(cfg).max_replicas) == (
        cfg.spec.components.serving.replicas, cfg.spec.components.serving.max_replicas)
    cpu = renders.config("bare-metal", CHANNELS[-1])
    assert replica_bounds(cpu).note is None and not any(
        "nvidia.com/gpu" in w["message"] for w in build_plan(cpu).as_dict()["warnings"])


def test_plan_text_prints_the_gpu_note(renders, tmp_path: Path) -> None:
    """`kfinstall plan` (text) shows the note on stderr as a warning, as the JSON form lists it."""
    import sys

    cfg = _gpu_serving(renders, "private-gpu")
    kfinstall = Path(sys.executable).parent / "kfinstall"
    done = subprocess.run([str(kfinstall), "plan", "-i", str(cfg.site), "--set", "spec.components.serving.gpu=true"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"warning: {replica_bounds(cfg).note}" in " ".join(done.stderr.split())


def test_lister_script_is_plain_posix_sh() -> None:
    """The sidecar runs busybox sh: no bashisms (arrays, [[ ]], local, ==, $'...')."""
    from installer.serving import LISTER_SCRIPT

    assert not re.search(r"\[\[|\blocal\b|==|\$'|\bdeclare\b|\(\s*\)\s*\{\s*local", LISTER_SCRIPT)
    subprocess.run([SH, "-n"], input=LISTER_SCRIPT, text=True, check=True)
