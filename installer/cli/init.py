"""`kfinstall init --profile P DIR`: a new site folder from the profile's sample, with secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import click

from installer.cli.common import stdout, vault_password_option
from installer.config.load import check_site_profile
from installer.config.siteca import CA_FILE
from installer.profiles import profile_names
from installer.site import init_site


@click.command()
@click.option(
    "--profile",
    "profile_name",
    required=True,
    type=click.Choice(profile_names()),
    help="Which sample to start from (kfinstall profile show P prints its defaults).",
)
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@vault_password_option
def init(profile_name: str, directory: Path) -> None:
    """Create a site folder from a profile's sample and generate its secrets.

    Copies hosts.yml, kfinstall.yaml and group_vars/ from inventories/PROFILE without overwriting
    files that exist, then creates or completes secrets.yml (mode 0600) with random values.
    Secret values are never printed. Running it again is safe: it adds only missing files and
    empty generated secrets, keeps every existing value as written, and refuses (exit 2, nothing
    changed) unknown keys in secrets.yml and a kfinstall.yaml that names another profile. An
    ansible-vault encrypted secrets.yml is read with --vault-password-file (or
    ANSIBLE_VAULT_PASSWORD_FILE) and stays encrypted.
    """
    check_site_profile(directory, profile_name)
    result = init_site(profile_name, directory)
    for path in result.copied:
        stdout.print(f"created {path}", markup=False)
    for path in result.kept:
        stdout.print(f"kept    {path} (exists)", markup=False)
    generated = ", ".join(result.generated_secrets) or "none (all present)"
    mode = stat.S_IMODE(result.secrets_path.stat().st_mode)
    stdout.print(f"secrets {result.secrets_path} ({mode:04o}); generated: {generated}", markup=False)
    if mode & 0o077:  # kept as the operator left it: init replaces the file only to add a key
        stdout.print(f"warning: {result.secrets_path} is readable by others; run chmod 600 on it", markup=False)
    if result.ca_certificate is not None:
        stdout.print(f"site CA certificate {result.ca_certificate}: give it to your users' browsers to trust "
                     "the UIs' HTTPS certificates (its key stays in secrets.yml)", markup=False)
    elif result.ca_certificate_differs:
        stdout.print(f"warning: {directory / CA_FILE} is not the site CA in secrets.yml; kept as it is "
                     "(move it away and run init again to export the site CA)", markup=False)
    stdout.print(
        f"next: edit {directory}/hosts.yml and kfinstall.yaml, then "
        f"`kfinstall inventory validate -i {directory}` and `kfinstall plan -i {directory}`",
        markup=False,
    )
