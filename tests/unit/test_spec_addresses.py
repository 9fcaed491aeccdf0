"""kfinstall.yaml's hosts, addresses, endpoints and URLs: one token each, refused (exit 2) otherwise.

These values reach kubeadm's config and certificate SANs, kube-vip, apt sources and chart values.
A problem in a value given with --set points at --set, not at a line of kfinstall.yaml.
"""

from __future__ import annotations

import pytest

from installer.config.load import load
from installer.config.problems import InvalidConfig

PAYLOAD = "{{ lookup('pipe','touch /tmp/kfh5-x') }}"


def refused(site, sets=()) -> list[tuple[str, str, str]]:
    with pytest.raises(InvalidConfig) as caught:
        load(site, sets)
    return [(p.file, p.key, p.message) for p in caught.value.problems if p.severity == "error"]


# (--set key, bad values)
BAD = {
    "spec.kubernetes.controlPlaneEndpoint": [PAYLOAD, "-oProxyCommand=x", "10.0.0.5 6443", "10.0.0.5:99999",
                                             "10.0.0.5;id", "[::1]:6443", "10.0.0.5:"],
    "spec.networking.ingress.host": [PAYLOAD, "hub.example.com/x", "hub example", "-hub", "hub_x.example.com"],
    "spec.kubernetes.packageMirror": [PAYLOAD, "ftp://mirror", "https://mirror.example.com/ x",
                                      "https://-o.example.com", "https://mirror.example.com:0/",
                                      "https://user@mirror.example.com/", "https://mirror/{{x}}"],
    "spec.auth.ldap.url": [PAYLOAD, "ldaps://ldap.example.com:636 x", "ldaps://ldap;id", "ldaps://ldap:99999"],
}
CASES = [(key, value) for key, values in BAD.items() for value in values]


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k.rsplit('.', 1)[1]}-{i}" for i, (k, _) in enumerate(CASES)])
def test_bad_value_from_set_is_refused_naming_set_and_key(make_site, key, value) -> None:
    problems = refused(make_site(), (f"{key}={value}",))
    assert ("--set", key) in [(file, k) for file, k, _ in problems], problems


def test_bad_value_in_the_file_names_its_line(make_site) -> None:
    site = make_site(cluster={"spec.kubernetes": {"controlPlaneEndpoint": PAYLOAD}})
    with pytest.raises(InvalidConfig) as caught:
        load(site)
    [problem] = [p for p in caught.value.problems if p.key == "spec.kubernetes.controlPlaneEndpoint"]
    assert problem.file == "kfinstall.yaml" and problem.line is not None
    assert "is not an IPv4 address or DNS name with an optional :port" in problem.message


@pytest.mark.parametrize(("key", "value"), [
    ("spec.kubernetes.controlPlaneEndpoint", "192.0.2.100"),
    ("spec.kubernetes.controlPlaneEndpoint", "192.0.2.100:8443"),
    ("spec.kubernetes.controlPlaneEndpoint", "api.cluster.example.com"),
    ("spec.networking.ingress.host", "hub.example.com"),
    ("spec.kubernetes.packageMirror", "https://mirror.example.internal/kubernetes"),
    ("spec.kubernetes.packageMirror", "http://10.0.0.2:8080/k8s/"),
    ("spec.auth.ldap.url", "ldaps://ldap.example.com:636"),
    ("spec.auth.ldap.url", "ldap://[2001:db8::5]"),
])
def test_good_values_load(make_site, key, value) -> None:
    cfg = load(make_site(), (f"{key}={value}",))
    assert value in str(cfg.cluster.model_dump(by_alias=True))


def test_rule_problems_from_set_point_at_set(make_site) -> None:
    """Cross-field rules (here the version rule) used to name kfinstall.yaml with a line for a --set value."""
    problems = refused(make_site(), ("spec.kubernetes.version=latest",))
    assert ("--set", "spec.kubernetes.version", "'latest' is not a version") in problems, problems


def test_list_items_from_set_point_at_set(make_site) -> None:
    problems = refused(make_site(), ('spec.networking.metallb.addresses=["192.0.2.999/28"]',))
    assert [(f, k) for f, k, _ in problems] == [("--set", "spec.networking.metallb.addresses[0]")], problems


# A regex's `$` also matches just before a final newline; each check must take the whole value, or
# "lab\n" would name the state dir and the Pulumi stack, and "10Gi\n" would reach a chart's values.
TRAILING_NEWLINE = {
    "metadata.name": "lab\n",
    "spec.components.jupyterhub.storageSize": "10Gi\n",
    "spec.components.serving.modelsStorageSize": "20Gi\n",
    "spec.components.monitoring.storageSize": "50Gi\n",
    "spec.components.monitoring.retention": "15d\n",
    "spec.components.tensorboard.logsStorageSize": "20Gi\n",
    "spec.components.serving.models": [{"name": "issue-summarization\n"}],
    "spec.kubernetes.controlPlaneEndpoint": "10.0.0.5:6443\n",
    "spec.networking.ingress.host": "hub.example.com\n",
}


@pytest.mark.parametrize(("key", "value"), TRAILING_NEWLINE.items(), ids=list(TRAILING_NEWLINE))
def test_a_value_ending_in_a_newline_is_refused(make_site, key, value) -> None:
    problems = refused(make_site(cluster={key: value}))
    assert any(file == "kfinstall.yaml" and k.startswith(key) for file, k, _ in problems), problems


@pytest.mark.parametrize(("key", "value"), [
    ("spec.components.serving.modelsStorageSize", "20 GB"),
    ("spec.components.monitoring.storageSize", "lots"),
    ("spec.components.tensorboard.logsStorageSize", "-1Gi"),
    ("spec.components.monitoring.retention", "15 days"),
])
def test_sizes_and_retention_are_checked(make_site, key, value) -> None:
    """Every volume size reaches a PersistentVolumeClaim and the retention Prometheus' flags: a bad one
    is exit 2 here, not a failed Pulumi update later."""
    problems = refused(make_site(cluster={key: value}))
    assert any(k == key for _, k, _ in problems), problems


def test_good_durations_pass(make_site) -> None:
    load(make_site(cluster={"spec.components.monitoring.retention": "1d12h"}))
