"""What a user server may reach, read from the rendered z2jh values the way the chart turns them into
the singleuser NetworkPolicy, and the account it runs as.

The chart is never rendered here, so its egress policy is modelled from the upstream template
(jupyterhub/zero-to-jupyterhub-k8s, jupyterhub/templates/singleuser/netpol.yaml and
jupyterhub/templates/_helpers-netpol.tpl; both files are identical at tags 3.3.8, 4.2.0, 4.3.5 and
4.4.0, the versions the channels pin) and evaluated with NetworkPolicy's rules: a connection is allowed
when one egress rule has a peer matching the destination and a port matching (or no ports at all).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, REPO
from test_platform_jupyterhub_values import _chart_files, _hub_values, _merge

from installer.render import plain
from stacks import serving, tensorboard, workspace
from stacks.jupyterhub import KUBEADM_API_PORT, NAMESPACE, USER_SERVICE_ACCOUNT

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
HOST_PROFILES = [p for p in PROFILES if p != "gcp"]
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


def merged_values(rendered: Any) -> dict[str, Any]:
    """kfinstall's values over the pinned chart's own values.yaml, as Helm merges them."""
    _, defaults = _chart_files(rendered.cfg.release.charts["jupyterhub"].version)
    return _merge(yaml.safe_load(defaults.read_text()), _hub_values(rendered))


def singleuser_egress(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The egress rules of the singleuser NetworkPolicy the chart renders from `values`.

    Order and content follow templates/singleuser/netpol.yaml (hub 8081, proxy 8000, autohttps
    8080/8443, all podSelectors in the release namespace) and renderEgressRules in
    templates/_helpers-netpol.tpl (DNS, nonPrivateIPs with the metadata /32 excepted, privateIPs,
    cloudMetadataServer, then singleuser.networkPolicy.egress verbatim).
    """
    netpol, ip = values["singleuser"]["networkPolicy"], values["singleuser"]["cloudMetadata"]["ip"]
    if not netpol["enabled"]:
        return [{}]  # no policy object at all: everything is allowed
    allow = netpol["egressAllowRules"]
    component = "app.kubernetes.io/component"  # stands in for z2jh's component label
    rules: list[dict[str, Any]] = [
        {"to": [{"podSelector": {"matchLabels": {component: "hub"}}}], "ports": [{"port": 8081}]},
        {"to": [{"podSelector": {"matchLabels": {component: "proxy"}}}], "ports": [{"port": 8000}]},
        {"to": [{"podSelector": {"matchLabels": {component: "autohttps"}}}], "ports": [{"port": 8080}, {"port": 8443}]},
    ]
    dns_peers: list[dict[str, Any]] = []
    if allow["dnsPortsCloudMetadataServer"]:
        dns_peers.append({"ipBlock": {"cidr": f"{ip}/32"}})
    if allow["dnsPortsKubeSystemNamespace"]:
        dns_peers.append({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}})
    if allow["dnsPortsPrivateIPs"]:
        dns_peers += [{"ipBlock": {"cidr": cidr}} for cidr in PRIVATE]
    if dns_peers:
        rules.append({"to": dns_peers, "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]})
    if allow["nonPrivateIPs"]:
        rules.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [*PRIVATE, f"{ip}/32"]}}]})
    if allow["privateIPs"]:
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in PRIVATE]})
    if allow["cloudMetadataServer"]:
        rules.append({"to": [{"ipBlock": {"cidr": f"{ip}/32"}}]})
    return rules + list(netpol.get("egress") or [])


@dataclass(frozen=True)
class Destination:
    """Where a connection goes after kube-proxy's DNAT: an address, or a pod in a namespace."""

    port: int
    ip: str | None = None
    namespace: str | None = None
    pod_labels: dict[str, str] = field(default_factory=dict)
    protocol: str = "TCP"


def _labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in (selector.get("matchLabels") or {}).items())


