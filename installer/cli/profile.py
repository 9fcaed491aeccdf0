"""`kfinstall profile show P`: the defaults a profile resolves to before a site sets anything."""

from __future__ import annotations

import click
import yaml

from installer.cli.common import emit_json, output_option, stdout
from installer.config.sample import effective_spec
from installer.profiles import load_profile, profile_names
from installer.releases import channel_names


@click.group()
def profile() -> None:
    """Inspect the profiles (bare-metal, private-cloud, private-gpu, gcp, lab)."""


@profile.command()
@click.argument("name", type=click.Choice(profile_names()))
@click.option(
    "--channel",
    default=None,
    type=click.Choice(channel_names()),
    help="Channel to resolve against (default: the newest).",
)
@output_option
def show(name: str, channel: str | None, output: str) -> None:
    """Print the resolved defaults of profile NAME (built-in defaults overlaid by the profile)."""
    chosen = channel or channel_names()[-1]
    data = {
        "profile": name,
        "description": load_profile(name).description,
        "hostPhase": load_profile(name).host_phase,
        "spec": effective_spec(name, chosen),
    }
    if output == "json":
        emit_json(data)
        return
    stdout.print(yaml.safe_dump(data, sort_keys=False), markup=False)
