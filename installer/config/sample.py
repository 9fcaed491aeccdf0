"""Writes the documented sample kfinstall.yaml of each profile from the model itself.

Every field of the model appears, commented at its effective default with its description
(kolla globals.yml style), and the values a site must set are written active. Generating the
samples keeps them from drifting: tests/unit/test_samples.py fails when a committed sample differs
from what this module writes (`python -m installer.config.sample --write` refreshes them).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from installer.config.merge import deep_merge
from installer.config.model import API_VERSION, KIND, Spec
from installer.config.pydantic_errors import _model_in
from installer.paths import data_dir
from installer.profiles import load_profile
from installer.releases import channel_names

HEADER = """\
# kfinstall.yaml: the cluster description for profile {profile}. Sample; copy with `kfinstall init`.
#
# Every setting is listed. Commented lines show the effective default (the model's default
# overlaid with the {profile} profile); uncomment a line to change it. Settings resolve in this
# order, later wins: built-in defaults <- profile <- this file <- `--set key=value`. Mappings merge
# key by key; lists replace; unknown keys are errors. `kfinstall inventory validate -i DIR` checks it.
"""


def _dump(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _describe(field_info: Any, model: type[BaseModel] | None) -> str:
    text = field_info.description or ""
    if not text and model is not None and model.__doc__ and "Base of every section" not in model.__doc__:
        text = model.__doc__.strip().splitlines()[0]
    return text


def _comment_block(text: str, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}# {line}" for line in textwrap.wrap(text, width=96 - len(indent))]


def _is_active(path: str, active: dict[str, Any]) -> bool:
    return any(key == path or key.startswith(path + ".") for key in active)


def _lines(
    model: type[BaseModel], prefix: str, effective: dict[str, Any], active: dict[str, Any], depth: int
) -> list[str]:
    out: list[str] = []
    indent = "  " * depth
    for name, info in model.model_fields.items():
        key = info.alias or name
        path = f"{prefix}.{key}"
        sub = _model_in(info.annotation)
        is_section = sub is not None and typing_is_plain_model(info.annotation)
        mark = "" if _is_active(path, active) else "#"
        out += _comment_block(_describe(info, sub if is_section else None), indent)
        if is_section and sub is not None:
            out.append(f"{indent}{mark}{key}:")
            out += _lines(sub, path, effective.get(key, {}), active, depth + 1)
        else:
            value = active[path] if path in active else effective.get(key)
            out.append(f"{indent}{mark}{key}: {_dump(value)}" if value is not None else f"{indent}{mark}{key}:")
        if depth <= 1:
            out.append("")
    return out


def typing_is_plain_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def effective_spec(profile: str, channel: str) -> dict[str, Any]:
    """The spec every field resolves to for `profile` before the site sets anything."""
    base = Spec(profile=profile, channel=channel).model_dump(by_alias=True, mode="json")
    overlay = load_profile(profile).defaults.get("spec", {})
    return deep_merge(base, overlay)


def render_sample(profile: str, channel: str, name: str, site_values: dict[str, Any]) -> str:
    """kfinstall.yaml text: `site_values` maps dotted spec paths to the values written active."""
    active = {"spec.profile": profile, "spec.channel": channel, **{f"spec.{k}": v for k, v in site_values.items()}}
    lines = [
        HEADER.format(profile=profile).rstrip(),
        f"apiVersion: {API_VERSION}",
        f"kind: {KIND}",
        "metadata:",
        "  # Cluster name: a DNS label; names the state directory and the Pulumi stack.",
        f"  name: {name}",
        "spec:",
    ]
    lines += _lines(Spec, "spec", effective_spec(profile, channel), active, 1)
    while lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def sample_sites() -> dict[str, dict[str, Any]]:
    """Per profile: cluster name and the values a real site of that kind has to fill in."""
    return yaml.safe_load((data_dir("inventories") / "sites.yaml").read_text(encoding="utf-8"))


def write_samples(root: Path | None = None) -> list[Path]:
    root = root or data_dir("inventories")
    written = []
    for profile, site in sample_sites().items():
        target = root / profile / "kfinstall.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            render_sample(profile, site["channel"], site["name"], site.get("values", {})), encoding="utf-8"
        )
        written.append(target)
    return written


if __name__ == "__main__":
    if "--write" in sys.argv:
        for written_path in write_samples():
            print(written_path)
    else:
        print(render_sample("private-gpu", channel_names()[-1], "example", {}))
