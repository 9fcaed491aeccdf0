"""A Kubespray-style bastion on real lab hosts (issue 15 item 5).

Reuses the session lab: h1 becomes the `bastion` of a site whose cluster hosts are h2 and h3, and h2
and h3 are named by addresses only h1 can resolve (kfa-h2, kfa-h3 in h1's /etc/hosts), so the only
way to them is through h1. The preflight pins all three keys (the bastion's too) in a fresh state dir
and runs Ansible on h2 and h3 through the jump; a changed bastion key stops the run before any task.
Each test costs seconds: no playbook but the preflight's fact gathering.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
from pathlib import Path

import pytest
import yaml
from labsite import LabSite
from rich.console import Console

from installer.config.load import load
from installer.errors import PreflightError
from installer.phases import RunContext, preflight
from installer.runs import RunRecord

pytestmark = pytest.mark.lab
ONLY_ON_H1 = {"h2": "kfa-h2", "h3": "kfa-h3"}  # names h1 resolves and this machine does not


def _fingerprints(known_hosts: Path, name: str) -> set[str]:
    out = subprocess.run(["ssh-keygen", "-l", "-F", name, "-f", str(known_hosts)],
                         capture_output=True, text=True, check=False).stdout
    return {" ".join(line.split()[-2:]) for line in out.splitlines() if line and not line.startswith("#")}


@pytest.fixture
def bastion_site(lab_site: LabSite, tmp_path: Path):
    """A site copied from the lab's: h1 only the bastion, h2 (control plane, NFS) and h3 behind it."""
    lab = yaml.safe_load(lab_site.inventory.read_text())["all"]
    hosts = {name: dict(lab["hosts"][name]) for name in ("h1", "h2", "h3")}
    for name, alias in ONLY_ON_H1.items():
        hosts[name]["ansible_host"] = alias
    inventory = {"all": {"vars": lab.get("vars", {}), "hosts": hosts, "children": {
        "bastion": {"hosts": {"h1": None}},
        "kube_control_plane": {"hosts": {"h2": None}},
        "kube_node": {"hosts": {"h2": None, "h3": None}},
        "nfs_server": {"hosts": {"h2": None}},
    }}}
    site = tmp_path / "site"
    site.mkdir()
    (site / "hosts.yml").write_text(yaml.safe_dump(inventory))
    for name in ("kfinstall.yaml", "secrets.yml"):
        (site / name).write_bytes((lab_site.out_dir / name).read_bytes())
    (site / "secrets.yml").chmod(0o600)
    names = "\n".join(f"{lab_site.addresses[h]} {alias}" for h, alias in ONLY_ON_H1.items())
    added = lab_site.ssh("h1", f"printf '%s\\n' '{names}' >> /etc/hosts")
    assert added.returncode == 0, added.stderr
    try:
        yield site
    finally:
        lab_site.ssh("h1", "sed -i '/ kfa-h[23]$/d' /etc/hosts")


def _preflight(site: Path, state_dir: Path) -> tuple[str, Path]:
    cfg = load(site, ["spec.storage.gluster.enabled=false"], state_dir=state_dir)
    record = RunRecord.start(cfg, "test bastion preflight")
    buffer = io.StringIO()
    preflight.run(RunContext(cfg=cfg, record=record, console=Console(file=buffer, width=400),
                             phases=("preflight", "hosts")))
    return buffer.getvalue(), record.path


def test_hosts_behind_a_bastion_are_reached_only_through_it_with_every_key_pinned(
    lab_site: LabSite, bastion_site: Path, tmp_path: Path
) -> None:
    for alias in ONLY_ON_H1.values():  # this machine cannot reach them by that name itself
        with pytest.raises(OSError):
            socket.getaddrinfo(alias, 22)
    state = tmp_path / "state"
    output, record = _preflight(bastion_site, state)
    pinned = json.loads((record / "host-keys.json").read_text())["pinned"]
    assert sorted(pinned) == ["h1", "h2", "h3"], output
    # What was pinned through the jump is each machine's real key (lab up read them from inside).
    assert _fingerprints(state / "known_hosts", lab_site.addresses["h1"]) <= _fingerprints(
        lab_site.known_hosts, lab_site.addresses["h1"])
    for host, alias in ONLY_ON_H1.items():
        through_jump = _fingerprints(state / "known_hosts", alias)
        assert through_jump and through_jump <= _fingerprints(lab_site.known_hosts, lab_site.addresses[host])
    # Ansible ran on h2 and h3 (facts gathered through h1), never on the bastion.
    facts = json.loads((record / "preflight.json").read_text())["facts_hosts"]
    assert facts == ["h2", "h3"]
    assert (state / "ssh_config").read_text().count("ProxyJump") == 1
    again, record = _preflight(bastion_site, state)
    assert sorted(json.loads((record / "host-keys.json").read_text())["verified"]) == ["h1", "h2", "h3"]


def test_a_changed_bastion_key_stops_the_run_naming_the_bastion(
    lab_site: LabSite, bastion_site: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    _preflight(bastion_site, state)  # pins the three keys
    container = lab_site.settings.container_name("h1")
    subprocess.run(["podman", "exec", container, "sh", "-c", "rm -rf /root/kfa-hostkeys && mkdir /root/kfa-hostkeys"
                    " && mv /etc/ssh/ssh_host_* /root/kfa-hostkeys/ && systemctl restart ssh"],
                   check=True, capture_output=True, timeout=120)
    try:
        with pytest.raises(PreflightError) as caught:
            _preflight(bastion_site, state)
    finally:
        subprocess.run(["podman", "exec", container, "sh", "-c", "mv -f /root/kfa-hostkeys/* /etc/ssh/ && "
                        "rmdir /root/kfa-hostkeys && systemctl restart ssh"], check=True, capture_output=True,
                       timeout=120)
    message = caught.value.message
    assert "h1: its SSH host key CHANGED" in message, message
    assert "h2:" not in message and "h3:" not in message  # the hosts behind it were not even tried
    assert lab_site.ssh("h1", "true").returncode == 0  # the pinned key is back
