"""`kfinstall secrets rotate KEY`: a new value for one secret, applied everywhere the platform uses it.

Order, so that a failed run never strands the site:
  1. the new value is written to secrets.yml as KEY_next; KEY (the value the site works with) stays;
  2. the platform phase runs with KEY set to the new value (for the Pulumi passphrase: the stack's
     state is re-encrypted by the pulumi CLI instead);
  3. only when that succeeded does KEY take the new value and KEY_next go.
A run that fails or is stopped between 1 and 3 leaves KEY as it was, so `up` keeps applying the old
value; a re-run of `secrets rotate KEY` applies the same pending value and finishes. The JupyterHub
crypt key is never simply replaced: the old key stays in CryptKeeper.keys (after the new one, which
encrypts) so every auth_state it encrypted can still be read (stacks/jupyterhub.py crypt_keys).

What changes is derived, not listed by hand: the platform program runs under render's mocks with the
key's value replaced by a marker, and every resource whose inputs carry the marker is shown. Secret
values are never shown, logged or recorded: run records scrub the old, the new and pending values.
"""

from __future__ import annotations

import json
import secrets as random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console

from installer import catalogue
from installer.adapters import kube
from installer.config.load import SECRETS_FILE
from installer.config.problems import Problems
from installer.config.resolved import ClusterConfig
from installer.config.secrets import (
    CRYPT_KEY,
    NEXT_SUFFIX,
    NOT_ROTATABLE,
    RETIRED_CRYPT_KEYS,
    ROTATABLE,
    abandon_rotation,
    finish_rotation,
    generated,
    load_secrets,
    new_secret,
    stage_rotation,
)
from installer.errors import KfinstallError, PhaseFailed, PreflightError
from installer.lock import run_lock
from installer.up import UpReport, run_up

PASSPHRASE = "pulumi_passphrase"  # noqa: S105 - a key name
# What a new value does to the people using the site: the part of a rotation no render can show.
EFFECTS: dict[str, str] = {
    "jupyterhub_cookie_secret": "the hub restarts and every user logs in again (z2jh hub.cookieSecret signs the "
                                "hub's cookies); running notebook servers keep running",
    "jupyterhub_crypt_key": "the new key encrypts auth_state from now on; the old key stays in CryptKeeper.keys "
                            f"({RETIRED_CRYPT_KEYS} in secrets.yml) to decrypt what it encrypted",
    "jupyterhub_proxy_secret_token": "the hub and the proxy restart with the new token (z2jh proxy.secretToken); "
                                     "users reconnect once both are back",
    "jupyterhub_tensorboard_api_token": "the hub and TensorBoard's login proxy restart with the new token",
    "grafana_admin_password": "after the platform run kfinstall restarts Grafana, which creates its admin user with "
                              "the new password on the empty database of the chart's default (no persistence)",
    "lab_user_password": "users of the lab's dummy authenticator log in with the new password",
    "ldap_bind_password": "the hub restarts and binds to LDAP with the new password: set it in the directory "
                          "first (or keep both valid until this run succeeded)",
    PASSPHRASE: "Pulumi's stack state and config are re-encrypted with the new passphrase (no Kubernetes object "
                "changes); backups taken before verify and restore only with the old passphrase "
                "(installer/upgrade/manifest.py), so keep the old secrets.yml with them",
}
MAX_VALUE_BYTES = 4096
# Consumers that read the value only when they start and that no chart restarts for it: restarted after the
# platform run. Grafana reads its admin password only when it creates the admin user on an empty database
# (grafana/grafana conf/defaults.ini: "default admin password, can be changed before first start of
# grafana"), and the chart does not roll its pod for a Secret it did not make (admin.existingSecret).
RESTARTS: dict[str, tuple[str, str]] = {"grafana_admin_password": (catalogue.MONITORING.name,
                                                                   "app.kubernetes.io/name=grafana")}


@dataclass
class RotationPlan:
    """What `secrets rotate KEY` will do; no value in it."""

    cluster: str
    key: str
    source: str  # generated | given | pending (an earlier rotation's value, applied again)
    resources: list[str] = field(default_factory=list)
    effect: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "key": self.key, "source": self.source, "resources": list(self.resources),
                "restarts": self.restarts(), "effect": self.effect, "secretsFile": self.secrets_file_steps()}

    def restarts(self) -> list[str]:
        """What is restarted after the platform run, as `Deployment/NAMESPACE/-l SELECTOR`."""
        if self.key not in RESTARTS:
            return []
        namespace, selector = RESTARTS[self.key]
        return [f"Deployment/{namespace}/-l {selector}"]

    def secrets_file_steps(self) -> list[str]:
        steps = [f"{self.key}{NEXT_SUFFIX} holds the new value until the run succeeded",
                 f"then {self.key} takes it and {self.key}{NEXT_SUFFIX} is removed"]
        if self.key == CRYPT_KEY:
            steps.append(f"the old key is added to {RETIRED_CRYPT_KEYS} (decryption only)")
        return steps

    def lines(self) -> list[str]:
        source = {"generated": "a new random value", "given": "the value you gave",
                  "pending": "the new value of the rotation that did not finish"}[self.source]
        out = [f"Rotate {self.key} of cluster {self.cluster} to {source}."]
        if self.key == PASSPHRASE:
            out.append("  Pulumi stack: re-encrypted (pulumi stack change-secrets-provider passphrase)")
        else:
            out.append(f"  platform phase: {len(self.resources)} resource(s) carry it and change:")
            out += [f"    {ident}" for ident in self.resources]
        out += [f"  then restarted (kubectl rollout restart): {ident}" for ident in self.restarts()]
        out.append(f"  effect: {self.effect}")
        out += [f"  secrets.yml: {step}" for step in self.secrets_file_steps()]
        return out


