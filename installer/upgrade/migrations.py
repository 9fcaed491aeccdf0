"""Per-hop migrations: named, pure where possible, each tested on its own.

A platform hop lists the migrations it needs (`migrations_for`, from the table in migration_table.py:
which migration runs at which channel boundary); the names are what the route, the dry-run and the
run record show. Each migration is a function that computes what to change (values, CRD files,
labels) from data, plus at most one small command builder for the step that runs it
(migration_steps.py). The table's names, MIGRATIONS and migrations_for stay importable from here.
- z2jh-values-3-to-4: JupyterHub chart 3 -> 4 values (versions.md 3.2): slug_scheme escape and the
  old PVC/volume name templates keep home directories, an explicit allow config is required
  (JupyterHub 5 admits nobody otherwise), LDAPAuthenticator 2 option renames, hub.db.upgrade only
  with an external database.
- kube-prometheus-stack-crds: Helm never upgrades crds/, so the target chart's operator CRDs are
  applied first by server-side apply with forced conflicts (versions.md 10.1 rule 9).
- training-operator-standalone: from the channel named in upgrade-rules.yml on, training-operator
  v1 stays installed standalone and its CRDs are never deleted while objects exist (rule 7).
- pod-security-labels: from the channel named in upgrade-rules.yml on, platform namespaces carry
  Pod Security Admission labels; a server-side dry run of the target levels on every existing
  namespace lists the running pods that would violate them, and the hop is refused if any would.
- ingress-nginx-to-traefik: the hop onto the first channel that pins Traefik instead of the retired
  ingress-nginx (Kubernetes Steering and Security Response Committees' statement, kubernetes.io blog
  2026-01-29). Before anything changes, Ingresses only ingress-nginx serves that kfinstall does not
  manage refuse the hop (they would go dark). The order is Pulumi's: the Traefik release is created
  and awaited (helm.v3.Release waits for its resources unless skipAwait), the UI Ingresses, which
  depend on the Networking component, then name Traefik's class, and the ingress-nginx release and
  namespace, gone from the program, are deleted last (Pulumi deletes what a program no longer
  declares after its creates and updates; pulumi/pulumi#9979). The controller Service is new, so its
  LoadBalancer address changes: MetalLB gives one address to two Services only with the
  allow-shared-ip annotation and ports that do not overlap (metallb.io usage, "IP address sharing"),
  and both controllers listen on 80 and 443. The hop records the old address and pauses for DNS. Helm
  waits for a LoadBalancer Service's address (helm/helm pkg/kube/ready.go serviceReady), so a MetalLB pool
  with no free address refuses the hop before any change (Traefik's release would never become ready).
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from installer import catalogue
from installer.catalogue import pod_security_labels
from installer.errors import PreflightError
from installer.releases import Release
from installer.upgrade.migration_table import INGRESS_SWITCH, KPS_CHART, MIGRATIONS, migrations_for  # noqa: F401
from installer.upgrade.rules import UpgradeRules

# ingress-nginx's controller Service: <release>-controller for the release kfinstall names ingress-nginx.
NGINX_NAMESPACE = catalogue.INGRESS["ingress-nginx"].name
NGINX_SERVICE = catalogue.INGRESS_NGINX_SERVICE
# The IngressClass each controller's release creates when spec.networking.ingress.className is empty.
DEFAULT_CLASS = {"ingress-nginx": "nginx", "traefik": "traefik"}
# prometheus-operator's CRDs as shipped in the chart at charts/crds/crds/ (group monitoring.coreos.com).
KPS_CRD_NAMES = tuple(
    f"{plural}.monitoring.coreos.com"
    for plural in (
        "alertmanagerconfigs",
        "alertmanagers",
        "podmonitors",
        "probes",
        "prometheusagents",
        "prometheuses",
        "prometheusrules",
        "scrapeconfigs",
        "servicemonitors",
        "thanosrulers",
    )
)
KPS_CRD_DIR = "charts/crds/crds"
# KubeSpawner 6 names, kept under KubeSpawner 7 so existing users find their volumes.
LEGACY_PVC_TEMPLATE = "claim-{username}{servername}"
LEGACY_VOLUME_TEMPLATE = "volume-{username}{servername}"
EXTERNAL_DB_TYPES = ("mysql", "postgres", "other")


# z2jh 3 -> 4 ---------------------------------------------------------------------------------


def _node(tree: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        child = tree.get(key)
        if not isinstance(child, dict):
            child = {}
            tree[key] = child
        tree = child
    return tree


def z2jh_allow_configured(values: Mapping[str, Any]) -> bool:
    """True when the hub config says who may log in (allow_all, or an allow list of users or groups)."""
    config = (values.get("hub") or {}).get("config") or {}
    for section in config.values():
        if not isinstance(section, dict):
            continue
        if section.get("allow_all") is True or section.get("allowed_users") or section.get("allowed_groups"):
            return True
    return False


def z2jh_values_3_to_4(values: Mapping[str, Any], *, allowed_elsewhere: bool = False) -> dict[str, Any]:
    """Chart 3 values -> chart 4 values for an existing install; PreflightError when unsafe.

    Keeps PVC names and home directories (slug_scheme escape, the KubeSpawner 6 templates, the
    escaped username as subPath for static storage) unless the operator chose otherwise, renames
    the LDAPAuthenticator 2 options, and refuses when nobody would be allowed to log in
    (`allowed_elsewhere`: kfinstall's own chart values already say who may).
    """
    out = copy.deepcopy(dict(values))
    if not (allowed_elsewhere or z2jh_allow_configured(out)):
        raise PreflightError(
            "JupyterHub 5 (chart 4) admits nobody unless told: set hub.config.Authenticator.allow_all: true, "
            "or allowed_users / allowed_groups, in spec.components.jupyterhub.values before this hop"
        )
    spawner = _node(out, "hub", "config", "KubeSpawner")
    spawner.setdefault("slug_scheme", "escape")
    storage = _node(out, "singleuser", "storage")
    if storage.get("type") == "static":
        _node(storage, "static").setdefault("subPath", "{escaped_username}")
    else:
        _node(storage, "dynamic").setdefault("pvcNameTemplate", LEGACY_PVC_TEMPLATE)
        dynamic = _node(storage, "dynamic")
        dynamic.setdefault("volumeNameTemplate", LEGACY_VOLUME_TEMPLATE)
    ldap = out.get("hub", {}).get("config", {}).get("LDAPAuthenticator")
    if isinstance(ldap, dict):
        _ldap_2(ldap)
    db = out.get("hub", {}).get("db")
    if isinstance(db, dict):
        if db.get("type") in EXTERNAL_DB_TYPES:
            db["upgrade"] = True
        else:
            db.pop("upgrade", None)  # sqlite-pvc migrates (and backs itself up) on its own
    return out


def _ldap_2(ldap: dict[str, Any]) -> None:
    """LDAPAuthenticator 1.3 -> 2.0: use_ssl -> tls_strategy, escape_userdn gone, lookup default flipped."""
    if "use_ssl" in ldap:
        ldap.setdefault("tls_strategy", "on_connect" if ldap.pop("use_ssl") else "before_bind")
    ldap.pop("escape_userdn", None)
    if ldap.get("lookup_dn"):
        ldap.setdefault("use_lookup_dn_username", True)  # the 1.3 default; 2.0 defaults to False


# kube-prometheus-stack CRDs ---------------------------------------------------------------------


def kps_crd_source(new: Release) -> dict[str, str]:
    """Where the target chart's CRDs come from: the chart at the target version, folder KPS_CRD_DIR."""
    pin = new.charts[KPS_CHART]
    return {"repository": pin.repository, "chart": pin.chart, "version": pin.version, "path": KPS_CRD_DIR}


def kps_crd_commands(new: Release, workdir: Path, kubeconfig: Path) -> list[list[str]]:
    """The commands that apply the target CRDs by server-side apply before the chart upgrade."""
    source = kps_crd_source(new)
    return [
        [
            "helm",
            "pull",
            source["chart"],
            "--repo",
            source["repository"],
            "--version",
            source["version"],
            "--untar",
            "--untardir",
            str(workdir),
        ],
        [
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "kfinstall",
            "-f",
            str(workdir / source["chart"] / KPS_CRD_DIR),
        ],
    ]


# training-operator kept standalone ---------------------------------------------------------------


def training_crds_to_keep(crd_objects: Mapping[str, int], rules: UpgradeRules) -> list[str]:
    """Guarded CRDs that exist on the cluster (any object count): they are never deleted by a hop."""
    return [name for name in rules.training_operator.guarded_crds if name in crd_objects]


def training_operator_standalone(
    crd_objects: Mapping[str, int], previous_crds: set[str], target_crds: set[str], rules: UpgradeRules
) -> list[str]:
    """The guarded CRDs the hop keeps; PreflightError when it would drop one that holds objects.

    `crd_objects` maps CRD name -> live object count, `previous_crds` / `target_crds` are the CRDs
    the installed and the target platform apply. Pulumi deletes what the old program had and the
    new one lacks, and deleting a CRD deletes its objects: that is what this refuses.
    """
    dropped = [n for n in training_crds_to_keep(crd_objects, rules) if n in previous_crds and n not in target_crds]
    in_use = [n for n in dropped if crd_objects[n] > 0]
    if in_use:
        raise PreflightError(
            "the target platform would delete " + ", ".join(in_use) + " while objects of it exist; "
            "training-operator v1 must stay standalone (TFJob has no Trainer v2 runtime)"
        )
    return sorted(set(training_crds_to_keep(crd_objects, rules)) - set(dropped))


# Pod Security labels -------------------------------------------------------------------------------


def pod_security_dry_run(namespace: str, level: str, kubeconfig: Path) -> list[str]:
    """A server-side dry run: the apiserver answers with a warning per pod that would violate `level`."""
    pairs = [f"{key}={value}" for key, value in pod_security_labels(level).items()]
    return [
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        "label",
        "--dry-run=server",
        "--overwrite",
        "namespace",
        namespace,
        *pairs,
    ]


def pod_security_warnings(stderr: str) -> list[str]:
    """The apiserver's answer to the dry run: one line per pod (or namespace) that would violate."""
    return [line.removeprefix("Warning:").strip() for line in stderr.splitlines() if line.startswith("Warning:")]


# ingress-nginx -> Traefik ------------------------------------------------------------------------


def ingress_list_command(kubeconfig: Path) -> list[str]:
    return ["kubectl", "--kubeconfig", str(kubeconfig), "get", "ingress", "--all-namespaces", "-o", "json"]


def old_address_command(kubeconfig: Path) -> list[str]:
    return ["kubectl", "--kubeconfig", str(kubeconfig), "get", "service", "--namespace", NGINX_NAMESPACE,
            NGINX_SERVICE, "-o", "jsonpath={.status.loadBalancer.ingress[*]['ip','hostname']}"]


def _ingress_class(item: Mapping[str, Any]) -> str | None:
    spec, meta = item.get("spec") or {}, item.get("metadata") or {}
    cls = spec.get("ingressClassName") or (meta.get("annotations") or {}).get("kubernetes.io/ingress.class")
    return str(cls) if cls else None


def stranded_ingresses(listing: Mapping[str, Any], old_class: str, releases: set[str]) -> list[str]:
    """namespace/name of each Ingress only the old controller serves and kfinstall does not manage.

    kfinstall's own are its objects (managed-by kfinstall) and those its Helm releases render (Helm's
    meta.helm.sh/release-name annotation names one of the channel's chart keys, which kfinstall uses
    as release names): the hop moves those to the new class. An Ingress with no class at all is served
    by the default class, which the new controller's IngressClass becomes.
    """
    stranded = []
    for item in listing.get("items") or []:
        if not isinstance(item, Mapping) or _ingress_class(item) != old_class:
            continue
        meta = item.get("metadata") or {}
        if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == "kfinstall":
            continue
        if (meta.get("annotations") or {}).get("meta.helm.sh/release-name") in releases:
            continue
        stranded.append(f"{meta.get('namespace')}/{meta.get('name')}")
    return sorted(stranded)


def ingress_switch_check(listing: Mapping[str, Any], old_class: str, new_class: str, releases: set[str]) -> None:
    """PreflightError when Ingresses of the operator's would stop being served once ingress-nginx is gone."""
    stranded = stranded_ingresses(listing, old_class, releases)
    if stranded:
        raise PreflightError(
            f"ingress-nginx is replaced by Traefik in this hop and serves Ingresses kfinstall does not manage "
            f"(IngressClass {old_class}): {', '.join(stranded)}. Move them to IngressClass {new_class} "
            f"(spec.ingressClassName) or delete them, then run the upgrade again"
        )


def service_list_command(kubeconfig: Path) -> list[str]:
    return ["kubectl", "--kubeconfig", str(kubeconfig), "get", "service", "--all-namespaces", "-o", "json"]


IpRange = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ipaddress.IPv4Address | ipaddress.IPv6Address]


