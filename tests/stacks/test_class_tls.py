"""Class check (issue 12 items 9 and 10): TLS on every exposed UI outside the lab, on a maintained controller.

Upstream facts the checks rest on:
- cert-manager's ingress-shim turns an Ingress annotated `cert-manager.io/cluster-issuer: <name>` into
  a Certificate per `spec.tls` entry, for that entry's hosts, stored in that entry's `secretName` in
  the Ingress's namespace (https://cert-manager.io/docs/usage/ingress/; cert-manager/cert-manager
  pkg/controller/certificate-shim/sync.go). An Ingress can only use a TLS Secret of its own namespace
  (networking.k8s.io/v1 IngressTLS.secretName).
- A CA ClusterIssuer signs with the kubernetes.io/tls Secret `spec.ca.secretName`, read from the
  cluster resource namespace, cert-manager's own by default
  (https://cert-manager.io/docs/configuration/ca/, .../configuration/#cluster-resource-namespace).
- Charts create Ingresses and Services from values (the chart is not rendered here):
  z2jh jupyterhub/templates/ingress.yaml (tags 3.3.8, 4.4.0) copies `ingress.annotations` and
  `ingress.tls` into its Ingress, and jupyterhub/templates/proxy/service.yaml gives proxy-public
  `proxy.service.type` (default LoadBalancer in jupyterhub/values.yaml); kube-prometheus-stack passes
  `grafana.ingress.{annotations,tls,hosts}` to the grafana chart's templates/ingress.yaml
  (kube-prometheus-stack values.yaml 82.18.0: "TLS configuration for grafana Ingress"), and Grafana's
  Service stays `grafana.service.type` (ClusterIP by default).
- ingress-nginx redirects HTTP to HTTPS for an Ingress with TLS unless ssl-redirect is turned off
  (kubernetes.github.io/ingress-nginx user-guide/nginx-configuration/annotations, "Server-side HTTPS
  enforcement through redirect"); Traefik redirects only when an entry point says so
  (doc.traefik.io/traefik/routing/entrypoints/#redirection; traefik/traefik-helm-chart values.yaml
  41.x `ports.web.http.redirections.entryPoint`).
- ingress-nginx was retired in March 2026: no further releases or security fixes ("Ingress NGINX:
  Statement from the Kubernetes Steering and Security Response Committees", kubernetes.io blog,
  2026-01-29; ../shared/research/versions.md "Corrections and additions"). Traefik's kubernetesIngress
  provider serves the same networking.k8s.io/v1 Ingress objects
  (doc.traefik.io/traefik/providers/kubernetes-ingress/).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stackhelpers import CHANNELS, PROFILES, SHARED_SCHEMAS, sample_site

from installer.config.load import load
from installer.releases import load_release
from installer.render import SECRET_SIG_KEY, evaluate, manifest, plain

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
OUTSIDE_LAB = [(p, c) for p, c in MATRIX if p != "lab"]
EXPOSED = ("LoadBalancer", "NodePort")
SHIM_ANNOTATION = "cert-manager.io/cluster-issuer"
RETIRED = "ingress-nginx"
MAINTAINED_FROM = "26.03"  # the first channel released after the retirement statement


def _objects(rendered: Any) -> list[dict[str, Any]]:
    return [manifest(r, rendered.secrets()) for r in rendered.kubernetes_objects()]


def _releases(records: Any) -> dict[str, dict[str, Any]]:
    docs = (plain(r.inputs) for r in records if r.typ == "kubernetes:helm.sh/v3:Release")
    return {doc["name"]: doc for doc in docs}


def _chart_ingresses(releases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The Ingresses z2jh and the grafana subchart create from these values, as their templates write them."""
    found = []
    hub = releases.get("jupyterhub")
    if hub and (hub["values"].get("ingress") or {}).get("enabled"):
        ingress = hub["values"]["ingress"]
        found.append(_ingress("jupyterhub", hub["namespace"], ingress, ingress.get("hosts") or [""]))
    kps = releases.get("kube-prometheus-stack")
    grafana = ((kps or {}).get("values", {}).get("grafana") or {}).get("ingress") or {}
    if kps and grafana.get("enabled"):
        found.append(_ingress("grafana", kps["namespace"], grafana, grafana.get("hosts") or []))
    return found


