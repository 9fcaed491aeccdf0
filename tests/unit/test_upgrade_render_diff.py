"""The rendered platform of consecutive channels, diffed under Pulumi mocks (installer/render.py).

For every platform hop: the same site is evaluated at the old and the new channel. Every object
of the old program is still there under the same URN (Pulumi deletes what disappears), except what a
named migration of that hop removes on purpose (ingress-nginx-to-traefik: the retired controller); every
difference inside an object is a pinned version moving from the old channel's value to the new
one's, or a change a named migration of that hop accounts for; and no PVC, CRD, Secret,
StatefulSet or StorageClass changes in a way that deletes or replaces it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.config.secrets import generate_secrets
from installer.releases import Release, channel_names, load_release
from installer.upgrade.route import plan_route

REPO = Path(__file__).resolve().parents[2]
PROFILES = ["private-gpu", "bare-metal", "gcp"]
DATA_KINDS = {"PersistentVolumeClaim", "PersistentVolume", "CustomResourceDefinition", "Secret", "StatefulSet",
              "StorageClass"}
# Fields whose change makes Pulumi (or the API server) replace the object, per kind.
REPLACING = {
    "PersistentVolumeClaim": ("/spec",),
    "PersistentVolume": ("/spec",),
    "CustomResourceDefinition": ("/spec/group", "/spec/names", "/spec/scope"),
    "Secret": ("/type", "/immutable", "/data", "/stringData"),
    "StatefulSet": ("/spec/selector", "/spec/serviceName", "/spec/volumeClaimTemplates"),
    "StorageClass": ("/provisioner", "/parameters", "/reclaimPolicy", "/volumeBindingMode"),
}
# Differences a named migration explains: (migration, Helm release or object name, path prefix).
Z2JH = "z2jh-values-3-to-4"
MIGRATION_PATHS = [
    (Z2JH, "jupyterhub", "/values/hub/config/LDAPAuthenticator/"),  # LDAPAuthenticator 2 option names
    (Z2JH, "jupyterhub", "/values/hub/config/Authenticator/allow_all"),  # JupyterHub 5 admits nobody otherwise
    (Z2JH, "jupyterhub", "/values/hub/config/KubeSpawner/slug_scheme"),  # stable pod and PVC names
    (Z2JH, "jupyterhub", "/values/singleuser/storage/dynamic/"),  # KubeSpawner 6 PVC and volume names
]
INGRESS_SWITCH = "ingress-nginx-to-traefik"
MIGRATION_PATHS += [
    (INGRESS_SWITCH, "jupyterhub", "/values/ingress/ingressClassName"),  # nginx -> traefik
    (INGRESS_SWITCH, "kube-prometheus-stack", "/values/grafana/ingress/ingressClassName"),
]
# Objects a named migration deletes: (migration, logical name). The switch removes ingress-nginx's release
# and namespace after Traefik serves (installer/upgrade/migrations.py, docs/tls.md).
MIGRATION_DELETES = [(INGRESS_SWITCH, "networking-ingress-nginx"), (INGRESS_SWITCH, "networking-ingress-ns")]
HOPS = list(zip(channel_names(), channel_names()[1:], strict=False))

render = pytest.importorskip("installer.render", reason="installer/render.py (the mock render) is not there yet")


def _site(profile: str, dest: Path) -> Path:
    source = REPO / "inventories" / profile
    if not (source / "kfinstall.yaml").is_file():
        pytest.skip(f"sample inventory inventories/{profile} is absent")
    site = dest / profile
    shutil.copytree(source, site)
    generate_secrets(site / "secrets.yml")
    data = yaml.safe_load((site / "secrets.yml").read_text())
    data["ldap_bind_password"] = "ldap-bind-password-for-upgrade-tests"  # noqa: S105 - a test value
    (site / "secrets.yml").write_text(yaml.safe_dump(data))
    (site / "secrets.yml").chmod(0o600)
    return site


@pytest.fixture(scope="module", params=PROFILES)
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[Any, dict[str, Any]]:
    """(old, new) -> {"old": {urn: Recorded}, "new": {...}, "hop": Hop} for one sample site.

    Each side is what `kfinstall upgrade` deploys around the platform hop: the old channel at the
    Kubernetes minor the route reaches for the hop, and hop_config() of it (the new channel's pins
    at that same minor) with the hop's configuration migrations. Same site, secrets and paths.
    """
    from installer.config.load import load
    from installer.upgrade.run import hop_config, migrated_config

    site = _site(request.param, tmp_path_factory.mktemp("upgrade-render"))
    out: dict[Any, dict[str, Any]] = {}
    for old, new in HOPS:
        hop = plan_route(old, load_release(old).kubernetes.min_minor, new).hops[-1]
        before = load(site, [f"spec.channel={old}", f"spec.kubernetes.version={hop.kubernetes_from}"])
        after = migrated_config(hop_config(before, hop), hop)
        out[(old, new)] = {"hop": hop, "old": _records(before), "new": _records(after)}
    return out


def _records(cfg: Any) -> dict[str, Any]:
    # The engine's root Stack resource is registered once per process under mocks: not an object.
    return {r.urn: r for r in render.evaluate(cfg) if r.typ != "pulumi:pulumi:Stack"}


def _pins(release: Release) -> dict[str, str]:
    pins = {f"chart/{name}": pin.version for name, pin in release.charts.items()}
    pins.update({f"image/{name}": pin.ref for name, pin in release.images.items()})
    # Charts that take an image as name + tag (z2jh singleuser.image) move the tag alone.
    pins.update({f"image-tag/{name}": pin.tag for name, pin in release.images.items()})
    pins.update({f"cni/{name}": version for name, version in release.kubernetes.cni.items()})
    pins["kube-vip"] = release.kubernetes.kube_vip.ref
    return pins


def _walk(old: Any, new: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    """Every differing leaf; a map present on one side only is walked against an empty map."""
    if isinstance(old, dict) and new is None:
        new = {}
    if isinstance(new, dict) and old is None:
        old = {}
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _walk(old.get(key), new.get(key), f"{path}/{key}", out)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            _walk(a, b, f"{path}/{index}", out)
    elif old != new:
        out.append((path, old, new))


def _version_move(old: Any, new: Any, before: dict[str, str], after: dict[str, str]) -> bool:
    """True when `new` is `old` with one pin's old-channel value replaced by its new-channel value."""
    if not (isinstance(old, str) and isinstance(new, str)):
        return False
    return any(value in old and old.replace(value, after[key]) == new
               for key, value in before.items() if key in after and value != after[key])


