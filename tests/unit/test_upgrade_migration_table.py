"""The migration table (installer/upgrade/migration_table.py) against the channel data and upgrade-rules.yml.

Every row has a step that runs it and a summary; every migration upgrade-rules.yml names has a row;
every channel boundary the rules or the channel files mark runs its migration, on the hop onto it and
(for the from-this-channel-on rules) on every later one; no row is dead on the shipped channels.
Dropping a row, a step or a boundary fails one of these.
"""

from __future__ import annotations

import pytest

from installer.releases import Release, all_releases, channel_names
from installer.upgrade.migration_steps import STEPS
from installer.upgrade.migration_table import (
    INGRESS_SWITCH,
    KPS_CHART,
    KPS_CRDS,
    MIGRATIONS,
    POD_SECURITY,
    TABLE,
    TRAINING_STANDALONE,
    Z2JH_CHART,
    chart_major,
    migrations_for,
)
from installer.upgrade.route import plan_route
from installer.upgrade.rules import load_rules

RULES = load_rules()
NAMED = {r.channel: r for r in all_releases()}
EDGES = [(NAMED[old], new) for new in all_releases() for old in new.upgrades_from if old in NAMED]


def _edge_id(edge: tuple[Release, Release]) -> str:
    return f"{edge[0].channel}->{edge[1].channel}"


def _runs(old: Release, new: Release) -> tuple[str, ...]:
    return migrations_for(old, new, RULES)


def test_the_table_names_each_migration_once_with_a_step_and_a_summary() -> None:
    names = [row.name for row in TABLE]
    assert len(names) == len(set(names))
    assert set(STEPS) == set(names), "a row without a step, or a step without a row"
    assert set(MIGRATIONS) == set(names) and all(MIGRATIONS[n].strip() for n in names)
    assert all(row.boundary.strip() for row in TABLE)


def test_every_migration_upgrade_rules_names_has_a_row() -> None:
    named = {rule.migration for rule in RULES.jupyterhub.major_migrations}
    assert named <= {row.name for row in TABLE}


def test_the_shipped_channels_have_edges_to_check() -> None:
    assert len(EDGES) >= len(channel_names()) - 1 >= 1


@pytest.mark.parametrize("edge", EDGES, ids=_edge_id)
def test_every_boundary_runs_its_migration(edge: tuple[Release, Release]) -> None:
    old, new = edge
    runs = _runs(old, new)
    order = channel_names()
    expected = {rule.migration for rule in RULES.jupyterhub.major_migrations
                if (chart_major(old, Z2JH_CHART), chart_major(new, Z2JH_CHART)) == (rule.from_major, rule.to_major)}
    if order.index(new.channel) >= order.index(RULES.training_operator.standalone_from_channel):
        expected.add(TRAINING_STANDALONE)
    if order.index(new.channel) >= order.index(RULES.pod_security.labels_from_channel):
        expected.add(POD_SECURITY)
    if old.ingress_controller == "ingress-nginx" and new.ingress_controller == "traefik":
        expected.add(INGRESS_SWITCH)
    if chart_major(old, KPS_CHART) != chart_major(new, KPS_CHART):
        expected.add(KPS_CRDS)
    assert set(runs) == expected


@pytest.mark.parametrize(
    ("channel", "migration"),
    [
        (RULES.training_operator.standalone_from_channel, TRAINING_STANDALONE),
        (RULES.pod_security.labels_from_channel, POD_SECURITY),
    ],
)
def test_the_channel_upgrade_rules_names_is_a_boundary(channel: str, migration: str) -> None:
    """The hop onto the named channel runs the migration; no hop onto an earlier channel does."""
    onto = [edge for edge in EDGES if edge[1].channel == channel]
    assert onto, f"upgrade-rules.yml names channel {channel}, which no upgradesFrom edge reaches"
    assert all(migration in _runs(*edge) for edge in onto)
    before = channel_names()[: channel_names().index(channel)]
    assert not any(migration in _runs(*edge) for edge in EDGES if edge[1].channel in before)


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.name)
def test_no_row_is_dead_on_the_shipped_channels(row) -> None:  # noqa: ANN001 - a table row
    assert any(row.name in _runs(*edge) for edge in EDGES), f"{row.name} runs on no shipped channel boundary"


def test_a_route_runs_the_table_in_its_order() -> None:
    """Checks before changes: a hop lists its migrations in the table's order (the guards refuse first)."""
    order = [row.name for row in TABLE]
    for old, new in EDGES:
        route = plan_route(old.channel, old.kubernetes.min_minor, new.channel)
        hop = next(h for h in route.hops if h.kind == "platform")
        assert list(hop.migrations) == sorted(hop.migrations, key=order.index)
        assert hop.migrations == _runs(old, new)
