"""`kfinstall render`: what the platform phase would create, written as files, with no cluster."""

from __future__ import annotations

from pathlib import Path

import click

from installer.cli.common import emit_json, inventory_option, output_option, profile_option, set_option, stdout
from installer.config.load import SECRETS_FILE, load
from installer.errors import ConfigError
from installer.owned import check_folder, check_outside


@click.command()
@inventory_option
@profile_option
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder to write (new or empty, or an earlier render's): <component>/ objects, helm/<release>.yaml, "
    "cloud/ (gcp). Outside the site folder and state dir.",
)
@set_option
@output_option
def render(inventory: Path, profile: str | None, out: Path, sets: tuple[str, ...], output: str) -> None:
    """Write every Kubernetes object and Helm release the platform phase would create.

    Runs the real Pulumi program under Pulumi's mock engine: no cluster, Pulumi CLI, provider
    plugin or Helm binary is needed. One YAML document per object, a folder per component, and
    helm/<release>.yaml with chart, repository, version and full values. Secret values appear only
    in Secret objects; without secrets.yml, placeholders stand in for them.

    OUT keeps a record of the files render wrote (.kfinstall-files.json): a re-render replaces
    those and removes the ones no longer produced, and refuses (exit 2, nothing changed) a folder
    holding anything else, a file edited since, or a folder that is, holds or sits in the site folder
    or its state dir.
    """
    from installer.render import render as render_site  # imports pulumi: only when the verb runs

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    # Sample sites ship without secrets.yml; render is a review tool, so it works without one.
    cfg = load(inventory, sets, need_secrets=(inventory / SECRETS_FILE).is_file(), profile=profile)
    # Before anything is written: OUT must not be (or hold, or sit in) what the site owns.
    check_outside(out, "--out", {"site folder": cfg.site, "state dir": cfg.state_dir})
    check_folder(out, command="render --out")
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
