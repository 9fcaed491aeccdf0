"""JupyterHub (zero-to-jupyterhub chart): LDAP login from the model (dummy only on lab), per-user
volumes on the default StorageClass, GPU spawner profiles, hub secrets as Pulumi secrets.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from installer import catalogue
from installer.config.model import GpuProfile, LdapSpec
from installer.config.resolved import ClusterConfig
from installer.versions import parse
from stacks import serving, tensorboard, workspace
from stacks.base import ComponentArgs, child_opts, helm_release, k, labels, namespace, secret
from stacks.gpu import gpu_pod_settings
from stacks.tls import ingress_tls

NAMESPACE = catalogue.JUPYTERHUB.name
RELEASE = "jupyterhub"
# z2jh 4.x bundles ldapauthenticator 2.x (tls_strategy); 3.x bundles 1.3.2 (use_ssl). Chart majors
# are the boundary (versions.md section 3.1), so the keys follow the channel's chart pin.
LDAP2_FIRST_CHART_MAJOR = 4
# The account every user server runs as (singleuser.serviceAccountName). KubeSpawner mounts its token
# only because it is named (automount_service_account_token None + service_account set); it holds
# nothing but the jobs Role in the team namespace. All notebook users share it.
USER_SERVICE_ACCOUNT = "notebook-user"
JOBS_ROLE = "notebook-jobs"
# kube-apiserver's secure port on kubeadm hosts (playbooks/roles/kubernetes defaults:
# kubernetes_api_port, kubeadm's bindPort). The `kubernetes` Service (443) is DNATed by kube-proxy to
# <advertise address>:6443 of each control-plane node before Calico evaluates the egress policy.
KUBEADM_API_PORT = 6443
GKE_API_PORT = 443
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
# Kubernetes quantity suffixes (the ones installer/config/model.py _QUANTITY admits), in bytes.
QUANTITY_BYTES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
                  "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


@dataclass(frozen=True, kw_only=True)
class JupyterhubArgs(ComponentArgs):
    storage_class: str
    ingress_class: str | None = None
    service_type: str = "LoadBalancer"
    """How proxy-public is exposed without an ingress host (NodePort where no LB controller exists)."""
    jobs_namespace: str | None = None
    """The team namespace (workspace.NAMESPACE) where notebooks submit TFJobs; None: no job access."""
    db_storage_class: str | None = None
    """Class of the hub's SQLite claim (hub.db.pvc.storageClassName); None leaves the chart's unset."""


def _ldap_endpoint(ldap: LdapSpec) -> tuple[str, int, bool]:
    url = urlsplit(ldap.url or "")
    tls = url.scheme == "ldaps"
    return url.hostname or "", url.port or (636 if tls else 389), tls


def ldap_config(ldap: LdapSpec, chart_major: int, bind_password: pulumi.Input[str]) -> dict[str, Any]:
    """LDAPAuthenticator settings: look the user's DN up with the service bind, then bind as the user."""
    host, port, tls = _ldap_endpoint(ldap)
    config: dict[str, Any] = {
        "server_address": host, "server_port": port, "lookup_dn": True,
        "lookup_dn_search_filter": "({login_attr}={login})",
        "lookup_dn_search_user": ldap.bind_dn, "lookup_dn_search_password": bind_password,
        "user_search_base": ldap.user_search_base, "user_attribute": ldap.user_attribute,
        "lookup_dn_user_dn_attribute": "cn",
        # The login name (the uid admin_users lists) stays the JupyterHub username. ldapauthenticator
        # 1.3.2 (chart 3.x) defaults this to True and would rename users to their cn; 2.x defaults
        # to False. Set on every channel so the bundled version's default never decides.
        "use_lookup_dn_username": False,
    }
    if ldap.allowed_groups:
        config["allowed_groups"] = list(ldap.allowed_groups)
    if chart_major >= LDAP2_FIRST_CHART_MAJOR:
        config["tls_strategy"] = "on_connect" if tls else ("before_bind" if ldap.start_tls else "insecure")
    else:
        # 1.3.2 speaks StartTLS whenever use_ssl is false, so a plain ldap:// URL gets StartTLS too.
        config["use_ssl"] = tls
    return config