def _peer_matches(peer: dict[str, Any], dest: Destination) -> bool:
    if "ipBlock" in peer:
        if dest.ip is None:
            return False  # pod IPs of the cluster network are outside what these tests ask
        address = ipaddress.ip_address(dest.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except") or [])
    if dest.namespace is None:
        return False
    namespace = peer.get("namespaceSelector")
    in_namespace = (_labels_match(namespace, {"kubernetes.io/metadata.name": dest.namespace})
                    if namespace is not None else dest.namespace == NAMESPACE)
    return in_namespace and _labels_match(peer.get("podSelector") or {}, dest.pod_labels)


def allows(rules: list[dict[str, Any]], dest: Destination) -> bool:
    for rule in rules:
        ports = rule.get("ports")
        port_ok = not ports or any(p.get("port") == dest.port and p.get("protocol", "TCP") == dest.protocol
                                   for p in ports)
        peers = rule.get("to")
        if port_ok and (not peers or any(_peer_matches(peer, dest) for peer in peers)):
            return True
    return False


def _egress(renders: Any, profile: str, channel: str) -> tuple[Any, list[dict[str, Any]]]:
    rendered = renders.get(profile, channel)
    return rendered, singleuser_egress(merged_values(rendered))


# --- item 1: spawns pass baseline; the metadata address stays closed ------------------------------


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_user_pods_carry_no_privileged_metadata_init_container(renders, profile: str, channel: str) -> None:
    """z2jh adds init container `block-cloud-metadata` (privileged, runAsUser 0, NET_ADMIN) to every
    user pod when singleuser.cloudMetadata.blockWithIptables is true (files/hub/jupyterhub_config.py
    at 3.3.8 line 424 and 4.4.0 line 452), and the image-puller DaemonSet its own
    `image-pull-metadata-block` (templates/image-puller/_helpers-daemonset.tpl). The chart default is
    true at every pinned tag (values.yaml). Namespace jupyterhub enforces Pod Security baseline, which
    refuses privileged containers and added capabilities beyond its list (NET_ADMIN is not on it), so
    every spawn was refused.
    """
    rendered = renders.get(profile, channel)
    values = merged_values(rendered)
    assert values["singleuser"]["cloudMetadata"]["blockWithIptables"] is False
    ns = next(plain(r.inputs) for r in rendered.kubernetes_objects()
              if r.inputs["kind"] == "Namespace" and r.inputs["metadata"]["name"] == NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_the_metadata_address_stays_blocked_by_the_user_network_policy(renders, profile: str, channel: str) -> None:
    """With the iptables block off, the singleuser NetworkPolicy keeps 169.254.169.254 closed: the
    nonPrivateIPs rule lists cloudMetadata.ip/32 under `except` and cloudMetadataServer (false) adds no
    allow rule (templates/_helpers-netpol.tpl at the pinned tags). The internet stays open, DNS too."""
    rendered, rules = _egress(renders, profile, channel)
    metadata_ip = merged_values(rendered)["singleuser"]["cloudMetadata"]["ip"]
    assert metadata_ip == "169.254.169.254"
    for port in (80, 443, 8080):
        assert not allows(rules, Destination(port=port, ip=metadata_ip)), f"metadata reachable on {port}"
    assert allows(rules, Destination(port=443, ip="198.51.100.7")), "public addresses must stay reachable"
    assert allows(rules, Destination(port=53, protocol="UDP", namespace="kube-system",
                                     pod_labels={"k8s-app": "kube-dns"}))


def test_the_policy_model_sees_each_way_the_metadata_address_could_open(renders) -> None:
    """The two guard tests above passed before the fix too (z2jh's defaults already blocked it), so this
    shows they can fail: each value that would open 169.254.169.254:80 is seen as opening it."""
    values = merged_values(renders.get("bare-metal", CHANNELS[-1]))
    metadata = Destination(port=80, ip=values["singleuser"]["cloudMetadata"]["ip"])
    assert not allows(singleuser_egress(values), metadata)
    for change in ({"egressAllowRules": {"cloudMetadataServer": True}}, {"enabled": False},
                   {"egress": [{"to": [{"ipBlock": {"cidr": "169.254.0.0/16"}}]}]}):
        opened = _merge(values, {"singleuser": {"networkPolicy": change}})
        assert allows(singleuser_egress(opened), metadata), change


@pytest.mark.parametrize("profile", HOST_PROFILES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_hosts_run_calico_which_enforces_network_policy(renders, profile: str, channel: str) -> None:
    """A NetworkPolicy only acts where the CNI enforces it. On kubeadm hosts kfinstall installs Calico
    (kubernetes.cni, the only choice in the model; the channel pins its version; the kubernetes role
    applies projectcalico/calico's manifests/calico.yaml at that tag), whose Felix agent enforces
    Kubernetes NetworkPolicy, egress included (projectcalico docs, "Get started with Kubernetes
    network policy")."""
    cfg = renders.config(profile, channel)
    assert cfg.spec.kubernetes.cni == "calico"
    assert cfg.release.kubernetes.cni.get("calico"), f"channel {channel} pins no Calico version"
    assert cfg.ansible_vars()["kf_calico_version"] == cfg.release.kubernetes.cni["calico"]
    role_defaults = (REPO / "playbooks/roles/kubernetes/defaults/main.yml").read_text()
    assert "projectcalico/calico/{{ kubernetes_calico_version }}/manifests/calico.yaml" in role_defaults


# --- item 5: the platform's own services and the API server, nothing else private -------------------


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_notebooks_reach_serving_and_tensorboard_only(renders, profile: str, channel: str) -> None:
    """z2jh's singleuser policy allows no private address by default (egressAllowRules.privateIPs
    false in values.yaml at every pinned tag), so tf-serving (8500 gRPC, 8501 REST) in the team
    namespace was unreachable from notebooks: it is opened by namespace + pod labels + port; other
    pods there and other private addresses stay closed. TensorBoard is the hub service
    /services/tensorboard/ behind JupyterHub's proxy (stacks/tensorboard.py admits only the proxy and
    the hub), which user servers reach by z2jh's own rule (templates/singleuser/netpol.yaml:
    singleuser-server --> proxy, port 8000); its pod is not opened to notebooks directly."""
    rendered, rules = _egress(renders, profile, channel)
    components = rendered.cfg.spec.components
    team = workspace.NAMESPACE
    if components.serving.enabled:
        for port in (serving.GRPC_PORT, serving.REST_PORT):
            assert allows(rules, Destination(port=port, namespace=team, pod_labels=dict(serving.SELECTOR)))
        assert not allows(rules, Destination(port=22, namespace=team, pod_labels=dict(serving.SELECTOR)))
    if components.tensorboard.enabled:
        assert allows(rules, Destination(port=8000, namespace=NAMESPACE,
                                         pod_labels={"app.kubernetes.io/component": "proxy"}))
        assert not allows(rules, Destination(port=tensorboard.PORT, namespace=team,
                                             pod_labels=dict(tensorboard.SELECTOR)))
    assert not allows(rules, Destination(port=serving.GRPC_PORT, namespace=team, pod_labels={"app": "other"}))
    assert not allows(rules, Destination(port=serving.REST_PORT, namespace="monitoring",
                                         pod_labels=dict(serving.SELECTOR)))
    assert not allows(rules, Destination(port=serving.REST_PORT, ip="10.1.2.3"))


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_notebooks_reach_the_api_server_behind_the_kubernetes_service(renders, profile: str, channel: str) -> None:
    """In-cluster clients dial the `kubernetes` Service (443); kube-proxy DNATs it to the endpoints,
    and the CNI applies egress policy to the translated address. kubeadm: each control-plane node's
    advertise address (kubeadm-config.yaml.j2 localAPIEndpoint.advertiseAddress, the inventory
    address) on bindPort 6443 (the kubernetes role's kubernetes_api_port). GKE: since March 2022
    nodes and pods reach the control plane over Private Service Connect at an internal address in the
    cluster's VPC, even beside a public endpoint (cloud.google.com/kubernetes-engine/docs/concepts/
    private-service-connect; Google Cloud blog "New control plane connectivity and isolation options
    for your GKE clusters", 2022-12-21), so a private address on 443 must be open, and only 443."""
    rendered, rules = _egress(renders, profile, channel)
    if profile == "gcp":
        public_endpoint = "203.0.113.10"  # the mock engine's GKE endpoint (tests/stacks/test_platform_gcp.py)
        assert allows(rules, Destination(port=443, ip=public_endpoint))
        for psc_endpoint in ("10.128.0.2", "172.16.0.2", "192.168.10.2"):  # wherever the cluster's VPC is
            assert allows(rules, Destination(port=443, ip=psc_endpoint)), psc_endpoint
            assert not allows(rules, Destination(port=6443, ip=psc_endpoint)), "only the API port is opened"
        return
    role_defaults = yaml.safe_load((REPO / "playbooks/roles/kubernetes/defaults/main.yml").read_text())
    assert role_defaults["kubernetes_api_port"] == KUBEADM_API_PORT
    control_plane = rendered.cfg.inventory.in_role("kube_control_plane")
    assert control_plane
    for host in control_plane:
        assert allows(rules, Destination(port=KUBEADM_API_PORT, ip=host.address)), host.address
        if any(ipaddress.ip_address(host.address) in ipaddress.ip_network(cidr) for cidr in PRIVATE):
            assert not allows(rules, Destination(port=22, ip=host.address)), "only the API port is opened"


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_user_servers_run_as_an_account_that_may_only_run_jobs_in_the_team_namespace(
        renders, profile: str, channel: str) -> None:
    """The notebook → TFJob step needs credentials. z2jh passes singleuser.serviceAccountName to
    KubeSpawner.service_account (files/hub/jupyterhub_config.py at 3.3.8 and 4.4.0), and KubeSpawner
    (6.2.0 in chart 3.3.8, 7.0.0 in 4.x; images/hub/requirements.txt) mounts a token only when an
    account is named (kubespawner/objects.py make_pod: automount_service_account_token None and no
    service_account -> False). The account gets one Role in the team namespace: TFJob/PyTorchJob
    create/get/list/watch/delete and reading pods and their logs; no cluster-wide binding, no Secrets."""
    rendered = renders.get(profile, channel)
    if not (rendered.cfg.spec.components.jupyterhub.enabled and rendered.cfg.spec.components.training.enabled):
        pytest.skip(f"{profile} enables no notebook-submitted training")
    assert merged_values(rendered)["singleuser"]["serviceAccountName"] == USER_SERVICE_ACCOUNT
    objects = [plain(r.inputs) for r in rendered.kubernetes_objects()]
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount"
                  and o["metadata"] == {**o["metadata"], "name": USER_SERVICE_ACCOUNT, "namespace": NAMESPACE}]
    assert account.get("automountServiceAccountToken") is not False
    subject = {"kind": "ServiceAccount", "name": USER_SERVICE_ACCOUNT, "namespace": NAMESPACE}
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
                and subject in (o.get("subjects") or [])]
    assert [b["kind"] for b in bindings] == ["RoleBinding"]
    (binding,) = bindings
    assert binding["metadata"]["namespace"] == workspace.NAMESPACE
    (role,) = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == binding["roleRef"]["name"]
               and o["metadata"]["namespace"] == workspace.NAMESPACE]
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    jobs = {("kubeflow.org", r, v) for r in ("tfjobs", "pytorchjobs")
            for v in ("create", "get", "list", "watch", "delete")}
    follow = {("", r, v) for r in ("pods", "pods/log") for v in ("get", "list", "watch")}
    assert granted == jobs | follow
    namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    assert workspace.NAMESPACE in namespaces, "the Role's namespace must be created by kfinstall"
