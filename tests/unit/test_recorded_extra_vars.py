"""The run record keeps the host phase's extra vars in the form kfinstall passed them (`!unsafe` YAML).

playbooks/README.md tells an operator to re-run a role with `-e @<record>/ansible-vars.yml`. Ansible
templates every string of a plain JSON vars file, so a recorded value such as an export path
`/x{{ lookup('pipe', ...) }}` would run on the operator's machine; from the recorded YAML it stays text.
Both are checked with a real ansible-playbook on localhost (local connection, no SSH).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from installer.adapters.ansible import PlaybookResult, unsafe_vars_yaml
from installer.config.load import load
from installer.phases import hosts as hosts_phase
from installer.phases.base import RunContext
from installer.runs import RunRecord

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PLAYBOOK = """\
- name: Print a recorded extra var
  hosts: all
  gather_facts: false
  tasks:
    - name: Print the export path
      ansible.builtin.debug:
        msg: "{{ kf_nfs_export_path }}"
"""


def _host_phase_record(make_site, monkeypatch, value: str) -> tuple[Path, dict[str, Any]]:  # noqa: ANN001
    """The host phase run for real, its playbook run replaced: the record's vars file, the vars passed."""
    cfg = load(make_site(), (f"spec.storage.nfs.exportPath={value}",))
    passed: list[dict[str, Any]] = []

    def fake_run_playbook(playbook: str, inventory: Path, extravars: dict[str, Any], *args: Any,
                          **kwargs: Any) -> PlaybookResult:
        passed.append(extravars)
        return PlaybookResult("successful", 0, 0.1)

    monkeypatch.setattr(hosts_phase, "run_playbook", fake_run_playbook)
    record = RunRecord.start(cfg, "test")
    hosts_phase.run(RunContext(cfg, record, Console(file=io.StringIO())))
    return record.path / hosts_phase.RECORDED_VARS, passed[0]


def _ansible_playbook(tmp_path: Path, vars_file: Path) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "print.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "local.ini"
    inventory.write_text(f"localhost ansible_python_interpreter={sys.executable}\n")
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False"}
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-c", "local", "-e", f"@{vars_file}", str(playbook)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def test_recorded_vars_file_is_what_kfinstall_passed_and_is_never_templated(make_site, monkeypatch,
                                                                              tmp_path: Path) -> None:
    marker = tmp_path / "payload-ran"
    value = "/x{{ lookup('pipe', 'touch " + str(marker) + "') }}"
    recorded, passed = _host_phase_record(make_site, monkeypatch, value)

    # The very text run_playbook writes for ansible-playbook (write_unsafe_vars).
    assert recorded.read_text(encoding="utf-8") == unsafe_vars_yaml(passed)
    assert recorded.stat().st_mode & 0o777 == 0o600
    assert not (recorded.parent / "ansible-vars.json").exists(), "a templated copy beside it invites -e @ on it"

    done = _ansible_playbook(tmp_path, recorded)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not marker.exists(), "the recorded value ran on the controller"
    assert f'"msg": {json.dumps(value)}' in done.stdout, done.stdout

    # The same values as plain JSON, as the record used to keep them: Ansible templates them (the check
    # above can fail).
    plain = tmp_path / "ansible-vars.json"
    plain.write_text(json.dumps(passed))
    assert _ansible_playbook(tmp_path, plain).returncode == 0
    assert marker.exists(), "plain JSON extra vars are templated by Ansible"
