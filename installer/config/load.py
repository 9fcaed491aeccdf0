"""Resolve a site folder into one frozen ClusterConfig; the only reader of user files.

Merge order (later wins; maps merge key by key, lists and scalars replace, nothing is appended):

    1. built-in defaults   installer/config/model.py field defaults
    2. profile defaults    installer/profiles/<spec.profile>.yaml `defaults`
    3. kfinstall.yaml      the site's file
    4. --set key=value     command-line overrides, in the order given

`--profile P` names the site's profile: it fills spec.profile when the file leaves it out, is refused
when the file (or --set) names another, and lets a folder without kfinstall.yaml stand for the
profile's defaults (see _profile_only_site).

The channel file (installer/releases/<spec.channel>.yaml) is not merged: it supplies versions,
which the file can only choose among (spec.kubernetes.version within the channel's range).
Every problem in every file is collected and reported together; nothing downstream reads a file
again, and nothing is touched when any error is found.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from installer.config.addresses import is_dns_label
from installer.config.inventory import Inventory, check_inventory, find_inventory, load_inventory
from installer.config.merge import SetError, deep_merge, set_path, split_set
from installer.config.migrations import check_removed_keys, drop_keys
from installer.config.model import API_VERSION, KIND, ClusterFile
from installer.config.problems import Problems
from installer.config.pydantic_errors import add_validation_errors
from installer.config.resolved import ClusterConfig
from installer.config.rules import check_spec
from installer.config.secrets import Secrets, load_secrets
from installer.config.tlsfiles import load_tls_material
from installer.config.yamlfile import LoadedYaml, load_yaml, preview_key
from installer.paths import default_state_dir
from installer.profiles import all_profiles
from installer.releases import channel_names, load_release

CLUSTER_FILE = "kfinstall.yaml"
SECRETS_FILE = "secrets.yml"


def load(
    site: Path,
    sets: Sequence[str] = (),
    *,
    need_secrets: bool = True,
    state_dir: Path | None = None,
    profile: str | None = None,
) -> ClusterConfig:
    """Read, merge and validate a site folder; raises InvalidConfig listing every problem.

    `profile` is the command line's --profile (None when not given)."""
    problems = Problems()
    _require_site_folder(site, profile, problems)
    # lexists: a dangling link is not "no file" but a file that cannot be read, reported as such.
    absent = profile is not None and not os.path.lexists(site / CLUSTER_FILE)
    doc = None if absent else load_yaml(site / CLUSTER_FILE, CLUSTER_FILE, problems)
    raw = _as_mapping(doc, problems)
    overrides = _parse_sets(sets, problems)
    if absent:
        assert profile is not None
        raw = _profile_only_site(site, profile, overrides, problems)
    merged = _merge(raw, overrides, doc, problems, profile)
    cluster = _validate(merged, overrides, doc, problems)
    # Inventory rules read the validated spec when there is one (model defaults included), and
    # the merged dict otherwise, so inventory problems are reported even beside spec errors.
    spec = cluster.spec.model_dump(by_alias=True) if cluster else _spec_dict(merged)
    inventory = _inventory(site, spec, problems)
    secrets = _secrets(site, need_secrets, problems)
    tls_material = None
    if cluster is not None:
        check_spec(cluster, inventory, secrets, problems, _positioner(doc), _origin(overrides, doc))
        if cluster.spec.networking.tls.enabled:
            tls_material = load_tls_material(site, cluster.spec.networking.tls, cluster.spec.networking.ingress.host,
                                             problems)
    problems.raise_if_errors()
    assert cluster is not None and inventory is not None  # guaranteed by raise_if_errors
    return ClusterConfig(
        site=site.resolve(),
        cluster=cluster,
        profile=all_profiles()[cluster.spec.profile],
        release=load_release(cluster.spec.channel),
        inventory=inventory,
        secrets=secrets,
        warnings=tuple(problems.warnings),
        state_dir=(state_dir or default_state_dir(site, cluster.metadata.name)).resolve(),
        tls_material=tls_material,
    )


