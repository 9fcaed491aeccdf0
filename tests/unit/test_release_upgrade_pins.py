"""No upgrade hop moves a chart or image pin backwards.

`kfinstall upgrade` walks `upgradesFrom` edges one channel at a time and refuses channel and
Kubernetes downgrades (installer/upgrade/route.py). A chart pinned lower in the newer channel would
still be a Helm downgrade on that hop (Helm applies whatever version it is given, and an application
that migrated its data forward is not migrated back), so every pin both channels share must be equal
or newer. Commit-built tags carry no order and are compared by the release they record, if any.
"""

from __future__ import annotations

import re

import pytest

from installer.releases import all_releases, load_release
from installer.versions import parse

EDGES = [(source, r.channel) for r in all_releases() for source in r.upgrades_from]
DATE_TAG = re.compile(r"(?:[a-z]+-)?(\d{4}-\d{2}-\d{2})")  # docker-stacks weekly builds: 2025-12-15, cuda-2025-12-15


def order_key(tag: str) -> tuple[object, ...] | None:
    """A sortable key for a version or dated tag, or None when the tag carries no order (a commit tag)."""
    try:
        return ("version", *parse(tag.removeprefix("v")))
    except ValueError:
        dated = DATE_TAG.fullmatch(tag)
        return ("date", dated.group(1)) if dated else None


def backwards(old: dict[str, str], new: dict[str, str]) -> list[str]:
    moves = []
    for name in sorted(old.keys() & new.keys()):
        before, after = order_key(old[name]), order_key(new[name])
        if before and after and before[0] == after[0] and after < before:
            moves.append(f"{name}: {old[name]} -> {new[name]}")
    return moves


@pytest.mark.parametrize(("source", "target"), EDGES)
def test_no_pin_goes_backwards_on_an_upgrade_hop(source: str, target: str) -> None:
    old, new = load_release(source), load_release(target)
    charts = backwards({k: p.version for k, p in old.charts.items()}, {k: p.version for k, p in new.charts.items()})
    # An image built from a commit (training-operator v1-3f15cb8) is ordered by the release it records.
    images = backwards({k: p.release or p.tag for k, p in old.images.items()},
                       {k: p.release or p.tag for k, p in new.images.items()})
    assert not charts + images, f"channel {source} -> {target} moves pins backwards: {charts + images}"


def test_the_order_sees_a_downgrade() -> None:
    assert backwards({"jupyterhub": "4.3.5", "notebook": "cuda-2025-12-15", "x": "v1-3f15cb8"},
                     {"jupyterhub": "4.3.2", "notebook": "cuda-2025-07-14", "x": "v1-04f9f13"}) == [
        "jupyterhub: 4.3.5 -> 4.3.2", "notebook: cuda-2025-12-15 -> cuda-2025-07-14"]
    assert backwards({"csi": "v4.12.1"}, {"csi": "4.13.0"}) == []
