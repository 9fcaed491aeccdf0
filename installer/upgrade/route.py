"""The route planner: typed hops from (installed channel, Kubernetes) to a target channel.

Rules (../shared/research/versions.md 10.1, anchors-style 12 item 10):
- channels move one `upgradesFrom` edge at a time; downgrades and unreachable targets are refused;
- Kubernetes moves one minor at a time, never outside the channel in force;
- before a channel hop, Kubernetes moves into the overlap of the old and new channels' ranges (the
  lowest minor of the overlap: the smallest change), and the route is refused when there is none;
- a Kubernetes bump happens only to reach an overlap or an explicitly configured version, never
  because a channel's default minor is higher (a defaulted version never triggers an upgrade).
Every refusal is a PreflightError (exit 3) whose message names the allowed route or why none exists.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from installer.errors import PreflightError
from installer.releases import Release, all_releases
from installer.upgrade.migration_table import INGRESS_SWITCH, migrations_for
from installer.upgrade.migrations import ingress_switch_pause
from installer.upgrade.rules import UpgradeRules, load_rules
from installer.versions import is_version, minor_of, minor_tuple

HopKind = Literal["kubernetes", "platform"]
BACKUPS: tuple[str, ...] = ("etcd-snapshot", "pki-kubeadm-config", "jupyterhub-db", "pulumi-stack", "resolved-config")
# Host-level pins a platform hop changes node by node through playbooks/upgrade.yml (not Pulumi).
NODE_COMPONENTS = ("containerd", "nvidia-driver", "nvidia-container-toolkit")


@dataclass(frozen=True)
class Change:
    """One component's version before and after a hop (None: absent on that side)."""

    component: str
    old: str | None
    new: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"component": self.component, "old": self.old, "new": self.new}

    def text(self) -> str:
        return f"{self.component} {self.old or '(none)'} -> {self.new or '(none)'}"


