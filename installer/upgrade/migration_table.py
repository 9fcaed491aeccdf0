"""Which migration a platform hop runs at which channel boundary: one row per migration, in run order.

Each row names a migration, says in words which boundary triggers it, and holds that boundary as a
test over the data of the two channels (their channel files and upgrade-rules.yml). The channel
numbers themselves stay in installer/releases/ (versions live nowhere else, see
tests/unit/test_no_version_literals.py): a row says "onto the channel upgrade-rules.yml names for
trainingOperator.standaloneFromChannel, and every later one", never a literal channel.

What each migration computes is in migrations.py; how a platform hop runs it, in migration_steps.py
(one step per row, tests/unit/test_upgrade_migration_table.py holds the three together).
Checks come before changes: the guards can refuse a hop while nothing has been applied yet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from installer.releases import Release
from installer.upgrade.rules import UpgradeRules, channel_at_or_after
from installer.versions import parse

Z2JH_CHART = "jupyterhub"
KPS_CHART = "kube-prometheus-stack"
Z2JH_3_TO_4 = "z2jh-values-3-to-4"
KPS_CRDS = "kube-prometheus-stack-crds"
TRAINING_STANDALONE = "training-operator-standalone"
POD_SECURITY = "pod-security-labels"
INGRESS_SWITCH = "ingress-nginx-to-traefik"

# Does the hop from the old channel to the new one cross this migration's boundary?
Boundary = Callable[[Release, Release, UpgradeRules], bool]


@dataclass(frozen=True)
class Migration:
    name: str
    boundary: str  # the boundary in words, for readers of this table and of refusals
    crosses: Boundary
    summary: str  # what the migration does, shown by `kfinstall upgrade --dry-run`


def chart_major(release: Release, chart: str) -> int | None:
    pin = release.charts.get(chart)
    return parse(pin.version)[0] if pin else None


def _jupyterhub_major_named(name: str) -> Boundary:
    """A JupyterHub chart major bump that upgrade-rules.yml jupyterhub.majorMigrations hands to `name`."""

    def crosses(old: Release, new: Release, rules: UpgradeRules) -> bool:
        majors = (chart_major(old, Z2JH_CHART), chart_major(new, Z2JH_CHART))
        return any(
            rule.migration == name and majors == (rule.from_major, rule.to_major)
            for rule in rules.jupyterhub.major_migrations
        )

    return crosses


def _onto_training_standalone(old: Release, new: Release, rules: UpgradeRules) -> bool:
    return channel_at_or_after(new, rules.training_operator.standalone_from_channel)


def _onto_pod_security_labels(old: Release, new: Release, rules: UpgradeRules) -> bool:
    return channel_at_or_after(new, rules.pod_security.labels_from_channel)


def _ingress_nginx_to_traefik(old: Release, new: Release, rules: UpgradeRules) -> bool:
    return (old.ingress_controller, new.ingress_controller) == ("ingress-nginx", "traefik")


def _kps_major_change(old: Release, new: Release, rules: UpgradeRules) -> bool:
    return chart_major(old, KPS_CHART) != chart_major(new, KPS_CHART)


TABLE: tuple[Migration, ...] = (
    Migration(
        Z2JH_3_TO_4,
        "the jupyterhub chart major bump upgrade-rules.yml jupyterhub.majorMigrations names it for",
        _jupyterhub_major_named(Z2JH_3_TO_4),
        "JupyterHub chart 3 -> 4 values: slug_scheme escape, KubeSpawner 6 PVC names, allow config",
    ),
    Migration(
        TRAINING_STANDALONE,
        "onto the channel upgrade-rules.yml trainingOperator.standaloneFromChannel names, and every later one",
        _onto_training_standalone,
        "keep training-operator v1 standalone; never delete kubeflow.org job CRDs in use",
    ),
    Migration(
        POD_SECURITY,
        "onto the channel upgrade-rules.yml podSecurity.labelsFromChannel names, and every later one",
        _onto_pod_security_labels,
        "Pod Security Admission levels of the target program, dry-run on the server first (refused when "
        "running pods would violate them)",
    ),
    Migration(
        INGRESS_SWITCH,
        "from a channel whose ingress controller is ingress-nginx onto one whose controller is traefik",
        _ingress_nginx_to_traefik,
        "replace the retired ingress-nginx by Traefik: refused while it serves Ingresses kfinstall does "
        "not manage; Traefik serves before ingress-nginx is removed; the ingress address changes (DNS pause)",
    ),
    Migration(
        KPS_CRDS,
        "a kube-prometheus-stack chart major change (Helm never upgrades a chart's crds/)",
        _kps_major_change,
        "apply the target kube-prometheus-stack operator CRDs by server-side apply before the chart",
    ),
)

# Migration name -> what it does.
MIGRATIONS: dict[str, str] = {row.name: row.summary for row in TABLE}


def migrations_for(old: Release, new: Release, rules: UpgradeRules) -> tuple[str, ...]:
    """The migration names the platform hop old -> new runs, in execution order (the table's)."""
    return tuple(row.name for row in TABLE if row.crosses(old, new, rules))
