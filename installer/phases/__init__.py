"""Ordered phases of `kfinstall up`; each returns a PhaseResult and raises on refusal or failure."""

from __future__ import annotations

from installer.phases.base import PhaseResult, RunContext

UP_PHASES = ("preflight", "hosts", "platform", "verify")

__all__ = ["UP_PHASES", "PhaseResult", "RunContext"]