@dataclass
class RotationReport:
    plan: RotationPlan
    result: str
    run: UpReport | None = None
    restarted: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.plan.as_dict(), "result": self.result, "restarted": list(self.restarted),
                **({"run": self.run.as_dict()} if self.run else {})}


def check_key(cfg: ClusterConfig, key: str) -> None:
    """An unknown key is bad input (exit 2); a key this command does not rotate, or one nothing uses, is a
    refusal (exit 3) naming what to do instead."""
    problems = Problems()
    if key not in ROTATABLE and key not in NOT_ROTATABLE:
        shown = key if key.isidentifier() and len(key) <= 40 else "(the KEY argument)"
        problems.error("secrets rotate", shown, "not a secret kfinstall knows",
                       f"give one of: {', '.join(ROTATABLE)}")
        problems.raise_if_errors()
    if key in NOT_ROTATABLE:
        raise PreflightError(f"{key} is not rotated by `secrets rotate`: {NOT_ROTATABLE[key]}")
    if key == "ldap_bind_password" and not cfg.spec.auth.ldap.bind_dn:
        raise PreflightError("nothing uses ldap_bind_password: spec.auth.ldap.bindDn is not set (anonymous bind); "
                             "set bindDn in kfinstall.yaml and run `kfinstall up` instead")
    if cfg.secrets is None:  # load(need_secrets=True) reports it first; kept for callers that did not
        raise PreflightError(f"{SECRETS_FILE} is missing; run `kfinstall init` first")


def plan_rotation(cfg: ClusterConfig, key: str, *, given: bool) -> RotationPlan:
    """What rotating `key` changes: the resources that carry it (derived by rendering with a marker)."""
    check_key(cfg, key)
    assert cfg.secrets is not None
    source = "given" if given else ("pending" if cfg.secrets.pending(key) is not None else "generated")
    resources = [] if key == PASSPHRASE else carriers(cfg, key)
    if key != PASSPHRASE and not resources:
        raise PreflightError(f"nothing on {cfg.name} uses {key} (no resource of the platform carries it); "
                             "there is nothing to rotate")
    return RotationPlan(cfg.name, key, source, resources, EFFECTS[key] + _persistent_grafana(cfg, key))


def _persistent_grafana(cfg: ClusterConfig, key: str) -> str:
    """Grafana reads the admin password only on an empty database: with persistence (the site's monitoring
    values) the restart keeps the old one, and Grafana's own CLI sets it."""
    grafana = cfg.spec.components.monitoring.values.get("grafana")
    persistence = grafana.get("persistence") if isinstance(grafana, dict) else None
    if key != "grafana_admin_password" or not (isinstance(persistence, dict) and persistence.get("enabled")):
        return ""
    return ("; this site keeps Grafana's database (grafana.persistence.enabled), so the admin user keeps the old "
            "password until Grafana's CLI sets it: pipe the Secret monitoring/grafana-admin's admin-password into "
            "`grafana cli admin reset-admin-password --password-from-stdin` in the Grafana pod "
            "(docs/operations.md, Rotating a secret)")


def carriers(cfg: ClusterConfig, key: str) -> list[str]:
    """Ids (Kind/namespace/name, HelmRelease/namespace/release) of the resources a new value of `key` changes:
    the program is rendered as it is and with a random marker in the key's place, and the resources whose
    inputs differ are listed (those carrying the value and those deriving from it, e.g. a restart annotation)."""
    from installer import render

    assert cfg.secrets is not None
    marker = f"kfinstall-rotation-marker-{random.token_hex(8)}"
    before = {rec.urn: _inputs(render, rec) for rec in render.evaluate(cfg)}
    found = []
    for rec in render.evaluate(replace(cfg, secrets=cfg.secrets.rotated(key, marker))):
        if before.get(rec.urn) == _inputs(render, rec):
            continue
        body = render.plain(rec.inputs)
        if rec.typ == render.HELM_RELEASE:
            found.append(f"HelmRelease/{body.get('namespace') or '-'}/{body.get('name') or rec.name}")
        elif rec.is_kubernetes_object:
            meta = body.get("metadata") or {}
            found.append(f"{body.get('kind')}/{meta.get('namespace') or '-'}/{meta.get('name') or rec.name}")
        else:
            found.append(f"{rec.typ}/-/{rec.name}")
    return sorted(set(found))


