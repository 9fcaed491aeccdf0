"""`plan`'s diff against what is installed: the current config against the last applied record
(installer.applied), and the refusals `up` would give (installer.up.against_installed itself).

The platform is rendered again only when its input fingerprint differs from the recorded one:
rendering costs a second or two (Pulumi's SDK under the mock engine), and equal inputs give an
equal render, so the recorded objects ARE the render then. No secret value is ever in the result:
a changed secret shows as `<secret>` -> `<secret>` with `"secret": true`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from installer.applied import (
    SECRET_MARK,
    UNKNOWN_SECRET,
    cached_render,
    hasher_for,
    platform_fingerprint,
    read_applied,
    rendered_objects,
    roles_of,
    save_render,
    settings_of,
    versions_of,
)
from installer.config.resolved import ClusterConfig
from installer.errors import PreflightError
from installer.state import read_state

SHOWN_SECRET = "<secret>"  # noqa: S105 - what the output shows for any secret
RECORDED = "the last recorded apply"
SECRET_SETTING = "secrets."  # noqa: S105 - the settings key prefix of secrets.yml values (applied.settings_of)


def plan_diff(cfg: ClusterConfig) -> dict[str, Any]:
    """The `diff` member of the plan document (docs/plan-json.md)."""
    from installer.limited import converged_roles, first_host_refusals

    effective, refusals = _against_installed(cfg)
    refusals += first_host_refusals(cfg, converged_roles(cfg))  # what up refuses before its host phase
    record = read_applied(cfg.state_dir) or {}
    diff: dict[str, Any] = {"against": "nothing", "summary": "", "refusals": refusals, "hostsAdded": {},
                            "hostsRemoved": {}, "settings": [], "versions": [],
                            "components": {"rendered": False, "fromCache": False, "created": [], "changed": [],
                                           "deleted": []}}
    if "hosts" not in record and "platform" not in record:
        installed = read_state(cfg.state_dir) is not None
        diff["summary"] = (
            f"installed, but no apply is recorded in {cfg.state_dir} (installed by an older kfinstall, or no phase "
            "has succeeded yet): the diff cannot be computed; the next successful `kfinstall up` records it"
            if installed else f"fresh install: nothing is installed or recorded in {cfg.state_dir}")
        return diff
    hasher = hasher_for(cfg.state_dir)
    diff["against"] = "recorded"
    hosts_part, platform_part = record.get("hosts") or {}, record.get("platform") or {}
    if hosts_part:
        diff["hostsAdded"], diff["hostsRemoved"] = _hosts_diff(hosts_part.get("roles") or {}, roles_of(effective))
    # The platform applies last: its settings are what is fully applied (a hosts-only run leaves them older).
    last = platform_part or hosts_part
    recorded_settings = dict(last.get("settings") or {})
    if effective.secrets is None:  # no secrets.yml here: a secret's change cannot be told, so none is claimed
        recorded_settings = {k: v for k, v in recorded_settings.items() if not k.startswith(SECRET_SETTING)}
    diff["settings"] = _settings_diff(recorded_settings, settings_of(effective, hasher))
    diff["versions"] = _settings_diff(_flat_versions(last.get("versions") or {}),
                                      _flat_versions(versions_of(effective)))
    if platform_part:
        diff["components"] = _components_diff(effective, hasher, platform_part)
    diff["summary"] = _summary(diff, record) + _stale_note(cfg, last)
    return diff


def _stale_note(cfg: ClusterConfig, last: Mapping[str, Any]) -> str:
    """`kfinstall upgrade` moves the installed channel without recording an apply: say so, not hide it."""
    state = read_state(cfg.state_dir)
    recorded = (last.get("versions") or {}).get("channel")
    if state is None or not state.installed_channel or state.installed_channel == recorded:
        return ""
    return (f"; the record is of channel {recorded} but channel {state.installed_channel} is installed (upgraded "
            "since): the diff includes what the upgrade changed; the next successful `kfinstall up` records again")


def as_up_applies(cfg: ClusterConfig) -> ClusterConfig:
    """The configuration `up` would apply to what is installed (an installed Kubernetes version that
    kfinstall.yaml leaves to the channel stays), so plan's phases show what up does; the loaded one
    when up would refuse, which the diff's refusals say."""
    return _against_installed(cfg)[0]


def _against_installed(cfg: ClusterConfig) -> tuple[ClusterConfig, list[str]]:
    """The config `up` would apply and the refusals it would give, from up's own check."""
    from installer.up import against_installed

    try:
        return against_installed(cfg), []
    except PreflightError as exc:
        return cfg, [str(exc)]