def _ingress(name: str, ns: str, values: dict[str, Any], hosts: list[str]) -> dict[str, Any]:
    meta = {"name": name, "namespace": ns, "annotations": values.get("annotations") or {}}
    return {"kind": "Ingress", "metadata": meta,
            "spec": {"ingressClassName": values.get("ingressClassName"), "rules": [{"host": h} for h in hosts],
                     "tls": values.get("tls") or []}}


def _ui_ingresses(objects: list[dict[str, Any]], releases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "Ingress"] + _chart_ingresses(releases)


def _tls_problems(ingress: dict[str, Any], objects: list[dict[str, Any]],
                  releases: dict[str, dict[str, Any]]) -> list[str]:
    """Why this Ingress does not serve HTTPS with a certificate something fills, for every host it routes."""
    meta, spec = ingress["metadata"], ingress["spec"]
    where = f"Ingress {meta['namespace']}/{meta['name']}"
    hosts = {rule.get("host") or "" for rule in spec.get("rules") or []}
    covered = {h for entry in spec.get("tls") or [] for h in entry.get("hosts") or []}
    problems = []
    if "" in hosts:
        problems.append(f"{where} routes requests without a host: no certificate can name them")
    if hosts - {""} - covered:
        problems.append(f"{where} has no tls entry for {sorted(hosts - {''} - covered)}")
    issuer = (meta.get("annotations") or {}).get(SHIM_ANNOTATION)
    for entry in spec.get("tls") or []:
        secret = entry.get("secretName")
        if not secret:
            problems.append(f"{where}: a tls entry without secretName")
        elif issuer:
            problems += _issuer_problems(where, issuer, objects, releases)
        elif not _tls_secret(objects, meta["namespace"], secret):
            problems.append(f"{where}: Secret {meta['namespace']}/{secret} is neither written by kfinstall nor "
                            f"filled by cert-manager (no {SHIM_ANNOTATION} annotation)")
    return problems


def _tls_secret(objects: list[dict[str, Any]], namespace: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == name
                 and o["metadata"].get("namespace") == namespace and o.get("type") == "kubernetes.io/tls"), None)


def _issuer_problems(where: str, issuer: str, objects: list[dict[str, Any]],
                     releases: dict[str, dict[str, Any]]) -> list[str]:
    if "cert-manager" not in releases:
        return [f"{where} asks cert-manager for a certificate, and cert-manager is not installed"]
    found = [o for o in objects if o["kind"] == "ClusterIssuer" and o["metadata"]["name"] == issuer]
    if not found:
        return [f"{where} names ClusterIssuer {issuer}, which the platform does not create"]
    ca_secret = (found[0].get("spec", {}).get("ca") or {}).get("secretName")
    namespace = releases["cert-manager"]["namespace"]
    if not ca_secret or not _tls_secret(objects, namespace, ca_secret):
        return [f"ClusterIssuer {issuer}: its CA Secret {namespace}/{ca_secret} (kubernetes.io/tls) is not created"]
    return []


@pytest.mark.parametrize(("profile", "channel"), OUTSIDE_LAB)
def test_every_ui_ingress_serves_tls_for_its_host(renders, profile: str, channel: str) -> None:
    """Outside the lab, JupyterHub and Grafana (and anything else behind an Ingress) are served over HTTPS
    for every host they answer, with a Secret cert-manager fills from the site CA or kfinstall writes."""
    rendered = renders.get(profile, channel)
    objects, releases = _objects(rendered), _releases(rendered.records)
    ingresses = _ui_ingresses(objects, releases)
    names = {i["metadata"]["name"] for i in ingresses}
    assert "jupyterhub" in names, f"JupyterHub is not behind the ingress host on {profile}/{channel}"
    if rendered.cfg.spec.components.monitoring.enabled:
        assert "grafana" in names, f"Grafana is not behind the ingress host on {profile}/{channel}"
    problems = [p for ingress in ingresses for p in _tls_problems(ingress, objects, releases)]
    assert not problems, "\n".join(problems)
    if "grafana" in names:
        # Grafana builds redirects and links from server.root_url; %(protocol)s there is Grafana's own
        # server.protocol (http behind a TLS-terminating ingress), so the public scheme must be written out
        # (grafana/grafana conf/defaults.ini [server] root_url; docs "Configure Grafana", root_url).
        server = releases["kube-prometheus-stack"]["values"]["grafana"]["grafana.ini"]["server"]
        assert server["root_url"].startswith("https://"), server


