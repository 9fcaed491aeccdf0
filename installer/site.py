"""Site folders: `kfinstall init` copies a profile's sample and generates its secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from installer.config.problems import Problems
from installer.config.secrets import check_secrets, generate_secrets, load_secrets
from installer.config.siteca import CA_FILE, site_ca_certificate
from installer.errors import ConfigError
from installer.owned import NewFile, open_folder
from installer.paths import data_dir


@dataclass
class InitResult:
    copied: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    generated_secrets: list[str] = field(default_factory=list)
    secrets_path: Path = Path()
    ca_certificate: Path | None = None
    """site-ca.crt when it holds the site CA of secrets.yml (written now or before); None otherwise."""
    ca_certificate_differs: bool = False
    """A site-ca.crt kfinstall did not write (or an older CA's) is in the way; it was kept."""


def init_site(profile: str, directory: Path) -> InitResult:
    """Copy inventories/<profile>/ into `directory` (never overwriting) and fill secrets.yml.

    On an existing site it adds only what is missing: sample files that are absent and generated
    secrets that are empty; every existing file is kept as it is. Everything is checked before the
    first write, so a refusal (exit 2) changes nothing: secrets.yml that is not a mapping of known
    keys or cannot be decrypted, and a folder in the way that is a symbolic link (kfinstall does not
    write through links) or a file.
    """
    sample = data_dir("inventories") / profile
    if not sample.is_dir():
        raise ConfigError(f"no sample for profile {profile} at {sample}")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} exists and is not a folder; choose another path")
    result = InitResult(secrets_path=directory / "secrets.yml")
    missing = _missing_sample_files(sample, directory, result)
    check_secrets(result.secrets_path)
    with open_folder(directory, create=True) as folder:
        created_dirs: list[str] = []
        for rel, source in missing:
            # create() never replaces: a file that appeared since the check is kept, not overwritten.
            if folder.create(rel, NewFile(source.read_bytes(), 0o644), created_dirs):
                result.copied.append(directory / rel)
            else:
                result.kept.append(directory / rel)
    result.generated_secrets = generate_secrets(result.secrets_path)
    _export_ca_certificate(directory, result)
    return result


def _export_ca_certificate(directory: Path, result: InitResult) -> None:
    """Write the site CA's certificate (public) beside secrets.yml for operators to hand to users.

    Only the certificate leaves secrets.yml; an existing site-ca.crt is never replaced (it may be the
    operator's, or the certificate of a CA users already trust).
    """
    secrets = load_secrets(result.secrets_path, str(result.secrets_path), Problems())
    pem = site_ca_certificate(secrets.site_ca.get_secret_value()) if secrets is not None else None
    if pem is None:
        return
    path = directory / CA_FILE
    with open_folder(directory, create=False) as folder:
        # 0644: a CA certificate is public, made to be copied into browsers and trust stores.
        if folder.create(CA_FILE, NewFile(pem.encode("ascii"), 0o644), []):
            result.ca_certificate = path
            return
    try:
        same = path.read_text(encoding="ascii") == pem
    except (OSError, UnicodeDecodeError):
        same = False
    result.ca_certificate = path if same else None
    result.ca_certificate_differs = not same


def _missing_sample_files(sample: Path, directory: Path, result: InitResult) -> list[tuple[str, Path]]:
    """Sample files absent from `directory`, after checking no folder on their way is a link or a file."""
    missing = []
    if not directory.exists():
        return [(p.relative_to(sample).as_posix(), p) for p in sorted(sample.rglob("*")) if p.is_file()]
    with open_folder(directory, create=False) as folder:
        for source in sorted(p for p in sample.rglob("*") if p.is_file()):
            rel = source.relative_to(sample).as_posix()
            with folder.directory(tuple(rel.split("/")[:-1])):
                pass  # raises ConfigError (exit 2) for a link or a file on the way
            if folder.exists(rel):
                result.kept.append(directory / rel)
            else:
                missing.append((rel, source))
    return missing