def _profile_only_site(
    site: Path, profile: str, overrides: list[tuple[str, Any]], problems: Problems
) -> dict[str, Any]:
    """What a folder without kfinstall.yaml stands for under --profile: the profile's defaults on the
    newest channel (as `kfinstall profile show` resolves), the cluster named after the folder."""
    channel = channel_names()[-1]
    name = site.resolve().name
    named_by_set = any(key in ("metadata", "metadata.name") for key, _ in overrides)
    problems.warn(
        CLUSTER_FILE,
        "",
        f"not found: the site is profile {profile}'s defaults on channel {channel} (the newest)"
        + ("" if named_by_set else f", the cluster named {name!r} after its folder"),
        f"to pin the channel across kfinstall releases, write it in {site / CLUSTER_FILE} "
        f"(`kfinstall init --profile {profile} {site}` writes a commented one)",
    )
    if not is_dns_label(name) and not named_by_set:
        problems.error(
            str(site),
            "metadata.name",
            f"the folder's name {name!r} is not a valid cluster name (a DNS label: lowercase letters, "
            "digits and '-', at most 63 characters) and there is no kfinstall.yaml to name the cluster",
            f"rename the folder (e.g. {_dns_label_like(name)!r}), or pass --set metadata.name=NAME, or "
            f"write {site / CLUSTER_FILE} with metadata.name",
        )
        name = "unnamed"  # a stand-in, so the rest is still checked; the error above stops the command
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"profile": profile, "channel": channel}}


def _dns_label_like(text: str) -> str:
    """A DNS label close to `text`, to suggest as a folder name."""
    label = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower()).strip("-")[:63].strip("-")
    return label if is_dns_label(label) else "my-site"


def _apply_profile_option(
    user: dict[str, Any], profile: str, overrides: list[tuple[str, Any]], doc: LoadedYaml | None, problems: Problems
) -> None:
    """--profile fills spec.profile, or must agree with what kfinstall.yaml (or --set) names."""
    spec = user.get("spec")
    if not isinstance(spec, dict):
        return  # the model reports a missing spec, or one that is not a mapping
    named = spec.setdefault("profile", profile)
    if named != profile:
        source = _origin(overrides, doc)("spec.profile")
        _report(
            problems, overrides, doc, "spec.profile",
            f"{source} names profile {named!r}, but the command line says --profile {profile}",
            f"a site has one profile: run with --profile {named}, or change "
            f"spec.profile to {profile} in {source} if the site is meant to be {profile}",
        )


def check_site_profile(site: Path, profile: str) -> None:
    """`init --profile P` on an existing folder: refuse (exit 2) a kfinstall.yaml naming another profile.

    Only the profile is checked: init keeps the operator's file as it is, whatever else it holds."""
    if not os.path.lexists(site / CLUSTER_FILE):
        return
    doc = load_yaml(site / CLUSTER_FILE, CLUSTER_FILE, Problems())
    if doc is None or not isinstance(doc.data, dict):
        return
    problems = Problems()
    _apply_profile_option(copy.deepcopy(doc.data), profile, [], doc, problems)
    problems.raise_if_errors()


def _secrets(site: Path, need_secrets: bool, problems: Problems) -> Secrets | None:
    """secrets.yml is required to change anything; plan and validate only check it when present."""
    path = site / SECRETS_FILE
    if not need_secrets and not path.exists():
        problems.warn(
            SECRETS_FILE,
            "",
            "file not found (plan and validate go on; up needs it)",
            f"run `kfinstall init --profile <profile> {site}`: it keeps your files and generates secrets",
        )
        return None
    return load_secrets(path, SECRETS_FILE, problems)


def _spec_dict(merged: dict[str, Any]) -> dict[str, Any]:
    spec = merged.get("spec")
    return spec if isinstance(spec, dict) else {}


def _require_site_folder(site: Path, profile: str | None, problems: Problems) -> None:
    """A site that is no folder is one problem, not a "file not found" for each file it should hold."""
    if site.is_dir():
        return
    what = "does not exist" if not os.path.lexists(site) else "is not a folder"
    problems.error(str(site), "-i/--inventory", f"the site folder {what}",
                   f"make it with `kfinstall init --profile {profile or '<profile>'} {site}`, or point -i at your "
                   "site folder (the one holding hosts.yml and kfinstall.yaml)")
    problems.raise_if_errors()


def _as_mapping(doc: LoadedYaml | None, problems: Problems) -> dict[str, Any]:
    if doc is None:
        return {}
    if not isinstance(doc.data, dict):
        problems.error(
            CLUSTER_FILE,
            "",
            "expected a mapping with apiVersion, kind, metadata and spec",
            "start from inventories/<profile>/kfinstall.yaml",
        )
        return {}
    return doc.data


def _parse_sets(sets: Sequence[str], problems: Problems) -> list[tuple[str, Any]]:
    parsed = []
    for expr in sets:
        try:
            parsed.append(split_set(expr))
        except SetError as exc:  # named by its key only: the value may be a secret or a page long
            problems.error("--set", preview_key(exc.key), str(exc), "write --set spec.section.key=value")
    return parsed


