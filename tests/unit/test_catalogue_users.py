"""plan, verify, backup and upgrade take the platform's namespaces and levels from installer.catalogue."""

from __future__ import annotations

import json

from click.testing import CliRunner

from installer.cli import cli


def _plan(site, *sets: str) -> dict:  # noqa: ANN001 - a site folder
    args = ["plan", "-i", str(site), "-o", "json"]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_plan_lists_the_namespaces_the_program_creates_with_their_levels(make_site) -> None:
    site = make_site()
    namespaces = {n["name"]: n for n in _plan(site)["namespaces"]}
    assert namespaces["kubeflow"] == {"name": "kubeflow", "podSecurity": "restricted", "component": "training"}
    assert namespaces["kfinstall-storage"]["podSecurity"] == "privileged"
    assert namespaces["jupyterhub"]["podSecurity"] == "baseline"
    without = {n["name"] for n in _plan(site, "spec.components.training.enabled=false")["namespaces"]}
    assert "kubeflow" not in without and "jupyterhub" in without
