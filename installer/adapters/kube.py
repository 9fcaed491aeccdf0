"""The only door to a cluster's API: which kubeconfig a site uses, and every kubectl call.

One rule for every profile and every command (the platform phase's Pulumi provider, `verify`,
`backup --cluster`, `upgrade`): a site's cluster is the one in STATE/kubeconfig, never $KUBECONFIG
or ~/.kube/config, so no command can check or change a different cluster from the one `up` deployed
to because of the operator's shell.

Who writes the file: on host-based profiles the hosts phase fetches the admin kubeconfig there
(playbooks/roles/kubernetes: `kf_state_dir`/kubeconfig). On gcp Pulumi's provider is built from the
GKE cluster the program creates, and the file for every other command is written by
`gcloud container clusters get-credentials` with KUBECONFIG naming it (gcp_credentials_command):
gcloud writes the credentials into the file $KUBECONFIG names.

kubectl runs as an argv list (no shell), with a request timeout, a wall-clock timeout and the run's
stop flag (installer.interrupt.run_child: a stop signal kills it and raises Interrupted).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from installer.config.resolved import ClusterConfig
from installer.errors import PreflightError
from installer.interrupt import run_child

KUBECONFIG_NAME = "kubeconfig"
KUBECTL = "kubectl"
REQUEST_TIMEOUT = "30s"  # per API request (kubectl's --request-timeout)
CALL_TIMEOUT_S = 120.0  # the whole kubectl call (a `kubectl cp` of the hub database included)


def kubeconfig_path(cfg: ClusterConfig) -> Path:
    """The site's kubeconfig: STATE/kubeconfig, for every profile ($KUBECONFIG is never read)."""
    return cfg.state_dir / KUBECONFIG_NAME


def gcp_credentials_command(cfg: ClusterConfig) -> str:
    """The gcloud command that writes a GKE site's kubeconfig into kubeconfig_path (gcloud writes the
    credentials into the file $KUBECONFIG names)."""
    gcp = cfg.spec.gcp
    project = shlex.quote(gcp.project) if gcp.project else "PROJECT"
    return (f"KUBECONFIG={shlex.quote(str(kubeconfig_path(cfg)))} gcloud container clusters get-credentials "
            f"{shlex.quote(cfg.name)} --region {shlex.quote(gcp.region)} --project {project}")


def kubeconfig_fix(cfg: ClusterConfig) -> str:
    """How the operator gets the site's kubeconfig when it is missing."""
    if cfg.spec.profile == "gcp":
        return f"after `kfinstall up` created the GKE cluster, run `{gcp_credentials_command(cfg)}`"
    return (f"run `kfinstall up -i {cfg.site}` (the hosts phase writes it, `--only hosts` is enough); for a "
            "cluster kfinstall did not build, copy its admin kubeconfig there")


def missing_kubeconfig(cfg: ClusterConfig) -> str | None:
    """A problem line naming the path and the fix when the site's kubeconfig is not there; else None."""
    path = kubeconfig_path(cfg)
    return None if path.is_file() else f"no kubeconfig at {path}: {kubeconfig_fix(cfg)}"


def kubectl_argv(kubeconfig: Path, *args: str) -> list[str]:
    """One kubectl command as data (for a migration's record or a probe): run it with `run_argv`."""
    return [KUBECTL, "--kubeconfig", str(kubeconfig), *args]


class KubectlFailed(Exception):
    """kubectl exited non-zero or ran out of time; str() is kubectl's own last line (or the timeout)."""

    def __init__(self, args: Sequence[str], said: str) -> None:
        super().__init__(said)
        self.command = f"kubectl {' '.join(args)}"
        self.said = said


def kubectl_problem(minor: str | None = None) -> str | None:
    """A problem line when kubectl is not on PATH (`minor`: the cluster's Kubernetes minor); else None."""
    if shutil.which(KUBECTL) is not None:
        return None
    matching = f" matching the cluster's minor ({minor})" if minor else ""
    return f"{KUBECTL} not found on PATH: install kubectl{matching} from https://dl.k8s.io or your package mirror"


def _binary() -> str:
    found = shutil.which(KUBECTL)
    if found is None:
        raise PreflightError(kubectl_problem() or f"{KUBECTL} not found on PATH")
    return found