def _to_pods(selector: dict[str, str], ports: list[int]) -> dict[str, Any]:
    """An egress rule to pods with `selector` in the team namespace, on `ports` only."""
    return {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": workspace.NAMESPACE}},
                    "podSelector": {"matchLabels": dict(selector)}}],
            "ports": [{"port": port, "protocol": "TCP"} for port in ports]}


def api_server_egress(cfg: ClusterConfig) -> list[dict[str, Any]]:
    """Egress to the Kubernetes API server behind the `kubernetes` Service, after its DNAT.

    kubeadm: each control-plane node's advertise address (its inventory address) on 6443; a host
    named by DNS name only falls back to the private ranges on that port. GKE: clusters created since
    March 2022 reach their control plane over Private Service Connect, at an internal address in the
    cluster's VPC even when the cluster also has a public endpoint (GKE docs "About Private Service
    Connect"; Google Cloud blog "New control plane connectivity and isolation options", 2022-12-21).
    That address is not known before the cluster exists, so the private ranges are allowed on 443 only.
    """
    if cfg.spec.profile == "gcp":
        return [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in PRIVATE_RANGES],
                 "ports": [{"port": GKE_API_PORT, "protocol": "TCP"}]}]
    blocks: list[str] = []
    for host in cfg.inventory.in_role("kube_control_plane"):
        try:
            address = ipaddress.ip_address(host.address)
        except ValueError:
            blocks = list(PRIVATE_RANGES)
            break
        blocks.append(f"{address}/{address.max_prefixlen}")
    if not blocks:
        return []
    return [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in dict.fromkeys(blocks)],
             "ports": [{"port": KUBEADM_API_PORT, "protocol": "TCP"}]}]


def notebook_egress(cfg: ClusterConfig, jobs_namespace: str | None) -> list[dict[str, Any]]:
    """What user servers may reach beyond z2jh's own rules: TF Serving and the API server.

    TensorBoard needs no rule: it is the hub service /services/tensorboard/ behind JupyterHub's proxy
    (stacks/tensorboard.py admits only the proxy and the hub), and z2jh's singleuser policy already
    lets user servers reach the proxy on 8000.
    """
    rules = []
    if cfg.spec.components.serving.enabled:
        rules.append(_to_pods(serving.SELECTOR, [serving.GRPC_PORT, serving.REST_PORT]))
    if jobs_namespace:
        rules += api_server_egress(cfg)
    return rules


