"""`kfinstall channels`: the release channels with their Kubernetes range and upgrade edges."""

from __future__ import annotations

import click
from rich.table import Table

from installer.cli.common import emit_json, output_option, stdout
from installer.releases import all_releases


@click.command()
@output_option
def channels(output: str) -> None:
    """List release channels, oldest first, with the versions each pins."""
    releases = all_releases()
    if output == "json":
        emit_json([r.model_dump(by_alias=True, mode="json") for r in releases])
        return
    table = Table(title="Release channels")
    for column in ("channel", "kubeflow", "kubernetes", "z2jh", "training-operator", "upgrades from"):
        table.add_column(column)
    for r in releases:
        k8s = f"{r.kubernetes.min_minor}-{r.kubernetes.max_minor} (default {r.kubernetes.default_minor})"
        table.add_row(
            r.channel,
            r.kubeflow_ref,
            k8s,
            r.charts["jupyterhub"].version,
            r.images["training-operator"].release or "",
            ", ".join(r.upgrades_from) or "-",
        )
    stdout.print(table)