def run_argv(argv: Sequence[str], *, stdin: str | None = None, timeout_s: float = CALL_TIMEOUT_S,
             request_timeout: str = REQUEST_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a `kubectl_argv` command: kubectl from PATH, a request timeout, no shell, the run's stop flag.

    The exit status is the caller's to judge. PreflightError when kubectl is not on PATH; Interrupted
    on a stop signal; subprocess.TimeoutExpired after `timeout_s`.
    """
    if not argv or argv[0] != KUBECTL:
        raise ValueError(f"not a kubectl command: {list(argv)[:1]}")
    full = [_binary(), f"--request-timeout={request_timeout}", *argv[1:]]
    return run_child(full, input=stdin, timeout=timeout_s)


def last_words(done: subprocess.CompletedProcess[str]) -> str:
    """kubectl's own explanation of a failure: the last line it wrote (errors come after warnings)."""
    said = (done.stderr or done.stdout or "").strip().splitlines()
    return said[-1] if said else f"exited {done.returncode} with no output"


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig (a site's: `site_kubectl`)."""

    kubeconfig: Path
    request_timeout: str = REQUEST_TIMEOUT
    timeout_s: float = CALL_TIMEOUT_S

    def argv(self, *args: str) -> list[str]:
        return kubectl_argv(self.kubeconfig, *args)

    def call(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run it and return the result whatever the exit status (TimeoutExpired at the timeout)."""
        return run_argv(self.argv(*args), stdin=stdin, timeout_s=self.timeout_s, request_timeout=self.request_timeout)

    def run(self, *args: str, stdin: str | None = None) -> str:
        """stdout; KubectlFailed with kubectl's last line on a non-zero exit or the timeout."""
        try:
            done = self.call(*args, stdin=stdin)
        except subprocess.TimeoutExpired:
            raise KubectlFailed(args, f"no answer within {self.timeout_s:g} s") from None
        if done.returncode != 0:
            raise KubectlFailed(args, last_words(done))
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))

    def raw(self, path: str) -> str:
        """GET an API path (a service proxy included)."""
        return self.run("get", "--raw", path)

    def post(self, path: str, body: dict[str, Any]) -> str:
        """POST a JSON body to an API path (kubectl reads it from a private temporary file)."""
        handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115 - closed below
        try:  # the file kfinstall just made is removed whatever happens, a failed json.dump included
            with handle:
                json.dump(body, handle)
            return self.run("create", "--raw", path, "-f", handle.name)
        finally:
            os.unlink(handle.name)

    def apply(self, objects: list[dict[str, Any]], field_manager: str) -> str:
        """Server-side apply of `objects` under `field_manager` (they are that manager's to own)."""
        return self.run("apply", "--server-side", "--force-conflicts", f"--field-manager={field_manager}", "-f", "-",
                        stdin=yaml.safe_dump_all(objects))


def site_kubectl(cfg: ClusterConfig, request_timeout: str = REQUEST_TIMEOUT) -> Kubectl:
    """kubectl for the site's cluster; PreflightError (exit 3) naming each fix when kubectl or the
    site's kubeconfig is missing. Nothing is asked of the API server here."""
    problems = [p for p in (kubectl_problem(cfg.kubernetes_minor), missing_kubeconfig(cfg)) if p]
    if problems:
        raise PreflightError("no cluster reachable: " + "; ".join(problems))
    return Kubectl(kubeconfig_path(cfg), request_timeout=request_timeout)


# etcd of a kubeadm cluster is a static pod on each control plane (namespace kube-system, label
# component=etcd) whose image carries etcdctl; these are the certificates kubeadm writes for it (the
# etcd_backup role's etcdctl uses the same ones). Reached with `kubectl exec`, so no SSH and no etcdctl
# on the operator's machine.
ETCD_NAMESPACE = "kube-system"
ETCD_SELECTOR = "component=etcd"
ETCDCTL_TLS = ("--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
               "--cert=/etc/kubernetes/pki/etcd/server.crt", "--key=/etc/kubernetes/pki/etcd/server.key")


def etcdctl_args(pod: str, *args: str) -> list[str]:
    """kubectl arguments running `etcdctl ARGS` in the etcd pod `pod` (argv only, no shell)."""
    return ["exec", "-n", ETCD_NAMESPACE, pod, "--", "etcdctl", *ETCDCTL_TLS, *args]
