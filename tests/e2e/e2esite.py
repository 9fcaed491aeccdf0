"""What the e2e tests share: the site they run on (KFINSTALL_E2E_SITE) and a skip that prints its reason."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

SITE_ENV = "KFINSTALL_E2E_SITE"


def skip(reason: str) -> NoReturn:
    """Skip with the reason printed too (pytest shows skip reasons only with -rs)."""
    print(reason)
    pytest.skip(reason)


def site_from_env(whose: str, to_run: str) -> Path:
    """The site folder named by KFINSTALL_E2E_SITE; skip when it is unset, fail when it is no site.
    `whose` says what the site must have ("whose cluster is up"), `to_run` what it is for."""
    value = os.environ.get(SITE_ENV)
    if not value:
        skip(f"no cluster: set {SITE_ENV} to a site folder {whose} (see this module's docstring for every "
             f"precondition) to run {to_run}")
    site = Path(value)
    if not (site / "kfinstall.yaml").is_file():
        pytest.fail(f"{SITE_ENV}={value} has no kfinstall.yaml: name a site folder (kfinstall init makes one)")
    return site


def need_env(not_here: str, *names: str) -> list[str]:
    """The values of the environment variables `names`; skip, naming the missing ones after `not_here`."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        skip(f"{not_here} (missing: {', '.join(missing)})")
    return [os.environ[name] for name in names]
