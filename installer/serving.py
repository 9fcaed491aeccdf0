"""TF Serving's timings, model lister and replica bounds: Pulumi-free, so the Deployment
(stacks.serving), `verify --demo` (how long to wait for a model) and `plan` (the GPU note) share
one definition instead of three copies.

Upstream facts (tensorflow/serving at every tag the channels pin as images.tensorflow-serving in
installer/releases/, the same code at each; tests/stacks/test_class_serving.py names the tags):
* model_servers/server.cc Server::BuildAndStart calls ServerCore::Create before it opens the gRPC
  port and then the REST port; ServerCore::Create (server_core.cc) loads the first config and, for a
  model_config_list, waits in ConnectAdaptersToManagerAndAwaitModelLoads until every listed model
  has a loaded version (servable_state_waiter_timeout defaults to InfiniteDuration, server_core.h).
  A listed model without a version therefore keeps both ports closed for ever.
* An empty `model_config_list {}` loads nothing and waits for nothing (core/servable_state_monitor.cc
  ShouldSendStateReachedNotification: an empty request list is reached at once), so the ports open.
* With --model_config_file_poll_wait_seconds > 0 a thread re-reads the file
  (Server::PollFilesystemAndReloadConfig) and ServerCore::ReloadConfig adds new models of one
  model_config_list to the running server (AddModelsViaModelConfigList, non-first branch): no restart.
* The file-system source looks for versions of a listed model every --file_system_poll_wait_seconds
  (FileSystemStoragePathSource; UpdateConfig does not poll at once); a version is a child directory
  whose name parses as an integer (ParseVersionNumber).
* REST GET /v1/models/<name> answers 404 ("Could not find any versions of model ...",
  get_model_status_impl.cc, http_server.cc ToHTTPStatusCode) until a version is loaded, and the REST
  dispatcher has no model-free health path: probes that must pass with no model use the ports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from installer.config.resolved import ClusterConfig

GRPC_PORT = 8500
REST_PORT = 8501
# The server re-reads its model config this often, and looks for new versions of listed models this often.
MODEL_CONFIG_POLL_S = 30
FILE_SYSTEM_POLL_S = 30
# The lister sidecar rewrites the model config this often.
LISTER_INTERVAL_S = 15
# Time allowed to load one SavedModel (the demo's loads in seconds; larger models take longer).
MODEL_LOAD_S = 120
PROBE_PERIOD_S = 10
# The server opens its ports only after the models already listed at start are loaded.
STARTUP_BUDGET_S = 600

# POSIX sh (busybox): write the text-format ModelServerConfig listing only the configured models that
# already have a complete version: a directory named by digits holding saved_model.pb(txt), the file
# the SavedModel loader requires. Written to a temp file in the same directory and renamed over the
# old one (rename(2) is atomic), so the server never reads half a file; rewritten only on change.
# Usage: sh list-models.sh MODELS_FILE OUT_FILE INTERVAL|once ; MODELS_FILE holds "name base_path" lines.
LISTER_SCRIPT = r"""set -eu
models=$1 out=$2 every=$3
has_version() {
  for v in "$1"/*; do
    case ${v##*/} in ''|*[!0-9]*) continue ;; esac
    if [ -f "$v/saved_model.pb" ] || [ -f "$v/saved_model.pbtxt" ]; then return 0; fi
  done
  return 1
}
render() {
  echo 'model_config_list {'
  while read -r name base; do
    [ -n "$name" ] || continue
    if has_version "$base"; then
      printf "  config {\n    name: '%s'\n    base_path: '%s'\n    model_platform: 'tensorflow'\n  }\n" "$name" "$base"
    fi
  done < "$models"
  echo '}'
}
write() {
  tmp="$out.tmp"
  render > "$tmp"
  if [ -f "$out" ] && cmp -s "$tmp" "$out"; then rm -f "$tmp"; else mv -f "$tmp" "$out"; fi
}
write
[ "$every" = once ] && exit 0
# As a container's PID 1 the shell ignores SIGTERM unless it traps it, and runs a trap only after a
# foreground command ends: without these two lines every pod stop waits out the grace period.
trap 'exit 0' TERM INT
while :; do sleep "$every" & wait $!; write; done
"""


def model_pickup_s() -> int:
    """Longest time from a version written to the models volume to that model answering.

    The lister sees it within one interval, the server re-reads its config within one poll, the
    file-system source finds the version within one poll, then the SavedModel loads.
    """
    return LISTER_INTERVAL_S + MODEL_CONFIG_POLL_S + FILE_SYSTEM_POLL_S + MODEL_LOAD_S


def startup_failure_threshold() -> int:
    return math.ceil(STARTUP_BUDGET_S / PROBE_PERIOD_S)


@dataclass(frozen=True)
class ReplicaBounds:
    """The serving HPA's floor and ceiling, and what plan says about them (None: nothing to say)."""

    min_replicas: int
    max_replicas: int
    note: str | None = None


def gke_serving_gpus(cfg: ClusterConfig) -> int:
    """nvidia.com/gpu the GKE GPU pool advertises: gpuCount x gpuNodeCount. stacks/gcp.py sets no
    gpu_sharing_config (GKE's time sharing), so each GPU is advertised once (time slicing x 1)."""
    gcp = cfg.spec.gcp
    return gcp.gpu_count * gcp.gpu_node_count


def replica_bounds(cfg: ClusterConfig) -> ReplicaBounds:
    """Bound the HPA by the GPUs where kfinstall knows them (gcp), say so in plan where it does not."""
    serving = cfg.spec.components.serving
    low, high = serving.replicas, serving.max_replicas
    if not (serving.enabled and serving.gpu):
        return ReplicaBounds(low, high)
    if cfg.spec.profile == "gcp":
        gpus, gcp = gke_serving_gpus(cfg), cfg.spec.gcp
        if gpus == 0:  # an HPA still needs maxReplicas >= 1
            return ReplicaBounds(1, 1, "spec.components.serving.gpu: the GKE GPU pool has no node "
                                       "(spec.gcp.gpuNodeCount 0), so the serving pod stays Pending; "
                                       "raise gpuNodeCount or set spec.components.serving.gpu: false")
        if high <= gpus:
            return ReplicaBounds(low, high)
        floor = f" (replicas {low} to {gpus} too)" if low > gpus else ""
        note = (f"spec.components.serving.maxReplicas {high} lowered to {gpus}{floor}: each serving replica takes "
                f"one nvidia.com/gpu and the GKE GPU pool has {gpus} (gpuCount {gcp.gpu_count} x gpuNodeCount "
                f"{gcp.gpu_node_count}); notebooks and TFJobs on GPUs leave fewer free, and replicas beyond "
                "the free GPUs stay Pending")
        return ReplicaBounds(min(low, gpus), gpus, note)
    slices = cfg.spec.gpu.time_slicing_replicas
    note = (f"spec.components.serving.gpu: each serving replica takes one nvidia.com/gpu, and kfinstall does not "
            f"know how many GPUs the gpu hosts have: replicas beyond the free GPUs (each GPU counts "
            f"spec.gpu.timeSlicingReplicas = {slices} times) stay Pending; keep "
            f"spec.components.serving.maxReplicas ({high}) at or below that number")
    return ReplicaBounds(low, high, note)
