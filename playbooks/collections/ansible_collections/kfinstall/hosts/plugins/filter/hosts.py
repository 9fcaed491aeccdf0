# Copyright: kfinstall authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the host roles share: a package's upstream version, and the packages the table says a host needs.

The package table (kf_packages, in roles/kf_defaults) maps each part to its packages and the condition
under which they are needed; os_prepare installs the union in one apt transaction, a role run alone
installs its own entries. Both ask `needed_packages`, so the table is read the same way everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# The upstream version's leading release numbers: digits and dots, after an optional epoch ("1:").
_RELEASE = re.compile(r"^(?:[0-9]+:)?([0-9]+(?:\.[0-9]+)*)")
# Jinja renders a condition to text; these are the spellings of true and false it and YAML produce.
_TRUE = ("true", "yes")
_FALSE = ("false", "no", "")
# A package name as apt-get takes it (name, name:arch, name=version): one word, never an option.
_PACKAGE = re.compile(r"^[A-Za-z0-9][^\s]*$")


def upstream_version(value: object) -> str:
    """The release numbers of a Debian or upstream version, for comparing with a minimum.

    The epoch ("N:"), a leading "v", "~" and "+" suffixes, the Debian revision and a pre-release suffix
    are dropped, leaving the leading digits and dots (a pre-release counts as its release: distributions
    ship none of the packages compared); "", "(none)" (apt's candidate when there is none) and text
    without numbers give "". tests/playbooks/test_host_filters.py has the table of examples.
    """
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise AnsibleFilterError(
            f"upstream_version takes a version as text, not a {type(value).__name__} ({value!r}); "
            "quote the version in YAML (\"1.10\", not 1.10).")
    text = str(value).strip()
    if text[:1] in ("v", "V") and text[1:2].isdigit():
        text = text[1:]
    found = _RELEASE.match(text)
    return found.group(1) if found else ""


def _flag(entry_name: str, field: str, value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    raise AnsibleFilterError(
        f"kf_packages entry {entry_name!r}: {field} is {value!r}, which is neither true nor false; "
        f"give a boolean or a condition that renders to True or False.")


def _packages(entry_name: str, entry: Mapping) -> list[str]:
    packages = entry.get("packages")
    if not isinstance(packages, list) or not all(isinstance(name, str) for name in packages):
        raise AnsibleFilterError(
            f"kf_packages entry {entry_name!r} needs `packages`, a list of package names, "
            f"not {type(packages).__name__}: e.g. packages: [chrony].")
    for name in packages:
        if not _PACKAGE.match(name):
            raise AnsibleFilterError(
                f"kf_packages entry {entry_name!r}: {name!r} is not a package name (one word starting with "
                "a letter or digit, as apt-get takes it: name, name:arch or name=version).")
    return packages


def needed_packages(table: object, part: object = None, transaction_only: bool = False) -> list[str]:
    """Sorted unique package names of the table's entries whose `needed` is true.

    part: only the entries whose key or `role` field equals it (a role run alone asks for its own).
    transaction_only: leave out the entries marked `transaction: false` (their role installs them after a
    check of its own), as os_prepare's one transaction does.
    """
    if not isinstance(table, Mapping):
        raise AnsibleFilterError(f"needed_packages takes the package table (a mapping), not a {type(table).__name__}.")
    if part is not None and not isinstance(part, str):
        raise AnsibleFilterError(f"needed_packages: the part must be a role or entry name, not {part!r}.")
    wanted: set[str] = set()
    for name, entry in table.items():
        if not isinstance(entry, Mapping):
            raise AnsibleFilterError(f"kf_packages entry {name!r} must be a mapping with packages and needed.")
        if part is not None and part not in (name, entry.get("role")):
            continue
        packages = _packages(str(name), entry)
        if "needed" not in entry:
            raise AnsibleFilterError(f"kf_packages entry {name!r} has no `needed`: add needed: true or a condition.")
        if transaction_only and not _flag(str(name), "transaction", entry.get("transaction"), default=True):
            continue
        if _flag(str(name), "needed", entry["needed"], default=False):
            wanted.update(packages)
    return sorted(wanted)


def package_minimums(table: object, part: object = None) -> dict[str, dict[str, str]]:
    """name -> {version, hint} of the needed entries' packages that have a minimum (as needed_packages
    selects the entries). An entry's `minimum` maps a package to its lowest accepted version ("": the
    package need only exist). Checked against apt's candidate, or the installed version, before
    anything is installed."""
    minimums: dict[str, dict[str, str]] = {}
    for name, entry in (table.items() if isinstance(table, Mapping) else []):
        if not isinstance(entry, Mapping) or "minimum" not in entry:
            continue
        wanted = entry["minimum"]
        if not isinstance(wanted, Mapping):
            raise AnsibleFilterError(
                f"kf_packages entry {name!r}: minimum maps a package to a version, "
                "e.g. minimum: {containerd: '<version>'}.")
        needed = needed_packages({name: entry}, part)
        for package, version in wanted.items():
            if package in needed:
                minimums[package] = {"version": upstream_version(version) if version else "",
                                     "hint": str(entry.get("hint") or "")}
    return minimums


def kfinstall_installed(table: object, installed: object, before: object) -> dict[str, list[str]]:
    """{packages, services}: the table's packages kfinstall installed on a host, and their entries' units.

    `installed`: the packages on the host now (the probe's kf_host.packages); `before`: those installed
    before kfinstall first wrote to the host (its record, kfinstall.hosts.files). A package that was there
    before is the operator's, and so are the units of its entry: `kfinstall reset` leaves them alone.
    Every entry counts, needed on this host today or not: a setting changed since may have left one.
    """
    if not isinstance(table, Mapping):
        raise AnsibleFilterError(f"kfinstall_installed takes the package table, not a {type(table).__name__}.")
    if before is None:
        return {"packages": [], "services": []}
    there_before = {str(name) for name in before}  # type: ignore[union-attr]
    present = {str(name).split(":")[0] for name in (installed or {})} - there_before  # type: ignore[union-attr]
    packages: set[str] = set()
    services: set[str] = set()
    for name, entry in table.items():
        if not isinstance(entry, Mapping):
            raise AnsibleFilterError(f"kf_packages entry {name!r} must be a mapping with packages and needed.")
        listed = set(_packages(str(name), entry))
        ours = listed & present
        packages |= ours
        # An entry's units are kfinstall's only when none of its packages was there before (glusterfs-server
        # the operator's, xfsprogs kfinstall's: glusterd is the operator's and stays).
        if ours and not listed & there_before:
            services |= {str(unit) for unit in entry.get("services") or []}
    return {"packages": sorted(packages), "services": sorted(services)}


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"upstream_version": upstream_version, "needed_packages": needed_packages,
                "package_minimums": package_minimums, "kfinstall_installed": kfinstall_installed}
