"""Site folders: `kfinstall init` copies a profile's sample and generates its secrets."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from installer.config.secrets import generate_secrets
from installer.errors import ConfigError
from installer.paths import data_dir


@dataclass
class InitResult:
    copied: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    generated_secrets: list[str] = field(default_factory=list)
    secrets_path: Path = Path()


def init_site(profile: str, directory: Path) -> InitResult:
    """Copy inventories/<profile>/ into `directory` (never overwriting) and fill secrets.yml."""
    sample = data_dir("inventories") / profile
    if not sample.is_dir():
        raise ConfigError(f"no sample for profile {profile} at {sample}")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} exists and is not a folder; choose another path")
    result = InitResult(secrets_path=directory / "secrets.yml")
    for source in sorted(p for p in sample.rglob("*") if p.is_file()):
        target = directory / source.relative_to(sample)
        if target.exists():
            result.kept.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        result.copied.append(target)
    result.generated_secrets = generate_secrets(result.secrets_path)
    return result