def _hosts_diff(recorded: Mapping[str, Any], current: Mapping[str, list[str]]
                ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    added, removed = {}, {}
    for role in sorted(set(recorded) | set(current)):
        old, new = set(recorded.get(role) or []), set(current.get(role) or [])
        if new - old:
            added[role] = sorted(new - old)
        if old - new:
            removed[role] = sorted(old - new)
    return added, removed


def _flat_versions(versions: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in versions.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{name}": item for name, item in value.items()})
        else:
            flat[key] = value
    return flat


def _settings_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    changes = []
    for key in sorted(set(old) | set(new)):
        if key in old and key in new and _same(old[key], new[key]):
            continue
        change = "changed" if key in old and key in new else ("added" if key in new else "removed")
        changes.append(_shown_change({"key": key, "change": change, "old": old.get(key), "new": new.get(key)}))
    return changes


def _components_diff(cfg: ClusterConfig, hasher: Any, recorded: Mapping[str, Any]) -> dict[str, Any]:
    outputs = recorded.get("outputs") or None
    result: dict[str, Any] = {"rendered": False, "fromCache": False, "created": [], "changed": [], "deleted": []}
    fingerprint = platform_fingerprint(cfg, hasher, outputs)
    if fingerprint == recorded.get("fingerprint"):
        return result  # same inputs, same render: nothing to show, and nothing to pay for
    result["rendered"] = True
    old: Mapping[str, Any] = recorded.get("objects") or {}
    new = cached_render(cfg.state_dir, fingerprint)
    result["fromCache"] = new is not None
    if new is None:
        new = rendered_objects(cfg, hasher, outputs)
        save_render(cfg.state_dir, fingerprint, new)
    for ident in sorted(set(old) | set(new)):
        entry = {"id": ident, "component": (new.get(ident) or old.get(ident) or {}).get("component")}
        if ident not in old:
            result["created"].append(entry)
        elif ident not in new:
            result["deleted"].append(entry)
        else:
            changes = value_changes(old[ident].get("body"), new[ident].get("body"))
            if changes:
                result["changed"].append({**entry, "changes": changes})
    return result


def value_changes(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """Every difference as {path (JSON pointer), change, old, new}; secrets shown as `<secret>`."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            child = f"{path}/{_pointer(str(key))}"
            if key not in old:
                out.append(_shown_change({"path": child, "change": "added", "old": None, "new": new[key]}))
            elif key not in new:
                out.append(_shown_change({"path": child, "change": "removed", "old": old[key], "new": None}))
            else:
                out.extend(value_changes(old[key], new[key], child))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in value_changes(a, b, f"{path}/{i}")]
    if _same(old, new):
        return []
    return [_shown_change({"path": path or "/", "change": "changed", "old": old, "new": new})]


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _same(old: Any, new: Any) -> bool:
    """Equal; a secret whose value is unknown here (no secrets.yml) counts as unchanged: it cannot be told."""
    if old == new:
        return True
    if isinstance(old, str) and isinstance(new, str) and UNKNOWN_SECRET in (old, new):
        return bool(SECRET_MARK.fullmatch(old) and SECRET_MARK.fullmatch(new))
    return False


def _shown_change(change: dict[str, Any]) -> dict[str, Any]:
    """Secret marks become `<secret>`; a change visible only in marks says `"secret": true`."""
    old, new = _unmarked(change["old"]), _unmarked(change["new"])
    if old != change["old"] or new != change["new"]:
        change["secret"] = True
    change["old"], change["new"] = old, new
    return change


def _unmarked(value: Any) -> Any:
    if isinstance(value, str):
        return SECRET_MARK.sub(SHOWN_SECRET, value)
    if isinstance(value, dict):
        return {key: _unmarked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unmarked(item) for item in value]
    return value


def _summary(diff: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    parts = [f"{len(_by_host(diff['hostsAdded']))} host(s) added", f"{len(_by_host(diff['hostsRemoved']))} removed",
             f"{len(diff['settings'])} setting(s) changed", f"{len(diff['versions'])} version(s) changed"]
    components = diff["components"]
    if "platform" in record:
        parts.append(f"platform objects: {len(components['created'])} created, {len(components['changed'])} "
                     f"changed, {len(components['deleted'])} deleted")
    else:
        parts.append("no platform apply recorded yet: the platform phase installs everything")
    return f"against {RECORDED}: " + ", ".join(parts)


def diff_lines(diff: Mapping[str, Any], *, preview: bool) -> list[str]:
    """The text plan's view of the same diff (every line plain text, values already masked)."""
    lines = [f"Diff: {diff['summary']}"]
    lines += [f"  refused by up: {message}" for message in diff["refusals"]]
    if diff["against"] != "recorded":
        return lines
    for title, hosts in (("added", diff["hostsAdded"]), ("removed", diff["hostsRemoved"])):
        for host, roles in sorted(_by_host(hosts).items()):
            lines.append(f"  host {title}: {host} ({', '.join(roles)})")
    for change in [*diff["settings"], *diff["versions"]]:
        lines.append(f"  {change['change']} {change['key']}: {_text(change)}")
    components = diff["components"]
    for entry in components["created"]:
        lines.append(f"  create {entry['id']} ({entry['component']})")
    for entry in components["deleted"]:
        lines.append(f"  delete {entry['id']} ({entry['component']})")
    for entry in components["changed"]:
        lines.append(f"  change {entry['id']} ({entry['component']})")
        lines += [f"      {c['path']}: {_text(c)}" for c in entry["changes"]]
    if not preview:
        lines.append(f"  No Pulumi CLI here: the platform diff is against {RECORDED}, not the live cluster.")
    return lines


def _by_host(roles: Mapping[str, list[str]]) -> dict[str, list[str]]:
    hosts: dict[str, list[str]] = {}
    for role, names in roles.items():
        for name in names:
            hosts.setdefault(name, []).append(role)
    return hosts


def _text(change: Mapping[str, Any]) -> str:
    if change.get("secret") and change["old"] == change["new"]:
        return f"{SHOWN_SECRET} (changed)"
    return f"{_short(change['old'])} -> {_short(change['new'])}"


def _short(value: Any, limit: int = 120) -> str:
    text = "(none)" if value is None else json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."
