"""z2jh values, merged over the chart's own defaults, validate against the chart's values.schema.yaml.

Schemas are read in place from ../shared/schemas/jupyterhub-chart/<version>/ (never copied into
the project); a channel whose chart version has no schema there is skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, SHARED_SCHEMAS

from installer.render import plain
from installer.versions import parse

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]


def _merge(base: Any, override: Any) -> Any:
    """Helm's rule: maps merge key by key, everything else (lists too) replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base.get(key), value)
        return out
    return override


def _chart_files(version: str) -> tuple[Path, Path]:
    folder = SHARED_SCHEMAS / "jupyterhub-chart" / version
    schema, defaults = folder / "values.schema.yaml", folder / "values.yaml"
    if not SHARED_SCHEMAS.is_dir():
        pytest.skip(f"{SHARED_SCHEMAS} is absent: upstream schemas are not available on this machine")
    if not (schema.is_file() and defaults.is_file()):
        pytest.skip(f"no upstream z2jh schema for chart {version} in {folder} (MANIFEST.md lists what is collected)")
    return schema, defaults


def _hub_values(rendered: Any) -> dict[str, Any]:
    release = next(h for h in rendered.helm() if plain(h.inputs)["name"] == "jupyterhub")
    return plain(release.inputs)["values"]


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_values_validate_against_the_chart_schema(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    version = rendered.cfg.release.charts["jupyterhub"].version
    schema_path, defaults_path = _chart_files(version)
    schema = yaml.safe_load(schema_path.read_text())
    merged = _merge(yaml.safe_load(defaults_path.read_text()), _hub_values(rendered))
    errors = [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(merged)]
    assert not errors, "\n".join(errors)


def test_the_schema_check_catches_a_misspelled_key(renders) -> None:
    rendered = renders.get("bare-metal", CHANNELS[-1])
    schema_path, defaults_path = _chart_files(rendered.cfg.release.charts["jupyterhub"].version)
    values = _hub_values(rendered)
    values["singleuser"]["storagee"] = {}
    merged = _merge(yaml.safe_load(defaults_path.read_text()), values)
    assert list(jsonschema.Draft7Validator(yaml.safe_load(schema_path.read_text())).iter_errors(merged))


@pytest.mark.parametrize("channel", CHANNELS)
def test_ldap_keys_follow_the_bundled_ldapauthenticator(renders, channel: str) -> None:
    rendered = renders.get("private-gpu", channel)
    ldap = _hub_values(rendered)["hub"]["config"]["LDAPAuthenticator"]
    assert ldap["server_address"] == "ldap.example.com" and ldap["server_port"] == 636
    assert ldap["lookup_dn"] is True and ldap["user_search_base"] == "ou=people,dc=example,dc=com"
    if parse(rendered.cfg.release.charts["jupyterhub"].version)[0] >= 4:
        assert ldap["tls_strategy"] == "on_connect" and "use_ssl" not in ldap  # ldapauthenticator 2.x
    else:
        assert ldap["use_ssl"] is True and "tls_strategy" not in ldap  # 1.3.2
    assert ldap["allowed_groups"] == ["cn=ml-users,ou=groups,dc=example,dc=com"]


def test_storage_and_gpu_profiles(renders) -> None:
    values = _hub_values(renders.get("private-gpu", CHANNELS[-1]))
    storage = values["singleuser"]["storage"]
    assert storage["type"] == "dynamic" and storage["dynamic"]["storageClass"] == "nfs"
    gpu = [p for p in values["singleuser"]["profileList"] if "extra_resource_limits" in p["kubespawner_override"]]
    assert gpu and gpu[0]["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    cpu_only = _hub_values(renders.get("bare-metal", CHANNELS[-1]))["singleuser"]["profileList"]
    assert all("extra_resource_limits" not in p["kubespawner_override"] for p in cpu_only)


def test_user_overrides_from_the_model_win(renders) -> None:
    from installer.render import evaluate

    cfg = renders.config("bare-metal", CHANNELS[-1], ('spec.components.jupyterhub.values={"cull": {"timeout": 60}}',))
    releases = [r for r in evaluate(cfg) if r.typ == "kubernetes:helm.sh/v3:Release"]
    release = next(r for r in releases if r.inputs["name"] == "jupyterhub")
    cull = plain(release.inputs)["values"]["cull"]
    assert cull == {"enabled": True, "timeout": 60}


@pytest.mark.parametrize("channel", CHANNELS)
def test_allow_all_only_where_jupyterhub_knows_it(renders, channel: str) -> None:
    rendered = renders.get("lab", channel)
    authenticator = _hub_values(rendered)["hub"]["config"]["Authenticator"]
    major = parse(rendered.cfg.release.charts["jupyterhub"].version)[0]
    assert authenticator.get("allow_all") is (True if major >= 4 else None)


def test_proxy_service_follows_what_can_answer_it(renders) -> None:
    """Outside the lab every UI is HTTPS behind the ingress host (rules require the host there), so
    proxy-public stays ClusterIP; the lab has no host and no LoadBalancer controller: NodePort."""
    channel = CHANNELS[-1]
    for profile in ("bare-metal", "private-cloud", "private-gpu", "gcp"):
        rendered = renders.get(profile, channel)
        assert rendered.cfg.spec.networking.ingress.host, profile
        assert _hub_values(rendered)["proxy"]["service"] == {"type": "ClusterIP"}, profile
    lab = renders.get("lab", channel)
    assert not lab.cfg.spec.networking.ingress.host and not lab.cfg.spec.networking.metallb.enabled
    assert _hub_values(lab)["proxy"]["service"] == {"type": "NodePort"}


# The ldapauthenticator each pinned z2jh chart bundles (jupyterhub/zero-to-jupyterhub-k8s,
# images/hub/requirements.txt at the chart's tag: 3.3.8 pins jupyterhub-ldapauthenticator==1.3.2;
# 4.2.0, 4.3.0-4.3.5 and 4.4.0 pin 2.0.2), and that release's default for use_lookup_dn_username
# (jupyterhub/ldapauthenticator, ldapauthenticator/ldapauthenticator.py: `Bool(True, ...)` at tag 1.3.2,
# `Bool(False, ...)` at tag 2.0.2).
BUNDLED_LDAPAUTHENTICATOR = {"3.3.8": "1.3.2", **{v: "2.0.2" for v in (
    "4.2.0", "4.3.0", "4.3.1", "4.3.2", "4.3.3", "4.3.4", "4.3.5", "4.4.0")}}
LOOKUP_DN_USERNAME_DEFAULT = {"1.3.2": True, "2.0.2": False}
LDAP_PROFILES = [p for p in PROFILES if p != "lab"]


@pytest.mark.parametrize("profile", LDAP_PROFILES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_ldap_usernames_stay_the_login_name_on_every_channel(renders, profile: str, channel: str) -> None:
    """With lookup_dn, ldapauthenticator 1.3.2 (chart 3.3.8, channel 1.9) defaults use_lookup_dn_username
    to True and names the JupyterHub user after lookup_dn_user_dn_attribute (the cn, "Jane Doe"), so
    admin_users given as uids never match and user servers are named after the cn; 2.0.2 defaults to
    False. kfinstall sets False on every channel, so the bundled version's default never decides."""
    rendered = renders.get(profile, channel)
    assert rendered.cfg.spec.auth.type == "ldap"
    chart = rendered.cfg.release.charts["jupyterhub"].version
    assert chart in BUNDLED_LDAPAUTHENTICATOR, (
        f"chart {chart}: read images/hub/requirements.txt at that tag and add its ldapauthenticator here")
    assert LOOKUP_DN_USERNAME_DEFAULT[BUNDLED_LDAPAUTHENTICATOR[chart]] in (True, False)
    ldap = _hub_values(rendered)["hub"]["config"]["LDAPAuthenticator"]
    assert ldap["lookup_dn"] is True and ldap["lookup_dn_user_dn_attribute"] == "cn"
    assert ldap["use_lookup_dn_username"] is False
