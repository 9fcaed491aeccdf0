"""`kfinstall render`: what the platform phase would create, written as files, with no cluster."""

from __future__ import annotations

from pathlib import Path

import click

from installer.cli.common import emit_json, inventory_option, output_option, set_option, stdout
from installer.config.load import SECRETS_FILE, load
from installer.errors import ConfigError


@click.command()
@inventory_option
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder to write: <component>/ objects, helm/<release>.yaml, cloud/ (gcp).",
)
@set_option
@output_option
def render(inventory: Path, out: Path, sets: tuple[str, ...], output: str) -> None:
    """Write every Kubernetes object and Helm release the platform phase would create.

    Runs the real Pulumi program under Pulumi's mock engine: no cluster, Pulumi CLI, provider
    plugin or Helm binary is needed. One YAML document per object, a folder per component, and
    helm/<release>.yaml with chart, repository, version and full values. Secret values appear only
    in Secret objects; without secrets.yml, placeholders stand in for them.
    """
    from installer.render import render as render_site  # imports pulumi: only when the verb runs

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    # Sample sites ship without secrets.yml; render is a review tool, so it works without one.
    cfg = load(inventory, sets, need_secrets=(inventory / SECRETS_FILE).is_file())
    summary = render_site(cfg, out)
    if output == "json":
        emit_json(summary.to_dict())
        return
    for component, count in summary.objects.items():
        releases = ", ".join(summary.helm.get(component, []))
        stdout.print(f"{component}: {count} object(s)" + (f"; helm: {releases}" if releases else ""), markup=False)
    if summary.cloud:
        stdout.print(f"cloud: {summary.cloud} resource(s)", markup=False)
    stdout.print(f"{summary.total} Kubernetes objects written to {out}", markup=False)