USAGES_ANNOTATION = "cert-manager.io/usages"
# The usage names cert-manager's API accepts (cert-manager/cert-manager pkg/apis/certmanager/v1/types.go,
# KeyUsage constants, identical at v1.14.5, v1.16.1, v1.20.3, v1.21.1).
CERT_MANAGER_USAGES = {"signing", "digital signature", "content commitment", "key encipherment", "key agreement",
                       "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
                       "server auth", "client auth", "code signing", "email protection", "s/mime",
                       "ipsec end system", "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing",
                       "microsoft sgc", "netscape sgc"}


@pytest.mark.parametrize(("profile", "channel"), OUTSIDE_LAB)
def test_site_ca_certificates_carry_the_server_auth_usage_browsers_require(renders, profile: str,
                                                                           channel: str) -> None:
    """A certificate cert-manager issues for an Ingress carries the serverAuth extended key usage.

    Without `spec.usages` a Certificate gets cert-manager's defaults, "digital signature" and "key
    encipherment", and no extended key usage at all; cert-manager leaves serverAuth out on purpose and says
    macOS browsers then always warn (cert-manager/cert-manager pkg/apis/certmanager/v1/types.go
    DefaultKeyUsages, pkg/util/pki/csr.go KeyUsagesForCertificateOrCertificateRequest, tags v1.14.5 to
    v1.21.1; Apple HT210176: TLS server certificates must contain an EKU with id-kp-serverAuth). The CA
    issuer signs the usages the request names (pkg/issuer/ca). ingress-shim copies the Ingress annotation
    `cert-manager.io/usages` into the Certificate (pkg/controller/certificate-shim/helper.go, same tags).
    """
    rendered = renders.get(profile, channel)
    objects, releases = _objects(rendered), _releases(rendered.records)
    shimmed = [i for i in _ui_ingresses(objects, releases)
               if (i["metadata"].get("annotations") or {}).get(SHIM_ANNOTATION)]
    if not shimmed:
        pytest.skip(f"{profile}/{channel}: no Ingress asks cert-manager for a certificate (operator's own)")
    for ingress in shimmed:
        annotations = ingress["metadata"]["annotations"]
        usages = [u.strip() for u in str(annotations.get(USAGES_ANNOTATION, "")).split(",") if u.strip()]
        where = f"Ingress {ingress['metadata']['namespace']}/{ingress['metadata']['name']}"
        assert "server auth" in usages, f"{where}: {USAGES_ANNOTATION}={usages} has no server auth"
        assert set(usages) <= CERT_MANAGER_USAGES, f"{where}: {sorted(set(usages) - CERT_MANAGER_USAGES)}"