@dataclass(frozen=True)
class Hop:
    """One step of a route: a Kubernetes minor on one channel, or a channel change at one minor."""

    index: int
    kind: HopKind
    from_channel: str
    to_channel: str
    kubernetes_from: str
    kubernetes_to: str
    changes: tuple[Change, ...]
    migrations: tuple[str, ...] = ()
    backups: tuple[str, ...] = BACKUPS
    pauses: tuple[str, ...] = ()
    reason: str = ""
    # What the channels change but this site does not run (a component turned off), with the reason:
    # neither upgraded nor migrated (installer.upgrade.site.site_route).
    skipped: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Stable identity used by state.json to know which hops are done (resume)."""
        if self.kind == "kubernetes":
            return f"kubernetes:{self.from_channel}:{self.kubernetes_from}->{self.kubernetes_to}"
        return f"platform:{self.from_channel}->{self.to_channel}@{self.kubernetes_from}"

    @property
    def node_changes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.component in NODE_COMPONENTS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "kind": self.kind,
            "fromChannel": self.from_channel,
            "toChannel": self.to_channel,
            "kubernetes": {"from": self.kubernetes_from, "to": self.kubernetes_to},
            "changes": [c.as_dict() for c in self.changes],
            "migrations": list(self.migrations),
            "backups": list(self.backups),
            "pauses": list(self.pauses),
            "reason": self.reason,
            "skipped": list(self.skipped),
        }

    def title(self) -> str:
        if self.kind == "kubernetes":
            return f"kubernetes {self.kubernetes_from} -> {self.kubernetes_to} (channel {self.from_channel})"
        return f"platform {self.from_channel} -> {self.to_channel} (kubernetes {self.kubernetes_from})"


@dataclass(frozen=True)
class Route:
    from_channel: str
    to_channel: str
    kubernetes_from: str
    kubernetes_to: str
    kubernetes_explicit: bool
    hops: tuple[Hop, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def channels(self) -> list[str]:
        return [self.from_channel] + [h.to_channel for h in self.hops if h.kind == "platform"]

    def summary(self) -> str:
        """One line: `1.9@1.29 -> k8s 1.30 -> k8s 1.31 -> 1.10 -> ...`."""
        parts = [f"{self.from_channel}@{self.kubernetes_from}"]
        for hop in self.hops:
            parts.append(f"k8s {hop.kubernetes_to}" if hop.kind == "kubernetes" else hop.to_channel)
        return " -> ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": {"channel": self.from_channel, "kubernetes": self.kubernetes_from},
            "to": {"channel": self.to_channel, "kubernetes": self.kubernetes_to},
            "kubernetesExplicit": self.kubernetes_explicit,
            "summary": self.summary(),
            "hops": [h.as_dict() for h in self.hops],
            "notes": list(self.notes),
        }


def _by_name(releases: tuple[Release, ...]) -> dict[str, Release]:
    return {r.channel: r for r in releases}


def channel_path(installed: str, target: str, releases: tuple[Release, ...] | None = None) -> list[str]:
    """The chain of channels from `installed` to `target` along upgradesFrom edges (both included)."""
    releases = releases or all_releases()
    named = _by_name(releases)
    for name in (installed, target):
        if name not in named:
            raise PreflightError(f"unknown channel {name!r}; channels: {', '.join(named)}")
    if installed == target:
        return [installed]
    if named[target].order < named[installed].order:
        raise PreflightError(
            f"refusing to downgrade from channel {installed} to {target}: downgrades are not supported "
            f"(the backups taken before each hop are under STATE/runs/<id>/backup). "
            f"{_allowed_from(installed, releases)}"
        )
    previous: dict[str, str] = {}
    queue = deque([installed])
    while queue:
        current = queue.popleft()
        for release in releases:
            if current in release.upgrades_from and release.channel not in previous:
                previous[release.channel] = current
                queue.append(release.channel)
    if target not in previous:
        raise PreflightError(
            f"channel {target} is unreachable from {installed}: no chain of upgradesFrom edges leads there. "
            f"{_allowed_from(installed, releases)}"
        )
    path = [target]
    while path[-1] != installed:
        path.append(previous[path[-1]])
    return path[::-1]


def _allowed_from(installed: str, releases: tuple[Release, ...]) -> str:
    """The targets reachable from `installed`, for refusal messages."""
    reachable: list[str] = []
    frontier = [installed]
    while frontier:
        current = frontier.pop(0)
        for release in releases:
            if current in release.upgrades_from and release.channel not in reachable:
                reachable.append(release.channel)
                frontier.append(release.channel)
    if not reachable:
        return f"Channel {installed} is the newest: no upgrade is available."
    chain = " -> ".join([installed, *reachable])
    return f"Allowed route from {installed}: {chain} (one hop at a time)."


def _next_minor(minor: str) -> str:
    major, number = minor_tuple(minor)
    return f"{major}.{number + 1}"


def overlap(old: Release, new: Release) -> tuple[str, str] | None:
    """The (lowest, highest) Kubernetes minors both channels support, or None."""
    low = max(minor_tuple(old.kubernetes.min_minor), minor_tuple(new.kubernetes.min_minor))
    high = min(minor_tuple(old.kubernetes.max_minor), minor_tuple(new.kubernetes.max_minor))
    if low > high:
        return None
    return f"{low[0]}.{low[1]}", f"{high[0]}.{high[1]}"


def release_changes(old: Release, new: Release) -> tuple[Change, ...]:
    """Every pinned component whose version differs between two channels (the platform hop's diff)."""
    pairs: list[tuple[str, str | None, str | None]] = [
        ("kubeflow", old.kubeflow_ref, new.kubeflow_ref),
        ("containerd", old.containerd.version, new.containerd.version),
        ("nvidia-driver", old.nvidia.driver_branch, new.nvidia.driver_branch),
        ("nvidia-container-toolkit", old.nvidia.container_toolkit, new.nvidia.container_toolkit),
        ("kube-vip", old.kubernetes.kube_vip.tag, new.kubernetes.kube_vip.tag),
    ]
    for cni in sorted(set(old.kubernetes.cni) | set(new.kubernetes.cni)):
        pairs.append((f"cni/{cni}", old.kubernetes.cni.get(cni), new.kubernetes.cni.get(cni)))
    for chart in sorted(set(old.charts) | set(new.charts)):
        before, after = old.charts.get(chart), new.charts.get(chart)
        pairs.append((f"chart/{chart}", before.version if before else None, after.version if after else None))
    for name in sorted(set(old.images) | set(new.images)):
        was, now = old.images.get(name), new.images.get(name)
        pairs.append((f"image/{name}", _image_version(was), _image_version(now)))
    return tuple(Change(c, a, b) for c, a, b in pairs if a != b)


def _image_version(pin: Any) -> str | None:
    if pin is None:
        return None
    # The whole reference: a channel may move an image to another repository, not only to a new tag.
    return f"{pin.ref} ({pin.release})" if pin.release else str(pin.ref)


def plan_route(
    installed_channel: str,
    installed_kubernetes: str,
    target_channel: str,
    explicit_kubernetes: str | None = None,
    *,
    defaulted_kubernetes: str | None = None,
    releases: tuple[Release, ...] | None = None,
    rules: UpgradeRules | None = None,
) -> Route:
    """The route, or PreflightError naming why not and what is allowed.

    `explicit_kubernetes` is the version the operator wrote (spec.kubernetes.version); None when
    the configuration leaves it to the channel default. `defaulted_kubernetes` is that default, only
    used to explain why it does not move Kubernetes.
    """
    releases = releases or all_releases()
    rules = rules or load_rules()
    named = _by_name(releases)
    path = channel_path(installed_channel, target_channel, releases)
    current = _checked_current(named[installed_channel], installed_kubernetes)
    target_k8s = _checked_explicit(named[target_channel], explicit_kubernetes, current, path, defaulted_kubernetes)
    hops: list[Hop] = []
    notes: list[str] = []
    for old_name, new_name in itertools.pairwise(path):
        old, new = named[old_name], named[new_name]
        current = _into_overlap(old, new, current, hops, path)
        hops.append(_platform_hop(len(hops) + 1, old, new, current, rules))
    final = named[target_channel]
    if target_k8s is not None:
        while minor_tuple(current) < minor_tuple(target_k8s):
            nxt = _next_minor(current)
            # The last hop carries the operator's patch when one was written (kubeadm installs exactly it).
            nxt = target_k8s if minor_of(target_k8s) == nxt else nxt
            hops.append(
                _kubernetes_hop(len(hops) + 1, final, current, nxt, f"explicit spec.kubernetes.version {target_k8s}")
            )
            current = minor_of(nxt)
    elif defaulted_kubernetes and minor_tuple(defaulted_kubernetes) > minor_tuple(current):
        notes.append(
            f"Kubernetes stays at {current}: channel {target_channel}'s default minor {minor_of(defaulted_kubernetes)} "
            f"never triggers an upgrade; set spec.kubernetes.version to move on"
        )
    route = Route(
        from_channel=installed_channel,
        to_channel=target_channel,
        kubernetes_from=minor_of(installed_kubernetes),
        kubernetes_to=target_k8s if target_k8s and minor_of(target_k8s) == current and hops else current,
        kubernetes_explicit=target_k8s is not None,
        hops=tuple(hops),
        notes=tuple(notes),
    )
    if not route.hops:
        raise PreflightError(_nothing_to_do(installed_channel, current, defaulted_kubernetes, releases))
    validate_route(route, releases, rules)
    return route


def _nothing_to_do(channel: str, current: str, defaulted: str | None, releases: tuple[Release, ...]) -> str:
    text = f"already on channel {channel} with Kubernetes {current}; same-channel upgrade refused: nothing to do."
    if defaulted and minor_tuple(defaulted) > minor_tuple(current):
        text += (
            f" The channel's default minor {minor_of(defaulted)} does not trigger an upgrade (a defaulted version "
            f'never does); set spec.kubernetes.version: "{minor_of(defaulted)}" in kfinstall.yaml to move Kubernetes.'
        )
    return text + " " + _allowed_from(channel, releases)


def _checked_current(installed: Release, kubernetes: str) -> str:
    if not is_version(kubernetes):
        raise PreflightError(f"installed Kubernetes version {kubernetes!r} is not a version")
    if not installed.kubernetes.supports(kubernetes):
        k8s = installed.kubernetes
        raise PreflightError(
            f"installed Kubernetes {kubernetes} is outside channel {installed.channel}'s range "
            f"{k8s.min_minor}-{k8s.max_minor}; the state does not match a supported install "
            f"(check state.json or --kubernetes-version)"
        )
    return minor_of(kubernetes)


def _checked_explicit(
    target: Release, explicit: str | None, current: str, path: list[str], defaulted: str | None
) -> str | None:
    if explicit is None:
        return None
    k8s = target.kubernetes
    if not is_version(explicit) or not k8s.supports(explicit):
        raise PreflightError(
            f"spec.kubernetes.version {explicit} is outside target channel {target.channel}'s range "
            f"{k8s.min_minor}-{k8s.max_minor}; choose one of {', '.join(k8s.minors())}"
        )
    if minor_tuple(explicit) < minor_tuple(current):
        raise PreflightError(
            f"refusing to downgrade Kubernetes from {current} to {minor_of(explicit)} (spec.kubernetes.version); "
            f"allowed: {current} or later within {k8s.min_minor}-{k8s.max_minor}"
        )
    return explicit


def _into_overlap(old: Release, new: Release, current: str, hops: list[Hop], path: list[str]) -> str:
    """Kubernetes hops on `old` until `current` lies in both ranges; refuse when impossible."""
    both = overlap(old, new)
    if both is None:
        raise PreflightError(
            f"no route from {path[0]} to {path[-1]}: channels {old.channel} "
            f"({old.kubernetes.min_minor}-{old.kubernetes.max_minor}) and {new.channel} "
            f"({new.kubernetes.min_minor}-{new.kubernetes.max_minor}) share no Kubernetes minor, so the "
            f"intersection rule cannot be met"
        )
    low, high = both
    if minor_tuple(current) > minor_tuple(high):
        raise PreflightError(
            f"no route from {path[0]} to {path[-1]}: Kubernetes {current} is above the overlap {low}-{high} "
            f"of channels {old.channel} and {new.channel}, and Kubernetes is never downgraded"
        )
    while minor_tuple(current) < minor_tuple(low):
        nxt = _next_minor(current)
        reason = f"intersection rule: {old.channel} -> {new.channel} needs Kubernetes in {low}-{high}"
        hops.append(_kubernetes_hop(len(hops) + 1, old, current, nxt, reason))
        current = nxt
    return current


def _kubernetes_hop(index: int, channel: Release, old: str, new: str, reason: str) -> Hop:
    return Hop(
        index=index,
        kind="kubernetes",
        from_channel=channel.channel,
        to_channel=channel.channel,
        kubernetes_from=old,
        kubernetes_to=new,
        changes=(Change("kubernetes", old, new),),
        pauses=(f"before hop {index}: control planes are upgraded, then each worker is drained in turn",),
        reason=reason,
    )


def _platform_hop(index: int, old: Release, new: Release, kubernetes: str, rules: UpgradeRules) -> Hop:
    changes = release_changes(old, new)
    migrations = migrations_for(old, new, rules)
    return Hop(
        index=index,
        kind="platform",
        from_channel=old.channel,
        to_channel=new.channel,
        kubernetes_from=kubernetes,
        kubernetes_to=kubernetes,
        changes=changes,
        migrations=migrations,
        pauses=platform_pauses(index, new.channel, changes, migrations),
        reason=f"upgradesFrom edge {old.channel} -> {new.channel}",
    )


def platform_pauses(
    index: int, channel: str, changes: tuple[Change, ...], migrations: tuple[str, ...]
) -> tuple[str, ...]:
    """Where a platform hop stops for the operator, from what it changes and migrates."""
    pauses = [f"before hop {index}: {len(changes)} component change(s) on channel {channel}"]
    if any(c.component == "nvidia-driver" for c in changes):
        pauses.append(f"during hop {index}: GPU nodes are drained and rebooted one at a time for the new driver branch")
    if INGRESS_SWITCH in migrations:
        pauses.append(ingress_switch_pause(index))
    return tuple(pauses)


def validate_route(
    route: Route, releases: tuple[Release, ...] | None = None, rules: UpgradeRules | None = None
) -> None:
    """Invariants of any route (also one read back from state.json): refuse skipped hops or minors.

    Each platform hop follows an upgradesFrom edge at a Kubernetes minor both channels support;
    each Kubernetes hop moves exactly one minor inside its channel's range; the containerd the
    channel in force pins meets the runtime requirements of every Kubernetes minor reached.
    """
    named = _by_name(releases or all_releases())
    rules = rules or load_rules()
    channel, kubernetes = route.from_channel, route.kubernetes_from
    for hop in route.hops:
        if hop.from_channel != channel or minor_of(hop.kubernetes_from) != minor_of(kubernetes):
            raise PreflightError(f"hop {hop.index} ({hop.title()}) does not start where the previous hop ended")
        if hop.kind == "platform":
            new = named[hop.to_channel]
            if channel not in new.upgrades_from:
                raise PreflightError(
                    f"hop {hop.index} skips channels: {channel} -> {hop.to_channel} is not an upgradesFrom edge. "
                    f"{_allowed_from(channel, tuple(named.values()))}"
                )
            if not (named[channel].kubernetes.supports(kubernetes) and new.kubernetes.supports(kubernetes)):
                raise PreflightError(f"hop {hop.index} changes channel at Kubernetes {kubernetes}, outside the overlap")
            channel = hop.to_channel
        else:
            expected = _next_minor(minor_of(kubernetes))
            if minor_of(hop.kubernetes_to) != expected:
                raise PreflightError(
                    f"hop {hop.index} skips Kubernetes minors: {kubernetes} -> {hop.kubernetes_to}; "
                    f"kubeadm upgrades one minor at a time (next allowed: {expected})"
                )
            if not named[channel].kubernetes.supports(hop.kubernetes_to):
                raise PreflightError(f"hop {hop.index} leaves channel {channel}'s Kubernetes range")
            pinned = named[channel].containerd.version
            for requirement in rules.requirements_for(hop.kubernetes_to):
                if not requirement.containerd_ok(pinned):
                    raise PreflightError(
                        f"hop {hop.index} reaches Kubernetes {hop.kubernetes_to} but channel {channel} pins "
                        f"containerd {pinned} (< {requirement.containerd_min}): {requirement.reason}"
                    )
            kubernetes = hop.kubernetes_to
