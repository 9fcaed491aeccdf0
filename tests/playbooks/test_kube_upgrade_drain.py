"""An upgrade drains a node that runs users' notebook servers (issue 15 item 8).

Upstream kubectl drain (kubernetes/website docs/user-guide/kubectl/1_5/documents/_generated_drain.md and the
current reference, e.g. werf/werf docs/_includes/reference/cli/werf_kubectl_drain.md, which embeds it):
- "If there are any pods that are neither mirror pods nor managed by a replication controller, replica set,
  daemon set, stateful set, or job, then drain will not delete any pods unless you use --force." JupyterHub's
  KubeSpawner creates each notebook server as a bare pod, so without --force the drain stopped at the first
  worker running a notebook;
- "--grace-period: Period of time in seconds given to each pod to terminate gracefully. If negative, the
  default value specified in the pod will be used": the kernels get SIGTERM and that long to save;
- drain evicts through the Eviction API when the apiserver has it, which honours PodDisruptionBudgets
  (https://kubernetes.io/docs/concepts/workloads/pods/disruptions/): a blocked eviction is retried until
  --timeout, so the timeout must outlast the grace period;
- DaemonSet pods need --ignore-daemonsets; pods with emptyDir need --delete-emptydir-data.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.template import trust_as_template
from role_templar import role_templar, trusted

from installer.upgrade.hops import drain_vars

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "kube_upgrade"


def _drain_argv(extra: dict[str, Any]) -> list[str]:
    [task] = yaml.safe_load((ROLE / "tasks" / "drain.yml").read_text())
    templar = role_templar(ROLE, {"groups": {"kube_control_plane": ["cp1"]}, "inventory_hostname": "n1",
                                  "ansible_facts": {"nodename": "N1"}, **extra})
    return shlex.split(templar.template(trusted(task["ansible.builtin.command"])))


def test_the_drain_takes_notebook_servers_with_the_grace_period_kfinstall_passes() -> None:
    argv = _drain_argv(drain_vars(150))
    assert argv[:4] == ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "drain"]
    assert argv[4] == "n1"
    assert "--force" in argv, "pods no controller owns (notebook servers) stop a drain without --force"
    assert "--grace-period=150" in argv
    assert {"--ignore-daemonsets", "--delete-emptydir-data"} <= set(argv)
    assert "--disable-eviction" not in argv, "PodDisruptionBudgets must hold"


@pytest.mark.parametrize(("grace", "timeout"), [(None, 600), (0, 600), (120, 600), (900, 1200)])
def test_the_drain_timeout_outlasts_the_grace_period(grace: int | None, timeout: int) -> None:
    argv = _drain_argv({} if grace is None else drain_vars(grace))
    assert f"--timeout={timeout}s" in argv
    if grace is None:
        assert "--grace-period=120" in argv, "the role's own default when it runs on its own"


@pytest.mark.parametrize(("grace", "ok"), [("120", True), ("0", True), ("-1", False), ("2m", False)])
def test_the_role_refuses_a_grace_period_that_is_not_whole_seconds(grace: str, ok: bool) -> None:
    checks = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())[0]["ansible.builtin.assert"]["that"]
    wanted = [c for c in checks if "kube_upgrade_drain_grace_period" in c]
    templar = role_templar(ROLE, {"groups": {}, "kf_upgrade_drain_grace_period": grace})
    results = [templar.template(trust_as_template("{{ " + c + " }}")) for c in wanted]
    assert wanted and all(results) is ok
