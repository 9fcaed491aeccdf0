"""Profiles: data overlays of spec defaults, one YAML file per profile.

A profile says which phases apply (gcp has no host phase) and which defaults differ from the
built-in baseline in installer.config.model.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    name: str
    description: str
    host_phase: bool = Field(alias="hostPhase")
    defaults: dict[str, Any]


@cache
def all_profiles() -> dict[str, Profile]:
    folder = resources.files(__name__)
    profiles = [
        Profile.model_validate(yaml.safe_load(entry.read_text(encoding="utf-8")))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    ]
    return {p.name: p for p in sorted(profiles, key=lambda p: p.name)}


def profile_names() -> list[str]:
    return list(all_profiles())


def load_profile(name: str) -> Profile:
    """The named profile; KeyError when unknown."""
    return all_profiles()[name]