def _pool_ranges(entries: Iterable[str]) -> list[IpRange]:
    """(first, last) of each pool entry: a CIDR or an a-b range (installer.config.model's PoolEntry)."""
    ranges: list[IpRange] = []
    for entry in entries:
        if "-" in entry:
            first, last = (ipaddress.ip_network(part.strip(), strict=False) for part in entry.split("-", 1))
            ranges.append((first.network_address, last.broadcast_address))
        else:
            net = ipaddress.ip_network(entry.strip(), strict=False)
            ranges.append((net.network_address, net.broadcast_address))
    return ranges


def _assigned_addresses(listing: Mapping[str, Any]) -> set[str]:
    """The addresses LoadBalancer Services hold (status.loadBalancer.ingress[].ip)."""
    held = set()
    for item in listing.get("items") or []:
        if not isinstance(item, Mapping) or (item.get("spec") or {}).get("type") != "LoadBalancer":
            continue
        for entry in ((item.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if isinstance(entry, Mapping) and entry.get("ip"):
                held.add(str(entry["ip"]))
    return held


def free_pool_addresses(pool: Iterable[str], services: Mapping[str, Any]) -> int:
    """How many addresses of the MetalLB pool no LoadBalancer Service holds."""
    ranges = _pool_ranges(pool)
    total = sum(int(last) - int(first) + 1 for first, last in ranges if int(last) >= int(first))
    used = 0
    for text in _assigned_addresses(services):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        used += any(first.version == address.version and int(first) <= int(address) <= int(last)
                    for first, last in ranges)
    return total - used


def pool_capacity_check(pool: list[str], services: Mapping[str, Any]) -> None:
    """PreflightError when the MetalLB pool has no address left for Traefik's Service.

    Traefik's LoadBalancer Service is created while ingress-nginx's still holds its address (the old one
    goes last), and helm.v3.Release waits until a LoadBalancer Service has an ingress address (Helm
    pkg/kube/ready.go serviceReady). With a full pool the Traefik release never becomes ready and the
    hop fails after its timeout; caught here, before anything changes.
    """
    if free_pool_addresses(pool, services) >= 1:
        return
    raise PreflightError(
        "ingress switch: MetalLB's pool has no free address for Traefik's Service, which must get one while "
        "ingress-nginx still holds its own (the old controller is removed only after Traefik serves). Add at "
        "least one address to spec.networking.metallb.addresses in kfinstall.yaml (the hop applies the larger "
        "pool), then run the upgrade again"
    )


def ingress_switch_pause(index: int) -> str:
    # Without MetalLB or GKE the controller's Service is a NodePort (stacks/networking.py service_type):
    # Traefik's gets newly allocated node ports, and ingress-nginx's, which the operator's own load balancer
    # points at, are released with it.
    return (f"after hop {index}: the ingress controller's address changes (a new LoadBalancer Service); point "
            "DNS for spec.networking.ingress.host at the address of Service traefik in namespace traefik. Where "
            "that Service is a NodePort (no MetalLB, not GKE), point your load balancer at its new node ports for "
            "80 and 443 instead (`kubectl -n traefik get service traefik`): ingress-nginx's node ports go with it")
