"""Fixtures of the stacks tier: renders of every sample site on every channel, once per session."""

from __future__ import annotations

import pytest
from stackhelpers import RenderCache


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> RenderCache:
    return RenderCache(tmp_path_factory.mktemp("stacks"))