def jobs_rules() -> list[dict[str, Any]]:
    """Submit and follow training jobs in the team namespace; nothing else (no Secrets, no exec)."""
    return [
        {"apiGroups": ["kubeflow.org"], "resources": ["tfjobs", "pytorchjobs"],
         "verbs": ["create", "get", "list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
    ]


def memory_bytes(quantity: str) -> int:
    """A memory quantity of the model (e.g. 16Gi) in bytes, the form KubeSpawner's mem_limit takes.

    mem_limit/mem_guarantee are JupyterHub's ByteSpecification (jupyterhub/traitlets.py in every
    JupyterHub the pinned charts bundle): an int, or a number with one of K, M, G, T (binary). "16Gi"
    is refused with TraitError when KubeSpawner applies the profile, so every start of that profile
    failed (tests/stacks/test_platform_jupyterhub_profiles.py names the versions read).
    """
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)", quantity)
    if not match or match.group(2) not in QUANTITY_BYTES:
        raise ValueError(f"{quantity!r} is not a Kubernetes memory quantity such as 16Gi")
    return int(Decimal(match.group(1)) * QUANTITY_BYTES[match.group(2)])


def profile_list(profiles: list[GpuProfile], gpus_enabled: bool, gpu_image: str | None,
                 gpu_pod: dict[str, Any]) -> list[dict[str, Any]]:
    """Spawner profiles; GPU ones only when the cluster has a GPU stack (they could never schedule).

    `gpu_pod` is stacks.gpu.gpu_pod_settings: GPU servers tolerate the GPU taint and run under the
    `nvidia` RuntimeClass where containerd's default runtime is runc (KubeSpawner merges
    extra_pod_config into the pod spec: jupyterhub/kubespawner kubespawner/objects.py make_pod).
    """
    out = []
    for index, profile in enumerate(p for p in profiles if gpus_enabled or p.gpus == 0):
        override: dict[str, Any] = {"cpu_limit": profile.cpu, "cpu_guarantee": profile.cpu / 4,
                                    "mem_limit": memory_bytes(profile.memory),
                                    "mem_guarantee": memory_bytes(profile.memory)}
        if profile.gpus:
            override["extra_resource_limits"] = {"nvidia.com/gpu": str(profile.gpus)}
            override["tolerations"] = list(gpu_pod["tolerations"])
            if "runtimeClassName" in gpu_pod:
                override["extra_pod_config"] = {"runtimeClassName": gpu_pod["runtimeClassName"]}
            if gpu_image:
                override["image"] = gpu_image
        out.append({"display_name": profile.name, "slug": profile.name, "default": index == 0,
                    "description": f"{profile.cpu:g} CPU, {profile.memory}, {profile.gpus} GPU",
                    "kubespawner_override": override})
    return out


def crypt_keys(cfg: ClusterConfig) -> list[pulumi.Output[str]]:
    """CryptKeeper.keys: the first key encrypts auth_state, every key decrypts it (JupyterHub's MultiFernet,
    jupyterhub/crypto.py), so keys a rotation retired stay until no stored auth_state needs them."""
    if cfg.secrets is None:
        return [secret(cfg, "jupyterhub_crypt_key")]
    return [pulumi.Output.secret(key) for key in cfg.secrets.crypt_keys()]


class Jupyterhub(pulumi.ComponentResource):
    """The hub, its proxy and user servers in namespace `jupyterhub`."""

    def __init__(self, name: str, args: JupyterhubArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Jupyterhub", name, None, opts)
        self._name, self._args = name, args
        ns = namespace(self, args, f"{name}-ns", catalogue.JUPYTERHUB)
        spec = args.cfg.spec.components.jupyterhub
        jobs_access = self._jobs_access(ns) if args.jobs_namespace else []
        self.release = helm_release(self, args, RELEASE, ns=NAMESPACE, computed=self._values(), overrides=spec.values,
                                    depends_on=[ns, *jobs_access, *args.depends_on])
        self.register_outputs({"namespace": NAMESPACE, "release": RELEASE})

    def _jobs_access(self, ns: pulumi.Resource) -> list[pulumi.Resource]:
        """The user servers' ServiceAccount and its Role in the team namespace (TFJob/PyTorchJob)."""
        args, jobs_ns = self._args, self._args.jobs_namespace
        meta = {"labels": labels("jupyterhub")}
        account = k8s.core.v1.ServiceAccount(
            f"{self._name}-user-sa", metadata=k({**meta, "name": USER_SERVICE_ACCOUNT, "namespace": NAMESPACE}),
            opts=child_opts(self, args, [ns]))
        role = k8s.rbac.v1.Role(
            f"{self._name}-jobs-role", metadata=k({**meta, "name": JOBS_ROLE, "namespace": jobs_ns}),
            rules=k(jobs_rules()), opts=child_opts(self, args, args.depends_on))
        binding = k8s.rbac.v1.RoleBinding(
            f"{self._name}-jobs-binding", metadata=k({**meta, "name": JOBS_ROLE, "namespace": jobs_ns}),
            role_ref=k({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": JOBS_ROLE}),
            subjects=k([{"kind": "ServiceAccount", "name": USER_SERVICE_ACCOUNT, "namespace": NAMESPACE}]),
            opts=child_opts(self, args, [role, account]))
        return [account, role, binding]

    def _chart_major(self) -> int:
        return parse(self._args.cfg.release.charts["jupyterhub"].version)[0]

    def _auth(self) -> dict[str, Any]:
        cfg = self._args.cfg
        auth = cfg.spec.auth
        config: dict[str, Any] = {"Authenticator": {"admin_users": list(auth.admins), "enable_auth_state": True},
                                  "CryptKeeper": {"keys": crypt_keys(cfg)}}
        if auth.type == "dummy":
            # Rules allow dummy only on the lab profile; this guard keeps a bypass of the loader safe.
            if cfg.spec.profile != "lab":
                raise ValueError("the dummy authenticator is only allowed in the lab profile")
            config["JupyterHub"] = {"authenticator_class": "dummy"}
            config["DummyAuthenticator"] = {"password": secret(cfg, "lab_user_password")}
            self._allow_all(config)
            return config
        config["JupyterHub"] = {"authenticator_class": "ldapauthenticator.LDAPAuthenticator"}
        config["LDAPAuthenticator"] = ldap_config(auth.ldap, self._chart_major(), secret(cfg, "ldap_bind_password"))
        if not auth.ldap.allowed_groups:
            self._allow_all(config)
        return config

    def _allow_all(self, config: dict[str, Any]) -> None:
        # JupyterHub 5 (chart 4.x) admits nobody unless told; JupyterHub 4 (chart 3.x) admits every
        # authenticated user and does not know the option.
        if self._chart_major() >= LDAP2_FIRST_CHART_MAJOR:
            config["Authenticator"]["allow_all"] = True

    def _values(self) -> dict[str, Any]:
        cfg = self._args.cfg
        spec = cfg.spec.components.jupyterhub
        gpu_pin = cfg.release.images.get("notebook-gpu")
        singleuser: dict[str, Any] = {
            "storage": {"type": "dynamic", "capacity": spec.storage_size,
                        "dynamic": {"storageClass": self._args.storage_class}},
            "profileList": profile_list(list(spec.profiles), cfg.spec.gpu.enabled,
                                        gpu_pin.ref if gpu_pin else None, gpu_pod_settings(cfg)),
            "networkPolicy": {"egress": notebook_egress(cfg, self._args.jobs_namespace)},
        }
        cpu_pin = cfg.release.images.get("notebook")
        if cpu_pin:
            # The demo is TensorFlow: CPU profiles get docker-stacks' tensorflow-notebook, not z2jh's sample.
            singleuser["image"] = {"name": cpu_pin.image, "tag": cpu_pin.tag}
        if self._args.jobs_namespace:
            singleuser["serviceAccountName"] = USER_SERVICE_ACCOUNT
        values: dict[str, Any] = {
            "proxy": {"secretToken": secret(cfg, "jupyterhub_proxy_secret_token")},
            "hub": {"cookieSecret": secret(cfg, "jupyterhub_cookie_secret"), "config": self._auth()},
            "singleuser": singleuser,
        }
        if self._args.db_storage_class:
            # SQLite on a block or node-local disk, not the NFS home class (stacks/storage.py volume_classes).
            values["hub"]["db"] = {"pvc": {"storageClassName": self._args.db_storage_class}}
        host = cfg.spec.networking.ingress.host
        if host and self._args.ingress_class:
            tls = ingress_tls(cfg)  # HTTPS for the host (stacks/tls.py); z2jh copies both into its Ingress
            values["ingress"] = {"enabled": True, "ingressClassName": self._args.ingress_class, "hosts": [host],
                                 "annotations": tls["annotations"], "tls": tls["tls"]}
            values["proxy"]["service"] = {"type": "ClusterIP"}
        else:
            values["proxy"]["service"] = {"type": self._args.service_type}
        if cfg.spec.components.tensorboard.enabled:
            # TensorBoard is the hub service `tensorboard`, behind the hub's login (stacks/tensorboard.py).
            values = tensorboard.with_hub_service(values, cfg)
        return values
