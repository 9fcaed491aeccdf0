"""playbooks/00-validate.yml refuses the example sites of the refusals it names, with the same id.

tests/unit/test_refusals.py checks that kfinstall refuses each row's example and that the asserts name
ids of the table; this runs the playbook itself on those examples (its asserts need no connection), so
an assert labelled with one id cannot check another condition.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from installer.config.load import load
from installer.config.refusals import BY_ID

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
VALIDATE = "playbooks/00-validate.yml"


def _examples() -> Any:
    spec = importlib.util.spec_from_file_location("refusal_examples", REPO / "tests" / "unit" / "test_refusals.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EXAMPLES


CASES = [(rule, cluster, hosts) for rule, examples in _examples().items() if VALIDATE in BY_ID[rule].asserted_in
         for cluster, hosts, _password, _key in examples]


def _vars(changes: dict[str, Any]) -> dict[str, Any]:
    """The kf_* extra vars an example's kfinstall.yaml changes would give (kfinstall refuses them itself)."""
    gluster = changes.get("spec.storage", {}).get("gluster", {})
    found = {"kf_gluster_enabled": gluster.get("enabled"), "kf_gluster_replica": gluster.get("replica"),
             "kf_containerd_source": changes.get("spec.containerd", {}).get("source")}
    return {key: value for key, value in found.items() if value is not None}


def _validate(site: Path, extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(site / "hosts.yml"), "-c", "local", "-e", json.dumps(extra),
                           VALIDATE], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def test_the_valid_site_passes(make_site) -> None:
    site = make_site()
    result = _validate(site, load(site).ansible_vars())
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(("rule", "cluster", "hosts"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_the_playbook_refuses_each_example_with_its_id(make_site, rule, cluster, hosts) -> None:
    extra = load(make_site()).ansible_vars()
    site = make_site(cluster=cluster, hosts=hosts)  # the same folder, now holding the example
    result = _validate(site, {**extra, **_vars(cluster)})
    assert result.returncode != 0, result.stdout[-3000:]
    assert f"[kfinstall refusal {rule}]" in result.stdout, result.stdout[-3000:]