def _name(record: Any) -> str:
    inputs = render.plain(record.inputs)
    return str((inputs.get("metadata") or {}).get("name") or inputs.get("name") or record.name)


@pytest.mark.parametrize(("old", "new"), HOPS, ids=[f"{a}->{b}" for a, b in HOPS])
def test_only_expected_versions_change(rendered, old: str, new: str) -> None:
    before, after = _pins(load_release(old)), _pins(load_release(new))
    pair = rendered[(old, new)]
    allowed = [(name, prefix) for migration, name, prefix in MIGRATION_PATHS if migration in pair["hop"].migrations]
    unexplained = []
    for urn, record in pair["old"].items():
        if urn not in pair["new"]:
            continue
        diffs: list[tuple[str, Any, Any]] = []
        _walk(render.plain(record.inputs), render.plain(pair["new"][urn].inputs), "", diffs)
        for path, a, b in diffs:
            if _version_move(a, b, before, after):
                continue
            if any(_name(record) == name and path.startswith(prefix) for name, prefix in allowed):
                continue
            unexplained.append(f"{urn.split('::')[-1]} {path}: {a!r} -> {b!r}")
    assert not unexplained, f"{old} -> {new} changes more than versions:\n" + "\n".join(unexplained)


@pytest.mark.parametrize(("old", "new"), HOPS, ids=[f"{a}->{b}" for a, b in HOPS])
def test_no_object_is_deleted(rendered, old: str, new: str) -> None:
    pair = rendered[(old, new)]
    planned = {name for migration, name in MIGRATION_DELETES if migration in pair["hop"].migrations}
    gone = sorted(urn.split("::")[-1] for urn in pair["old"] if urn not in pair["new"])
    assert not set(gone) - planned, f"{old} -> {new} would delete: {sorted(set(gone) - planned)}"
    assert planned <= set(gone), f"{old} -> {new} keeps what its migrations remove: {sorted(planned - set(gone))}"


@pytest.mark.parametrize(("old", "new"), HOPS, ids=[f"{a}->{b}" for a, b in HOPS])
def test_no_data_object_is_replaced(rendered, old: str, new: str) -> None:
    replaced = []
    pair = rendered[(old, new)]
    for urn, record in pair["old"].items():
        body = render.plain(record.inputs)
        kind = body.get("kind")
        if not record.is_kubernetes_object or kind not in DATA_KINDS:
            continue
        now = render.plain(pair["new"][urn].inputs)
        for key in ("apiVersion", "kind"):
            if body.get(key) != now.get(key):
                replaced.append(f"{urn.split('::')[-1]}: {key} {body.get(key)} -> {now.get(key)}")
        for key in ("name", "namespace"):
            if (body.get("metadata") or {}).get(key) != (now.get("metadata") or {}).get(key):
                replaced.append(f"{urn.split('::')[-1]}: metadata.{key} changes")
        diffs: list[tuple[str, Any, Any]] = []
        _walk(body, now, "", diffs)
        replaced += [f"{urn.split('::')[-1]} {p}" for p, _, _ in diffs if p.startswith(REPLACING[str(kind)])]
    assert not replaced, f"{old} -> {new} would replace data-holding objects:\n" + "\n".join(replaced)


def test_the_diff_covers_data_holding_objects(rendered) -> None:
    first = rendered[HOPS[0]]["old"].values()
    kinds = {render.plain(r.inputs).get("kind") for r in first if r.is_kubernetes_object}
    assert {"CustomResourceDefinition", "Secret"} <= kinds


def test_helm_releases_keep_their_name_and_namespace(rendered) -> None:
    for pair in rendered.values():
        for urn, record in pair["old"].items():
            if record.typ != render.HELM_RELEASE or urn not in pair["new"]:
                continue  # a release a migration removes: test_no_object_is_deleted checks it
            a, b = render.plain(record.inputs), render.plain(pair["new"][urn].inputs)
            assert (a.get("name"), a.get("namespace")) == (b.get("name"), b.get("namespace")), urn