def _positioner(doc: LoadedYaml | None) -> Any:
    return doc.position if doc is not None else (lambda keys: (None, None))


def _merge(
    raw: dict[str, Any],
    overrides: list[tuple[str, Any]],
    doc: LoadedYaml | None,
    problems: Problems,
    profile: str | None = None,
) -> dict[str, Any]:
    removed = check_removed_keys(raw, CLUSTER_FILE, problems, _positioner(doc))
    drop_keys(raw, removed)
    user = copy.deepcopy(raw)  # set_path must not write into the file's data: _origin reads it
    for key, value in overrides:
        set_path(user, key, value)
    if profile is not None:
        _apply_profile_option(user, profile, overrides, doc, problems)
    spec = _spec_dict(user)
    profile_defaults = _profile_defaults(spec, overrides, doc, problems)
    _check_channel(spec, overrides, doc, problems)
    return deep_merge(profile_defaults, user)


def _origin(overrides: list[tuple[str, Any]], doc: LoadedYaml | None = None) -> Any:
    """path -> where its value came from: --set for a key given with --set and what lies below it, and
    for the parents --set had to create or replace (`--set spec.foo.bar=1` makes spec.foo, which the
    file never had); kfinstall.yaml otherwise."""
    keys = {key for key, _ in overrides}
    data = doc.data if doc is not None else {}

    def from_set(path: str, key: str) -> bool:
        if path == key or path.startswith((key + ".", key + "[")):
            return True
        return key.startswith(path + ".") and not isinstance(_value_at(data, path), dict)

    return lambda path: "--set" if any(from_set(path, k) for k in keys) else CLUSTER_FILE


def _value_at(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _profile_defaults(
    spec: dict[str, Any], overrides: list[tuple[str, Any]], doc: LoadedYaml | None, problems: Problems
) -> dict[str, Any]:
    name = spec.get("profile")
    profiles = all_profiles()
    if not isinstance(name, str):
        return {}  # the model reports the missing key or the wrong type (a map is not even hashable)
    if name in profiles:
        return profiles[name].defaults
    hint = difflib.get_close_matches(str(name), list(profiles), n=1)
    fix = (f"did you mean '{hint[0]}'? " if hint else "") + f"profiles: {', '.join(profiles)}"
    _report(problems, overrides, doc, "spec.profile", f"unknown profile {name!r}", fix)
    return {}


def _check_channel(
    spec: dict[str, Any], overrides: list[tuple[str, Any]], doc: LoadedYaml | None, problems: Problems
) -> None:
    channel = spec.get("channel")
    if channel is None or not isinstance(channel, str) or channel in channel_names():
        return  # missing or wrongly typed: the model reports it
    hint = difflib.get_close_matches(channel, channel_names(), n=1)
    fix = (f"did you mean '{hint[0]}'? " if hint else "") + f"channels: {', '.join(channel_names())}"
    _report(problems, overrides, doc, "spec.channel", f"unknown channel {channel!r}", fix)


def _report(
    problems: Problems, overrides: list[tuple[str, Any]], doc: LoadedYaml | None, path: str, message: str, fix: str
) -> None:
    """An error placed where the value came from: a line of kfinstall.yaml, or --set."""
    source = _origin(overrides, doc)(path)
    line, column = _positioner(doc)(tuple(path.split("."))) if source == CLUSTER_FILE else (None, None)
    problems.error(source, path, message, fix, line=line, column=column)


def _validate(
    merged: dict[str, Any], overrides: list[tuple[str, Any]], doc: LoadedYaml | None, problems: Problems
) -> ClusterFile | None:
    if not merged and doc is None:
        return None
    try:
        cluster = ClusterFile.model_validate(merged)
    except ValidationError as exc:
        add_validation_errors(exc, ClusterFile, problems, _origin(overrides, doc), _positioner(doc),
                              doc.written if doc is not None else (lambda loc: None))
        return None
    known = cluster.spec.profile in all_profiles() and cluster.spec.channel in channel_names()
    return cluster if known else None


def _inventory(site: Path, spec: dict[str, Any], problems: Problems) -> Inventory | None:
    path = find_inventory(site)
    if path is None:
        if spec.get("profile") == "gcp":
            return Inventory(path=None, hosts=())
        problems.error(
            "hosts.yml", "", "file not found", f"create {site / 'hosts.yml'} (copy inventories/<profile>/hosts.yml)"
        )
        return None
    inventory = load_inventory(path, path.name, problems)
    if inventory is not None:
        check_inventory(inventory, path.name, spec, problems)
    return inventory
