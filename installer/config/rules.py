"""Cross-field rules of a valid ClusterFile against its channel, inventory and secrets.

Each rule is a small function adding Problems; `check_spec` runs them all so every problem is
reported at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from installer.config import network_rules
from installer.config.addresses import preview
from installer.config.inventory import Inventory
from installer.config.model import ClusterFile
from installer.config.problems import Problems
from installer.config.refusals import refuse
from installer.config.secrets import Secrets
from installer.releases import load_release
from installer.versions import is_version

FILE = "kfinstall.yaml"
Position = Callable[[tuple[str | int, ...]], tuple[int | None, int | None]]


@dataclass(frozen=True)
class Located:
    """A Position that also knows where each key's value came from: kfinstall.yaml (with a line), or
    --set (no line: pointing at the file's nearest key would send the operator to the wrong place)."""

    position: Position
    origin: Callable[[str], str]

    def __call__(self, keys: tuple[str | int, ...]) -> tuple[int | None, int | None]:
        return self.position(keys)


def check_spec(
    cluster: ClusterFile,
    inventory: Inventory | None,
    secrets: Secrets | None,
    problems: Problems,
    position: Position,
    origin: Callable[[str], str] | None = None,
) -> None:
    if origin is not None:
        position = Located(position, origin)
    rules: list[Callable[[], None]] = [
        lambda: _kubernetes_version(cluster, problems, position),
        lambda: _ldap(cluster, secrets, problems, position),
        lambda: _dummy_auth(cluster, problems, position),
        lambda: _gpu_stack(cluster, inventory, problems, position),
        lambda: _storage(cluster, problems, position),
        lambda: _package_mirror(cluster, problems, position),
        lambda: _metallb(cluster, problems, position),
        lambda: _tls(cluster, problems, position),
        lambda: _gcp(cluster, problems, position),
        lambda: _serving(cluster, problems, position),
        lambda: _tensorboard_login(cluster, problems, position),
        lambda: _control_plane_endpoint(cluster, inventory, problems, position),
        lambda: _addresses(cluster, inventory, problems, position),
    ]
    for rule in rules:
        rule()


def _addresses(cluster: ClusterFile, inventory: Inventory | None, problems: Problems, position: Position) -> None:
    """The cluster's ranges against the hosts' addresses (installer/config/network_rules.py)."""
    if inventory is None or cluster.spec.profile == "gcp":
        return
    where = lambda path: _where(position, path)  # noqa: E731 - bound to this site's positions
    network_rules.subnets(cluster, inventory, problems, where)
    network_rules.metallb_pool(cluster, inventory, problems, where)
    network_rules.control_plane_endpoint(cluster, inventory, problems, where)


def _where(position: Position, path: str) -> tuple[str, int | None, int | None]:
    source = position.origin(path) if isinstance(position, Located) else FILE
    line, column = position(_keys(path)) if source == FILE else (None, None)
    return source, line, column


def _keys(path: str) -> tuple[str | int, ...]:
    """spec.networking.metallb.addresses[0] -> ("spec", "networking", "metallb", "addresses", 0)."""
    keys: list[str | int] = []
    for part in path.split("."):
        name, _, index = part.partition("[")
        keys.append(name)
        if index.rstrip("]").isdigit():
            keys.append(int(index.rstrip("]")))
    return tuple(keys)


def _err(problems: Problems, position: Position, path: str, message: str, fix: str, rule: str | None = None) -> None:
    source, line, column = _where(position, path)
    if rule is not None:
        refuse(problems, rule, source, path, message, fix, line=line, column=column)
    else:
        problems.error(source, path, message, fix, line=line, column=column)


def _warn(problems: Problems, position: Position, path: str, message: str, fix: str) -> None:
    source, line, column = _where(position, path)
    problems.warn(source, path, message, fix, line=line, column=column)


def _kubernetes_version(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    version = cluster.spec.kubernetes.version
    if version is None:
        return
    pins = load_release(cluster.spec.channel).kubernetes
    path = "spec.kubernetes.version"
    if not is_version(version):
        fix = f"write a minor such as {pins.default_minor}"
        _err(problems, position, path, f"{preview(version)} is not a version", fix)
    elif not pins.supports(version):
        _err(
            problems,
            position,
            path,
            f"{version} is outside channel {cluster.spec.channel}'s range {pins.min_minor}-{pins.max_minor}",
            f"use a version from {pins.min_minor} to {pins.max_minor}, or another channel (kfinstall channels)",
        )


def _ldap(cluster: ClusterFile, secrets: Secrets | None, problems: Problems, position: Position) -> None:
    auth = cluster.spec.auth
    if auth.type != "ldap":
        return
    required = {
        "url": "ldaps://ldap.example.com:636",
        "bindDn": "cn=jupyterhub,ou=services,dc=example,dc=com",
        "userSearchBase": "ou=people,dc=example,dc=com",
    }
    for key, example in required.items():
        if getattr(auth.ldap, _snake(key)) in (None, ""):
            _err(
                problems,
                position,
                f"spec.auth.ldap.{key}",
                "required when spec.auth.type is ldap",
                f"set spec.auth.ldap.{key}, e.g. {example}",
            )
    # Whenever secrets.yml is there (validate and plan read it when present, up always): the hub
    # would otherwise start and fail every login with an LDAP bind error.
    if secrets is not None and auth.ldap.bind_dn and not secrets.ldap_bind_password.get_secret_value():
        _, dn_line, _ = _where(position, "spec.auth.ldap.bindDn")
        line = secrets.line_of("ldap_bind_password")
        state = "empty" if line is not None else "missing"
        refuse(problems, "ldap-bind-password", "secrets.yml", "ldap_bind_password",
               f"{state}, but spec.auth.ldap.bindDn is set"
               + (f" ({FILE}:{dn_line})" if dn_line is not None else ""),
               "put the bind DN's password in secrets.yml (ldap_bind_password), or remove spec.auth.ldap.bindDn "
               "for anonymous binds", line=line, column=1 if line is not None else None)
    if auth.ldap.url and auth.ldap.url.startswith("ldap://") and not auth.ldap.start_tls:
        _warn(
            problems,
            position,
            "spec.auth.ldap.url",
            "passwords would cross the network in clear text",
            "use ldaps:// or set spec.auth.ldap.startTls: true",
        )


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)


def _dummy_auth(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    if cluster.spec.auth.type == "dummy" and cluster.spec.profile != "lab":
        _err(
            problems,
            position,
            "spec.auth.type",
            "the dummy authenticator is only allowed in the lab profile",
            "use spec.auth.type: ldap with spec.auth.ldap settings",
        )


def _gpu_stack(cluster: ClusterFile, inventory: Inventory | None, problems: Problems, position: Position) -> None:
    gpu, profile = cluster.spec.gpu, cluster.spec.profile
    if gpu.stack == "gke" and profile != "gcp":
        _err(
            problems,
            position,
            "spec.gpu.stack",
            "gke drivers exist only on the gcp profile",
            "use gpu-operator or device-plugin",
        )
    if profile == "gcp" and gpu.enabled and gpu.stack != "gke":
        _err(
            problems,
            position,
            "spec.gpu.stack",
            "on GKE the driver and device plugin are GKE's (one nvidia.com/gpu advertiser per node)",
            "set spec.gpu.stack: gke",
        )
    if inventory is None or profile == "gcp":
        return
    gpu_hosts = inventory.in_role("gpu")
    if gpu.enabled and not gpu_hosts:
        _warn(
            problems,
            position,
            "spec.gpu.enabled",
            "GPU stack enabled but the gpu group is empty",
            "add GPU hosts to the gpu group, or set spec.gpu.enabled: false",
        )
    if not gpu.enabled and gpu_hosts:
        _warn(
            problems,
            position,
            "spec.gpu.enabled",
            f"{len(gpu_hosts)} host(s) in the gpu group but the GPU stack is disabled",
            "set spec.gpu.enabled: true to install drivers and the device plugin",
        )


def _storage(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    storage, profile = cluster.spec.storage, cluster.spec.profile
    backend: dict[str, Any] = {
        "nfs": storage.nfs.enabled,
        "gluster": storage.gluster.enabled,
        "filestore": profile == "gcp",
    }
    if not backend[storage.default_class]:
        _err(
            problems,
            position,
            "spec.storage.defaultClass",
            f"{storage.default_class} is not enabled",
            f"enable spec.storage.{storage.default_class} or choose an enabled backend",
        )
    if profile == "gcp" and (storage.nfs.enabled or storage.gluster.enabled):
        _err(
            problems,
            position,
            "spec.storage",
            "the gcp profile uses Filestore, not host NFS or GlusterFS",
            "set spec.storage.nfs.enabled and spec.storage.gluster.enabled to false",
        )
    _storage_class_names(cluster, problems, position)


# Class names kfinstall gives its own classes on hosts (stacks/storage.py NODE_LOCAL_CLASS).
RESERVED_HOST_CLASSES = ("node-local",)


def _storage_class_names(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    """Two StorageClasses of one name would overwrite each other: the enabled backends' names must differ."""
    storage = cluster.spec.storage
    seen: dict[str, str] = {}
    for backend in ("nfs", "gluster"):
        if not getattr(storage, backend).enabled:
            continue
        path, name = f"spec.storage.{backend}.storageClass", getattr(storage, backend).storage_class
        if name in RESERVED_HOST_CLASSES:
            _err(problems, position, path, f"{name!r} is the node-local class kfinstall makes for Prometheus and "
                 "the hub database", "choose another name, such as nfs or gluster-rwx")
        elif name in seen:
            _err(problems, position, path, f"{name!r} is also {seen[name]}", "give each backend its own class name")
        seen.setdefault(name, path)


def _package_mirror(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    k8s = cluster.spec.kubernetes
    if k8s.package_source == "mirror" and not k8s.package_mirror:
        _err(
            problems,
            position,
            "spec.kubernetes.packageMirror",
            "required when spec.kubernetes.packageSource is mirror",
            "set the base URL of your package mirror, e.g. https://mirror.example.internal/kubernetes",
            rule="package-mirror-required",
        )


def _metallb(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    metallb = cluster.spec.networking.metallb
    if metallb.enabled and not metallb.addresses:
        _err(
            problems,
            position,
            "spec.networking.metallb.addresses",
            "required when MetalLB is enabled",
            "list free addresses on the node network, e.g. [192.0.2.240/28]",
        )
    if metallb.enabled and cluster.spec.profile == "gcp":
        _err(
            problems,
            position,
            "spec.networking.metallb.enabled",
            "MetalLB cannot announce addresses on GCP",
            "set it to false; GKE provides LoadBalancer Services",
        )


def _tls(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    """Every UI over HTTPS at the ingress host; plain HTTP only in the lab profile (issue 12 item 9)."""
    net = cluster.spec.networking
    lab = cluster.spec.profile == "lab"
    if not net.tls.enabled and not lab:
        _err(problems, position, "spec.networking.tls.enabled",
             "only the lab profile may serve UIs over plain HTTP (LDAP passwords would cross the network in clear)",
             "remove spec.networking.tls.enabled: false; cert-manager then issues the UI certificate from the "
             "site CA, or set spec.networking.tls.certFile and keyFile to your own")
    if not net.tls.enabled:
        return
    if (net.tls.cert_file is None) != (net.tls.key_file is None):
        given, missing = ("certFile", "keyFile") if net.tls.key_file is None else ("keyFile", "certFile")
        _err(problems, position, f"spec.networking.tls.{given}", f"given without spec.networking.tls.{missing}",
             f"set spec.networking.tls.{missing} too, or neither (cert-manager then issues one from the site CA)")
    if not net.ingress.enabled:
        _err(problems, position, "spec.networking.ingress.enabled",
             "HTTPS is served by the ingress controller; without it the UIs would be plain HTTP Services",
             "set spec.networking.ingress.enabled: true"
             + ("" if not lab else ", or spec.networking.tls.enabled: false"))
    elif not net.ingress.host:
        _err(problems, position, "spec.networking.ingress.host",
             "required with TLS: the UIs are served only at https://<host>/ (their certificate names it)",
             "set a DNS name that resolves to the ingress controller's address, e.g. ml.example.com"
             + ("" if not lab else ", or spec.networking.tls.enabled: false"))
    if load_release(cluster.spec.channel).ingress_controller == "traefik" and net.ingress.class_name == "nginx":
        _err(problems, position, "spec.networking.ingress.className",
             f"channel {cluster.spec.channel} runs Traefik (ingress-nginx is retired); an IngressClass named nginx "
             "would collide with ingress-nginx's own while an upgrade replaces it",
             "delete the key (the class is then traefik) or choose another name")


def _gcp(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    if cluster.spec.profile == "gcp" and not cluster.spec.gcp.project:
        _err(problems, position, "spec.gcp.project", "required for the gcp profile", "set your GCP project id")


def _serving(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    serving = cluster.spec.components.serving
    if serving.max_replicas < serving.replicas:
        _err(
            problems,
            position,
            "spec.components.serving.maxReplicas",
            f"{serving.max_replicas} is below replicas ({serving.replicas})",
            "raise maxReplicas or lower replicas",
        )
    names = [m.name for m in serving.models]
    for name in sorted({n for n in names if names.count(n) > 1}):
        _err(
            problems,
            position,
            "spec.components.serving.models",
            f"model {name!r} is listed twice",
            "give each model a unique name",
        )
    if serving.gpu and not cluster.spec.gpu.enabled:
        _err(
            problems,
            position,
            "spec.components.serving.gpu",
            "GPU serving needs the GPU stack",
            "set spec.gpu.enabled: true or spec.components.serving.gpu: false",
        )


def _tensorboard_login(cluster: ClusterFile, problems: Problems, position: Position) -> None:
    # TensorBoard has no login of its own; kfinstall serves it only as a JupyterHub service.
    components = cluster.spec.components
    if components.tensorboard.enabled and not components.jupyterhub.enabled:
        _err(
            problems,
            position,
            "spec.components.tensorboard.enabled",
            "TensorBoard is served only behind JupyterHub's login, and JupyterHub is disabled",
            "set spec.components.jupyterhub.enabled: true, or spec.components.tensorboard.enabled: false",
        )


def _control_plane_endpoint(
    cluster: ClusterFile, inventory: Inventory | None, problems: Problems, position: Position
) -> None:
    if inventory is None or cluster.spec.profile == "gcp":
        return
    count = len(inventory.in_role("kube_control_plane"))
    if count >= 3 and not cluster.spec.kubernetes.control_plane_endpoint:
        _err(
            problems,
            position,
            "spec.kubernetes.controlPlaneEndpoint",
            f"{count} control-plane hosts need a shared API address (kube-vip)",
            "set a free IP on the node network as spec.kubernetes.controlPlaneEndpoint",
            rule="control-plane-endpoint-required",
        )
