"""Spawner profiles are values KubeSpawner accepts (issue 12, second review).

Before: each profile's kubespawner_override carried the model's memory quantity as written, e.g.
`mem_limit: 4Gi`. KubeSpawner applies an override with setattr (jupyterhub/kubespawner
kubespawner/spawner.py `_apply_overrides`, 6.2.0 in z2jh 3.3.8 and 7.0.0 in 4.2.0-4.4.0), and
mem_limit / mem_guarantee are JupyterHub's `ByteSpecification` (jupyterhub/jupyterhub
jupyterhub/spawner.py; jupyterhub/traitlets.py, identical rule at 4.1.6, 5.3.0, 5.4.6 and 5.5.0): an
int, or a number followed by exactly one of K, M, G, T (powers of 1024). "4Gi" raises TraitError, so
every server start with a profile failed. Now the override carries the quantity in bytes (an int).

The check uses JupyterHub's own Spawner traits (the [test] extra installs jupyterhub), so the
rule tested is upstream's, not a copy of it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from stackhelpers import CHANNELS, PROFILES

from installer.render import plain

try:
    from jupyterhub.spawner import Spawner
except ImportError:  # pragma: no cover - only without the test extra
    Spawner = None

MATRIX = [(p, c) for p in PROFILES for c in CHANNELS]
# Kubernetes resource quantity suffixes (apimachinery resource.Quantity), in bytes.
SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


def _quantity_bytes(quantity: str) -> int:
    number = quantity.rstrip("kKMGTPi")
    return int(Decimal(number) * SUFFIX[quantity[len(number):]])


def _profiles(rendered: Any) -> list[dict[str, Any]]:
    release = next(h for h in rendered.helm() if plain(h.inputs)["name"] == "jupyterhub")
    return plain(release.inputs)["values"]["singleuser"]["profileList"]


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_every_profile_override_is_accepted_by_jupyterhubs_spawner_traits(renders, profile: str,
                                                                          channel: str) -> None:
    if Spawner is None:
        pytest.skip("jupyterhub is not installed (pip install -e '.[test]')")
    rendered = renders.get(profile, channel)
    model = {p.name: p for p in rendered.cfg.spec.components.jupyterhub.profiles}
    entries = _profiles(rendered)
    assert entries, "no spawner profile rendered"
    traits = Spawner.class_traits()
    for entry in entries:
        spawner = Spawner()
        override = entry["kubespawner_override"]
        for key, value in override.items():
            if key in traits:  # the rest are KubeSpawner's own (image, tolerations, ...)
                setattr(spawner, key, value)  # what _apply_overrides does; raises TraitError if refused
        expected = _quantity_bytes(model[entry["slug"]].memory)
        assert spawner.mem_limit == expected and spawner.mem_guarantee == expected, entry["slug"]
        assert spawner.cpu_limit == model[entry["slug"]].cpu


def test_quantities_in_every_unit_become_the_same_bytes_kubernetes_means() -> None:
    from stacks.jupyterhub import memory_bytes

    cases = {"16Gi": 16 * 2**30, "1.5Gi": 3 * 2**29, "512Mi": 2**29, "4G": 4 * 10**9, "1000": 1000,
             "2Ti": 2 * 2**40, "100k": 10**5, "3Ki": 3072}
    assert {q: memory_bytes(q) for q in cases} == cases
    assert {q: _quantity_bytes(q) for q in cases} == cases