def _chart_services(releases: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(UI Service, type) for the Services the UI charts create, with each chart's default type."""
    services = []
    hub = releases.get("jupyterhub")
    if hub:
        service = (hub["values"].get("proxy") or {}).get("service") or {}
        services.append(("jupyterhub/proxy-public", service.get("type", "LoadBalancer")))
    kps = releases.get("kube-prometheus-stack")
    if kps:
        values = kps["values"]
        services.append(("monitoring/grafana", ((values.get("grafana") or {}).get("service") or {}).get("type",
                                                                                                        "ClusterIP")))
        for part in ("prometheus", "alertmanager"):
            services.append((f"monitoring/{part}", ((values.get(part) or {}).get("service") or {}).get("type",
                                                                                                      "ClusterIP")))
    return services


@pytest.mark.parametrize(("profile", "channel"), OUTSIDE_LAB)
def test_no_ui_is_exposed_over_plain_http_outside_the_lab(renders, profile: str, channel: str) -> None:
    """Only the ingress controller has an address outside the cluster, and it sends plain HTTP to HTTPS.

    A LoadBalancer or NodePort Service in front of a UI would serve it (and the LDAP passwords typed
    into it) in clear beside the HTTPS ingress."""
    rendered = renders.get(profile, channel)
    objects, releases = _objects(rendered), _releases(rendered.records)
    exposed = [f"{o['metadata'].get('namespace')}/{o['metadata']['name']} ({o['spec']['type']})"
               for o in objects if o["kind"] == "Service" and (o.get("spec") or {}).get("type") in EXPOSED]
    exposed += [f"{name} ({kind})" for name, kind in _chart_services(releases) if kind in EXPOSED]
    assert not exposed, f"UIs reachable over plain HTTP on {profile}/{channel}: {exposed}"
    controller = "traefik" if "traefik" in releases else RETIRED
    values = releases[controller]["values"]
    if controller == "traefik":
        redirect = values["ports"]["web"]["http"]["redirections"]["entryPoint"]
        assert redirect["to"] == "websecure" and redirect["scheme"] == "https", redirect
    else:
        config = (values.get("controller") or {}).get("config") or {}
        assert str(config.get("ssl-redirect", "true")).lower() == "true", "ingress-nginx's HTTPS redirect is off"


@pytest.mark.parametrize("channel", CHANNELS)
def test_the_lab_may_stay_plain_http(renders, channel: str) -> None:
    """The one exception the issue allows: the lab profile (no DNS name for an ingress host) serves HTTP."""
    rendered = renders.get("lab", channel)
    releases = _releases(rendered.records)
    assert rendered.cfg.spec.networking.tls.enabled is False
    assert "cert-manager" not in releases
    assert all(not i["spec"]["tls"] for i in _ui_ingresses(_objects(rendered), releases))


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_the_pinned_controller_is_maintained_and_owns_every_ingress(renders, profile: str, channel: str) -> None:
    """26.03 and later run Traefik, not the retired ingress-nginx; older channels keep what they shipped.
    Every UI Ingress names the IngressClass the channel's controller creates, which watches it."""
    rendered = renders.get(profile, channel)
    releases = _releases(rendered.records)
    if load_release(channel).order < load_release(MAINTAINED_FROM).order:
        assert RETIRED in releases and "traefik" not in releases, "channels before 26.03 keep ingress-nginx"
        cls = releases[RETIRED]["values"]["controller"]["ingressClassResource"]["name"]
    else:
        assert RETIRED not in releases and RETIRED not in load_release(channel).charts, (
            f"channel {channel} still pins the retired ingress-nginx")
        traefik = releases["traefik"]["values"]
        cls = traefik["ingressClass"]["name"]
        assert traefik["ingressClass"]["enabled"] is True
        assert traefik["providers"]["kubernetesIngress"]["enabled"] is True
        assert traefik["providers"]["kubernetesIngress"]["ingressClass"] == cls
    classes = {i["spec"]["ingressClassName"] for i in _ui_ingresses(_objects(rendered), releases)}
    assert classes <= {cls}, f"Ingresses name {classes}, the controller creates {cls}"


def _crd_schema(version: str, plural: str) -> dict[str, Any] | None:
    path = SHARED_SCHEMAS / "cert-manager" / version / f"cert-manager.io_{plural}.yaml"
    if not path.is_file():
        return None
    crd = yaml.safe_load(path.read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("channel", CHANNELS)
def test_the_cluster_issuer_fits_the_pinned_cert_manager_crd(renders, channel: str) -> None:
    """The CA ClusterIssuer validates against cert-manager's own CRD at the pinned version."""
    rendered = renders.get("bare-metal", channel)
    issuers = [o for o in _objects(rendered) if o["kind"] == "ClusterIssuer"]
    assert len(issuers) == 1 and issuers[0]["apiVersion"] == "cert-manager.io/v1", issuers
    version = load_release(channel).charts["cert-manager"].version
    schema = _crd_schema(version, "clusterissuers")
    if schema is None:
        pytest.skip(f"cert-manager {version} (channel {channel}): no CRD under {SHARED_SCHEMAS / 'cert-manager'}")
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(issuers[0])]
    assert not errors, errors


def _write_certificate(site: Path, host: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    (site / "ui-tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (site / "ui-tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    (site / "ui-tls.key").chmod(0o600)
    return "ui-tls.crt", "ui-tls.key"


@pytest.mark.parametrize("channel", ["1.9", "26.03.1"])
def test_an_operators_certificate_is_written_into_each_ui_namespace(tmp_path: Path, channel: str) -> None:
    """With certFile/keyFile, kfinstall writes the certificate (the key as a Pulumi secret) where each UI
    Ingress can use it, and installs no cert-manager."""
    site = sample_site("private-gpu", tmp_path)
    cfg = load(site, [f"spec.channel={channel}"])
    assert cfg.spec.networking.ingress.host
    cert, key = _write_certificate(site, cfg.spec.networking.ingress.host)
    cfg = load(site, [f"spec.channel={channel}", f"spec.networking.tls.certFile={cert}",
                      f"spec.networking.tls.keyFile={key}"])
    records = evaluate(cfg)
    objects = [manifest(r, []) for r in records if r.is_kubernetes_object]
    releases = _releases(records)
    assert "cert-manager" not in releases
    ingresses = _ui_ingresses(objects, releases)
    assert ingresses and all(not (i["metadata"].get("annotations") or {}).get(SHIM_ANNOTATION) for i in ingresses)
    problems = [p for ingress in ingresses for p in _tls_problems(ingress, objects, releases)]
    assert not problems, "\n".join(problems)
    assert cfg.tls_material is not None
    key_text = cfg.tls_material.key_pem.get_secret_value()
    tls_secrets = [r for r in records if r.is_kubernetes_object and r.inputs.get("type") == "kubernetes.io/tls"]
    assert tls_secrets
    for record in tls_secrets:
        sent = record.inputs["stringData"]
        key_sent = sent.get("tls.key") if "tls.key" in sent else None
        assert SECRET_SIG_KEY in sent or (isinstance(key_sent, dict) and SECRET_SIG_KEY in key_sent), (
            "the private key must reach Pulumi as a secret")
        assert plain(sent)["tls.key"] == key_text


def test_the_switch_adds_traefik_beside_ingress_nginx_instead_of_replacing_it(renders) -> None:
    """Across 1.11 -> 26.03 no resource keeps its logical name while changing its Kubernetes name: a renamed
    namespace would be a Pulumi replacement (delete of ingress-nginx's namespace tied to Traefik's create),
    while new logical names let Pulumi create Traefik first and delete ingress-nginx's last."""
    def names(channel: str) -> dict[str, str]:
        rendered = renders.get("bare-metal", channel)
        return {r.name: f"{plain(r.inputs).get('kind')}/{plain(r.inputs)['metadata']['name']}"
                for r in rendered.kubernetes_objects() if r.inputs.get("kind") == "Namespace"}

    before, after = names("1.11"), names("26.03")
    renamed = {name: (before[name], after[name]) for name in before.keys() & after.keys()
               if before[name] != after[name]}
    assert not renamed, renamed
    assert "Namespace/ingress-nginx" in before.values() and "Namespace/traefik" in after.values()


@pytest.mark.parametrize("channel", CHANNELS)
def test_cert_manager_installs_its_crds_with_the_key_its_chart_reads(renders, channel: str) -> None:
    """The ClusterIssuer needs cert-manager's CRDs from the chart. `crds.enabled` only exists from the 1.15
    chart on (cert-manager 1.15's release notes); the 1.14 chart (Kubeflow 1.9's pin) reads only
    `installCRDs`, which later charts keep as `crds.enabled` plus `crds.keep` (../shared/schemas/MANIFEST.md,
    cert-manager notes: both keys in both stored versions' defaults and schemas)."""
    values = _releases(renders.get("bare-metal", channel).records)["cert-manager"]["values"]
    assert values.get("installCRDs") is True, values
    version = load_release(channel).charts["cert-manager"].version
    schema = SHARED_SCHEMAS / "cert-manager" / version / "values.yaml"
    if schema.is_file():
        assert "installCRDs" in yaml.safe_load(schema.read_text()), f"cert-manager {version} dropped installCRDs"