def _inputs(render: Any, rec: Any) -> str:
    return json.dumps(render.plain(rec.inputs), sort_keys=True, default=str)


def new_value(cfg: ClusterConfig, key: str, given: str | None) -> str:
    """The value to rotate to: the operator's (provided keys), else a pending one, else a new random one."""
    assert cfg.secrets is not None
    if given is not None:
        return given
    return cfg.secrets.pending(key) or new_secret(key)


def run_rotation(cfg: ClusterConfig, plan: RotationPlan, value: str, console: Console, *,
                 confirm: Callable[[str], bool] | None = None, verbosity: int = 0) -> RotationReport:
    """Stage, apply, then finish (module docstring). PreflightError (3) when not confirmed, PhaseFailed (4)
    or Interrupted (130) from the run, each telling that KEY is unchanged and how to finish."""
    assert cfg.secrets is not None
    key = plan.key
    if confirm is not None and not confirm("\n".join([*plan.lines(), f"Rotate {key} now?"])):
        raise PreflightError("not confirmed; nothing was changed")
    from installer.adapters import pulumi as engine

    if key == PASSPHRASE:
        engine.preflight(cfg, kubeconfig=False)  # a refusal (no CLI, no plugin) before secrets.yml is touched
    kubectl = kube.site_kubectl(cfg) if key in RESTARTS else None  # likewise: kubectl and the kubeconfig
    # One lock from before KEY_next is written until KEY takes it: another rotation would write its own
    # KEY_next over this one (and delete it when refused) while this run applies it, and an `up` between the
    # passphrase re-encryption and the new passphrase in secrets.yml would open the stack with the old one.
    with run_lock(cfg.state_dir, f"secrets rotate {key}"):
        return _apply(cfg, plan, value, console, kubectl, verbosity)


def _apply(cfg: ClusterConfig, plan: RotationPlan, value: str, console: Console, kubectl: kube.Kubectl | None,
           verbosity: int) -> RotationReport:
    """Stage, apply, finish, under the caller's lock (run_rotation)."""
    from installer.adapters import pulumi as engine

    assert cfg.secrets is not None
    key = plan.key
    path = cfg.site / SECRETS_FILE
    # This command read secrets.yml before it asked and took the lock: a rotation that finished meanwhile
    # changed it, and applying from the older copy would undo that one (a crypt key dropped from the retired).
    now = load_secrets(path, SECRETS_FILE, Problems())
    if now is None or now.values() != cfg.secrets.values():
        raise PreflightError(f"{SECRETS_FILE} changed since this command read it (another rotation or an edit); "
                             f"nothing was changed: run `kfinstall secrets rotate {key}` again")
    staged_now = cfg.secrets.pending(key) != value
    if staged_now:
        stage_rotation(path, key, value)
    rotated = cfg.secrets.rotated(key, value)
    run: UpReport | None = None
    try:
        if key == PASSPHRASE:
            engine.change_passphrase(cfg, cfg.secrets.pulumi_passphrase.get_secret_value(), value)
        else:
            run = run_up(replace(cfg, secrets=rotated), console, only="platform", verbosity=verbosity, lock=False)
        restarted = restart(kubectl, key) if kubectl is not None else []
    except PreflightError:
        # Refused before anything was applied: a refused command changes nothing, secrets.yml included.
        if staged_now:
            abandon_rotation(path, key, cfg.secrets.pending(key))
        raise
    except KfinstallError as exc:
        exc.message = (f"{exc.message}\n{key} keeps its old value in {SECRETS_FILE} and the site works with it; the "
                       f"new value waits as {key}{NEXT_SUFFIX}: run `kfinstall secrets rotate {key}` again to finish")
        exc.args = (exc.message,)
        raise
    finish_rotation(path, key, rotated)
    return RotationReport(plan, run.result if run is not None else "ok", run, restarted)


def restart(kubectl: kube.Kubectl, key: str) -> list[str]:
    """Restart the Deployments that read `key` only at start (RESTARTS); PhaseFailed naming kubectl's words."""
    namespace, selector = RESTARTS[key]
    try:
        found = kubectl.json("get", "deployments", "-n", namespace, "-l", selector)["items"]
        names = [item["metadata"]["name"] for item in found]
        for name in names:
            kubectl.run("rollout", "restart", f"deployment/{name}", "-n", namespace)
    except kube.KubectlFailed as exc:
        raise PhaseFailed(f"restarting what reads {key}: {exc.command}: {exc.said}") from None
    return [f"Deployment/{namespace}/{name}" for name in names]


def provided_value_problem(key: str, value: str, current: str) -> str | None:
    """Why an operator's value cannot be used (None when it can); never quotes the value."""
    if generated(key):
        return (f"{key} is generated by kfinstall (its consumers need a random value of a set format); "
                "rotate it without --value-file")
    if not value:
        return "the value is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "the value holds a line break or another control character"
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        return f"the value is longer than {MAX_VALUE_BYTES} bytes"
    if value == current:
        return f"the value is the one {key} already has"
    return None
