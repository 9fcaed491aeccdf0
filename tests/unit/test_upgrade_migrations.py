"""Per-hop migrations: each named function on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from installer.errors import PreflightError
from installer.releases import load_release
from installer.upgrade.migrations import (
    KPS_CRD_NAMES,
    MIGRATIONS,
    kps_crd_commands,
    kps_crd_source,
    migrations_for,
    pod_security_dry_run,
    pod_security_labels,
    pod_security_warnings,
    training_crds_to_keep,
    training_operator_standalone,
    z2jh_values_3_to_4,
)
from installer.upgrade.rules import load_rules

ALLOW = {"hub": {"config": {"Authenticator": {"allow_all": True}}}}


def test_every_named_migration_is_described() -> None:
    names = {n for a, b in [("1.9", "1.10"), ("1.10", "1.11"), ("1.11", "26.03"), ("26.03", "26.03.1")]
             for n in migrations_for(load_release(a), load_release(b), load_rules())}
    assert names == set(MIGRATIONS)


def test_z2jh_3_to_4_keeps_names_and_home_directories() -> None:
    out = z2jh_values_3_to_4(ALLOW)
    assert out["hub"]["config"]["KubeSpawner"] == {"slug_scheme": "escape"}
    assert out["singleuser"]["storage"]["dynamic"] == {"pvcNameTemplate": "claim-{username}{servername}",
                                                       "volumeNameTemplate": "volume-{username}{servername}"}
    assert "db" not in out["hub"]
    assert ALLOW == {"hub": {"config": {"Authenticator": {"allow_all": True}}}}  # input untouched


def test_z2jh_3_to_4_keeps_the_operators_own_choices() -> None:
    values = {**ALLOW, "singleuser": {"storage": {"type": "static", "static": {"subPath": "home/{username}"}}}}
    values["hub"] = {"config": {"Authenticator": {"allowed_groups": ["ml"]},
                                "KubeSpawner": {"slug_scheme": "safe"}}}
    out = z2jh_values_3_to_4(values)
    assert out["hub"]["config"]["KubeSpawner"]["slug_scheme"] == "safe"
    assert out["singleuser"]["storage"]["static"] == {"subPath": "home/{username}"}


def test_z2jh_3_to_4_static_storage_keeps_the_escaped_subpath() -> None:
    out = z2jh_values_3_to_4({**ALLOW, "singleuser": {"storage": {"type": "static"}}})
    assert out["singleuser"]["storage"]["static"] == {"subPath": "{escaped_username}"}


def test_z2jh_3_to_4_refuses_when_nobody_could_log_in() -> None:
    with pytest.raises(PreflightError, match="JupyterHub 5 \\(chart 4\\) admits nobody unless told"):
        z2jh_values_3_to_4({"hub": {"config": {"LDAPAuthenticator": {"server_address": "ldap"}}}})


def test_z2jh_3_to_4_renames_ldap_options_and_keeps_lookup_usernames() -> None:
    ldap = {"use_ssl": True, "escape_userdn": False, "lookup_dn": True, "server_address": "ldap"}
    out = z2jh_values_3_to_4({"hub": {"config": {"Authenticator": {"allow_all": True}, "LDAPAuthenticator": ldap}}})
    assert out["hub"]["config"]["LDAPAuthenticator"] == {
        "tls_strategy": "on_connect", "lookup_dn": True, "use_lookup_dn_username": True, "server_address": "ldap"}


def test_z2jh_3_to_4_sets_db_upgrade_only_for_an_external_database() -> None:
    external = z2jh_values_3_to_4({**ALLOW, "hub": {**ALLOW["hub"], "db": {"type": "postgres"}}})
    sqlite = z2jh_values_3_to_4({**ALLOW, "hub": {**ALLOW["hub"], "db": {"type": "sqlite-pvc", "upgrade": True}}})
    assert external["hub"]["db"]["upgrade"] is True
    assert "upgrade" not in sqlite["hub"]["db"]


def test_kps_crds_come_from_the_target_chart_and_apply_server_side(tmp_path: Path) -> None:
    new = load_release("1.10")
    source = kps_crd_source(new)
    assert source["version"] == new.charts["kube-prometheus-stack"].version
    pull, apply = kps_crd_commands(new, tmp_path, tmp_path / "kubeconfig")
    assert pull[:2] == ["helm", "pull"] and "--untar" in pull and source["version"] in pull
    assert apply[3:6] == ["apply", "--server-side", "--force-conflicts"]
    assert apply[-1] == str(tmp_path / "kube-prometheus-stack" / "charts/crds/crds")
    assert "servicemonitors.monitoring.coreos.com" in KPS_CRD_NAMES


def test_training_operator_standalone_keeps_crds_in_use() -> None:
    rules = load_rules()
    live = {"tfjobs.kubeflow.org": 3, "pytorchjobs.kubeflow.org": 0, "other.example.com": 1}
    assert training_crds_to_keep(live, rules) == ["tfjobs.kubeflow.org", "pytorchjobs.kubeflow.org"]
    program = {"tfjobs.kubeflow.org", "pytorchjobs.kubeflow.org"}
    kept = training_operator_standalone(live, program, program, rules)
    assert kept == ["pytorchjobs.kubeflow.org", "tfjobs.kubeflow.org"]


def test_training_operator_standalone_ignores_crds_the_platform_never_applied() -> None:
    live = {"mpijobs.kubeflow.org": 2, "tfjobs.kubeflow.org": 1}
    program = {"tfjobs.kubeflow.org"}
    assert training_operator_standalone(live, program, program, load_rules()) == [
        "mpijobs.kubeflow.org", "tfjobs.kubeflow.org"]


def test_training_operator_standalone_refuses_a_target_without_tfjobs() -> None:
    previous = {"tfjobs.kubeflow.org", "pytorchjobs.kubeflow.org"}
    with pytest.raises(PreflightError, match=r"would delete tfjobs\.kubeflow\.org while objects of it "
                                             r"exist; training-operator v1 must stay standalone"):
        training_operator_standalone({"tfjobs.kubeflow.org": 1}, previous, {"pytorchjobs.kubeflow.org"},
                                     load_rules())


def test_training_operator_crds_are_in_the_program() -> None:
    crds = pytest.importorskip("stacks.training_crds")
    names = {body["metadata"]["name"] for body in crds.all_crds().values()}
    assert "tfjobs.kubeflow.org" in names


def test_pod_security_labels_and_their_dry_run(tmp_path: Path) -> None:
    assert pod_security_labels("restricted") == {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}
    argv = pod_security_dry_run("kubeflow", "restricted", tmp_path / "kc")
    assert argv[3:7] == ["label", "--dry-run=server", "--overwrite", "namespace"]
    assert "pod-security.kubernetes.io/enforce=restricted" in argv


def test_pod_security_starts_at_the_channel_the_rules_name() -> None:
    rules = load_rules()
    assert "pod-security-labels" not in migrations_for(load_release("1.9"), load_release("1.9"), rules)
    assert "pod-security-labels" in migrations_for(load_release("1.9"), load_release("1.10"), rules)
    assert "training-operator-standalone" not in migrations_for(load_release("1.9"), load_release("1.10"), rules)


def test_dry_run_warnings_are_parsed() -> None:
    assert pod_security_warnings("namespace/x labeled\nWarning: a: privileged\n") == ["a: privileged"]
    assert pod_security_warnings("namespace/x labeled\n") == []
