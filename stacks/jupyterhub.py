"""JupyterHub (zero-to-jupyterhub chart): LDAP login from the model (dummy only on lab), per-user
volumes on the default StorageClass, GPU spawner profiles, hub secrets as Pulumi secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pulumi

from installer.config.model import GpuProfile, LdapSpec
from installer.versions import parse
from stacks.base import ComponentArgs, helm_release, namespace, secret

NAMESPACE = "jupyterhub"
RELEASE = "jupyterhub"
# z2jh 4.x bundles ldapauthenticator 2.x (tls_strategy); 3.x bundles 1.3.2 (use_ssl). Chart majors
# are the boundary (versions.md section 3.1), so the keys follow the channel's chart pin.
LDAP2_FIRST_CHART_MAJOR = 4
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True, kw_only=True)
class JupyterhubArgs(ComponentArgs):
    storage_class: str
    ingress_class: str | None = None
    service_type: str = "LoadBalancer"
    """How proxy-public is exposed without an ingress host (NodePort where no LB controller exists)."""


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
    }
    if ldap.allowed_groups:
        config["allowed_groups"] = list(ldap.allowed_groups)
    if chart_major >= LDAP2_FIRST_CHART_MAJOR:
        config["tls_strategy"] = "on_connect" if tls else ("before_bind" if ldap.start_tls else "insecure")
    else:
        # 1.3.2 speaks StartTLS whenever use_ssl is false, so a plain ldap:// URL gets StartTLS too.
        config["use_ssl"] = tls
    return config


def profile_list(profiles: list[GpuProfile], gpus_enabled: bool, gpu_image: str | None) -> list[dict[str, Any]]:
    """Spawner profiles; GPU ones only when the cluster has a GPU stack (they could never schedule)."""
    out = []
    for index, profile in enumerate(p for p in profiles if gpus_enabled or p.gpus == 0):
        override: dict[str, Any] = {"cpu_limit": profile.cpu, "cpu_guarantee": profile.cpu / 4,
                                    "mem_limit": profile.memory, "mem_guarantee": profile.memory}
        if profile.gpus:
            override["extra_resource_limits"] = {"nvidia.com/gpu": str(profile.gpus)}
            override["tolerations"] = [GPU_TOLERATION]
            if gpu_image:
                override["image"] = gpu_image
        out.append({"display_name": profile.name, "slug": profile.name, "default": index == 0,
                    "description": f"{profile.cpu:g} CPU, {profile.memory}, {profile.gpus} GPU",
                    "kubespawner_override": override})
    return out


class Jupyterhub(pulumi.ComponentResource):
    """The hub, its proxy and user servers in namespace `jupyterhub`."""

    def __init__(self, name: str, args: JupyterhubArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("kfinstall:platform:Jupyterhub", name, None, opts)
        self._name, self._args = name, args
        ns = namespace(self, args, f"{name}-ns", NAMESPACE, level="baseline", component="jupyterhub")
        spec = args.cfg.spec.components.jupyterhub
        self.release = helm_release(self, args, RELEASE, ns=NAMESPACE, computed=self._values(), overrides=spec.values,
                                    depends_on=[ns, *args.depends_on])
        self.register_outputs({"namespace": NAMESPACE, "release": RELEASE})

    def _chart_major(self) -> int:
        return parse(self._args.cfg.release.charts["jupyterhub"].version)[0]

    def _auth(self) -> dict[str, Any]:
        cfg = self._args.cfg
        auth = cfg.spec.auth
        config: dict[str, Any] = {"Authenticator": {"admin_users": list(auth.admins), "enable_auth_state": True},
                                  "CryptKeeper": {"keys": [secret(cfg, "jupyterhub_crypt_key")]}}
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
        values: dict[str, Any] = {
            "proxy": {"secretToken": secret(cfg, "jupyterhub_proxy_secret_token")},
            "hub": {"cookieSecret": secret(cfg, "jupyterhub_cookie_secret"), "config": self._auth()},
            "singleuser": {
                "storage": {"type": "dynamic", "capacity": spec.storage_size,
                            "dynamic": {"storageClass": self._args.storage_class}},
                "profileList": profile_list(list(spec.profiles), cfg.spec.gpu.enabled,
                                            gpu_pin.ref if gpu_pin else None),
            },
        }
        host = cfg.spec.networking.ingress.host
        if host and self._args.ingress_class:
            values["ingress"] = {"enabled": True, "ingressClassName": self._args.ingress_class, "hosts": [host]}
            values["proxy"]["service"] = {"type": "ClusterIP"}
        else:
            values["proxy"]["service"] = {"type": self._args.service_type}
        return values
