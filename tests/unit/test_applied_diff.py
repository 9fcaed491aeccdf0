"""`plan` against what is installed: up's applied record (installer/applied.py) and plan's diff
(installer/plandiff.py). Sites are copies of inventories/private-gpu with generated secrets; every
record is written by the record function `up` calls, from the real loaded site."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from installer import up as up_module
from installer.applied import APPLIED_FILE, KEY_FILE, charts_dir, read_applied, record_apply
from installer.config.load import load
from installer.config.secrets import generate_secrets
from installer.errors import PhaseFailed, PreflightError
from installer.phases import PhaseResult
from installer.runs import secret_forms
from installer.state import State, write_state

REPO = Path(__file__).resolve().parents[2]
HUB_SIZE = "spec.components.jupyterhub.storageSize"


def _site(dest: Path, hub_size: str = "50Gi") -> Path:
    site = dest
    shutil.copytree(REPO / "inventories" / "private-gpu", site)
    generate_secrets(site / "secrets.yml")
    _set_secret(site, "ldap_bind_password", "bind-password-for-diff-tests")
    _set_hub_size(site, hub_size)
    return site


def _set_secret(site: Path, key: str, value: str) -> None:
    data = yaml.safe_load((site / "secrets.yml").read_text())
    data[key] = value
    (site / "secrets.yml").write_text(yaml.safe_dump(data))
    (site / "secrets.yml").chmod(0o600)


def _set_hub_size(site: Path, size: str) -> None:
    data = yaml.safe_load((site / "kfinstall.yaml").read_text())
    data["spec"].setdefault("components", {}).setdefault("jupyterhub", {})["storageSize"] = size
    (site / "kfinstall.yaml").write_text(yaml.safe_dump(data))


def _add_gpu_worker(site: Path, name: str = "gpu3", address: str = "192.0.2.23") -> None:
    data = yaml.safe_load((site / "hosts.yml").read_text())
    data["all"]["hosts"][name] = {"ansible_host": address}
    data["all"]["children"]["kube_node"]["hosts"][name] = None
    data["all"]["children"]["gpu"]["hosts"][name] = None
    (site / "hosts.yml").write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(site, state dir) after a recorded apply of both parts, JupyterHub storage 50Gi. Tests only read
    this state dir (the path enters the platform fingerprint, so it stays the same)."""
    root = tmp_path_factory.mktemp("applied")
    site, state = _site(root / "site"), root / "state"
    record_apply(load(site, state_dir=state), run_id="recorded")
    return site, state


def _diff(kfinstall_streams: Callable[..., tuple[int, str, str]], site: Path, state: Path
          ) -> tuple[dict[str, Any], str]:
    """(plan JSON's diff, text plan) for the site against the state dir."""
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--state-dir", str(state), "-o", "json")
    assert code == 0, err
    code, text, err = kfinstall_streams("plan", "-i", str(site), "--state-dir", str(state))
    assert code == 0, err
    return json.loads(out)["diff"], text + err


def test_hub_storage_change_shows_the_setting_and_the_chart_value(recorded, tmp_path, kfinstall_streams) -> None:
    site, state = recorded
    changed = tmp_path / "site"
    shutil.copytree(site, changed)
    _set_hub_size(changed, "100Gi")
    diff, text = _diff(kfinstall_streams, changed, state)
    assert diff["against"] == "recorded"
    assert diff["settings"] == [{"key": HUB_SIZE, "change": "changed", "old": "50Gi", "new": "100Gi"}]
    components = diff["components"]
    assert components["rendered"] is True
    assert components["created"] == components["deleted"] == []
    assert components["changed"] == [{
        "id": "HelmRelease/jupyterhub/jupyterhub", "component": "jupyterhub",
        "changes": [{"path": "/values/singleuser/storage/capacity", "change": "changed", "old": "50Gi",
                     "new": "100Gi"}]}]
    assert f"changed {HUB_SIZE}: 50Gi -> 100Gi" in text
    assert "/values/singleuser/storage/capacity: 50Gi -> 100Gi" in text
    assert "the platform diff is against the last recorded apply" in text


def test_second_plan_of_the_same_change_reuses_the_evaluation(recorded, tmp_path, monkeypatch,
                                                              kfinstall_streams) -> None:
    from installer import render
    from installer.applied import RENDER_CACHE_FILE

    site, state = recorded
    changed = tmp_path / "site"
    shutil.copytree(site, changed)
    _set_hub_size(changed, "75Gi")
    first, _ = _diff(kfinstall_streams, changed, state)
    assert (state / RENDER_CACHE_FILE).stat().st_mode & 0o777 == 0o600

    def no_render(*args, **kwargs):
        raise AssertionError("the platform was evaluated again for the same inputs")

    monkeypatch.setattr(render, "evaluate", no_render)
    again, _ = _diff(kfinstall_streams, changed, state)
    assert again["components"]["fromCache"] is True
    assert {**again["components"], "fromCache": False} == first["components"]
    assert first["components"]["changed"][0]["changes"][0]["new"] == "75Gi"
    _set_hub_size(changed, "76Gi")  # other inputs: the cache is not used
    with pytest.raises(AssertionError, match="evaluated again"):
        _diff(kfinstall_streams, changed, state)


def test_unchanged_site_shows_no_change_and_does_not_render(recorded, kfinstall_streams) -> None:
    site, state = recorded
    diff, _ = _diff(kfinstall_streams, site, state)
    assert diff["hostsAdded"] == diff["hostsRemoved"] == {}
    assert diff["settings"] == diff["versions"] == diff["refusals"] == []
    assert diff["components"] == {"rendered": False, "fromCache": False, "created": [], "changed": [], "deleted": []}


def test_added_host_shows_with_its_roles_and_leaves_the_platform_alone(recorded, tmp_path,
                                                                       kfinstall_streams) -> None:
    from installer.applied import hasher_for, installed_outputs, rendered_objects

    site, state = recorded
    grown = tmp_path / "site"
    shutil.copytree(site, grown)
    _add_gpu_worker(grown)
    diff, text = _diff(kfinstall_streams, grown, state)
    assert diff["hostsAdded"] == {"gpu": ["gpu3"], "kube_node": ["gpu3"]}
    assert diff["hostsRemoved"] == {}
    assert "host added: gpu3 (gpu, kube_node)" in text
    # Not rendered: a worker is no platform input. That is only honest if the render really is the same.
    assert diff["components"]["rendered"] is False
    cfg = load(grown, state_dir=state)
    record = read_applied(state)
    assert record is not None
    outputs = installed_outputs(cfg, None)
    assert rendered_objects(cfg, hasher_for(state), outputs) == record["platform"]["objects"]


def test_channel_change_gives_ups_refusal(tmp_path, kfinstall_streams) -> None:
    site, state = _site(tmp_path / "site"), tmp_path / "state"
    cfg = load(site, state_dir=state)
    record_apply(cfg, ("hosts",), run_id="old")
    write_state(state, State(cluster=cfg.name, installed_channel="1.11", phases_done=["hosts", "platform"]))
    with pytest.raises(PreflightError) as refused:
        up_module.against_installed(cfg)
    diff, text = _diff(kfinstall_streams, site, state)
    assert diff["refusals"] == [refused.value.message]
    assert "kfinstall upgrade --to 26.03" in diff["refusals"][0]
    assert f"refused by up: {refused.value.message}" in text


def test_a_record_older_than_the_installed_channel_says_so(tmp_path, kfinstall_streams) -> None:
    site, state = _site(tmp_path / "site"), tmp_path / "state"
    cfg = load(site, state_dir=state)
    record_apply(load(site, ["spec.channel=1.11"], state_dir=state), ("hosts",), run_id="before-upgrade")
    write_state(state, State(cluster=cfg.name, installed_channel="26.03", phases_done=["hosts", "platform"]))
    diff, _ = _diff(kfinstall_streams, site, state)
    assert diff["refusals"] == []
    assert {"key": "channel", "change": "changed", "old": "1.11", "new": "26.03"} in diff["versions"]
    assert "the record is of channel 1.11 but channel 26.03 is installed" in diff["summary"]


def test_without_a_record_plan_says_fresh_install(tmp_path, kfinstall_streams) -> None:
    site = _site(tmp_path / "site")
    diff, text = _diff(kfinstall_streams, site, tmp_path / "state")
    assert diff["against"] == "nothing"
    assert diff["summary"].startswith("fresh install")
    assert "Diff: fresh install" in text
    assert not (tmp_path / "state").exists()  # plan writes nothing


def test_changed_secret_shows_changed_without_any_value(recorded, tmp_path, kfinstall_streams) -> None:
    site, state = recorded
    changed = tmp_path / "site"
    shutil.copytree(site, changed)
    old = yaml.safe_load((site / "secrets.yml").read_text())["grafana_admin_password"]
    new = "a-new-grafana-admin-password-42"
    _set_secret(changed, "grafana_admin_password", new)
    diff, text = _diff(kfinstall_streams, changed, state)
    assert diff["settings"] == [{"key": "secrets.grafana_admin_password", "change": "changed", "old": "<secret>",
                                 "new": "<secret>", "secret": True}]
    changed_ids = [c["id"] for c in diff["components"]["changed"]]
    assert "Secret/monitoring/grafana-admin" in changed_ids
    assert "secrets.grafana_admin_password: <secret> (changed)" in text
    everything = json.dumps(diff) + text + (state / APPLIED_FILE).read_text()
    for value in (old, new):
        for form in secret_forms(value):
            assert form not in everything


def test_without_secrets_file_no_secret_change_is_claimed(recorded, tmp_path, kfinstall_streams) -> None:
    site, state = recorded
    bare = tmp_path / "site"
    shutil.copytree(site, bare)
    (bare / "secrets.yml").unlink()
    diff, _ = _diff(kfinstall_streams, bare, state)
    assert diff["settings"] == []
    assert diff["components"]["rendered"] is True  # the inputs differ (no secrets), the objects do not
    assert diff["components"]["changed"] == diff["components"]["created"] == []


def test_record_files_are_private_and_hold_no_secret(recorded) -> None:
    site, state = recorded
    for name in (APPLIED_FILE, KEY_FILE):
        assert (state / name).stat().st_mode & 0o777 == 0o600
    text = (state / APPLIED_FILE).read_text()
    for value in yaml.safe_load((site / "secrets.yml").read_text()).values():
        for form in secret_forms(str(value)) if value else ():
            assert form not in text


def test_failed_platform_phase_keeps_the_platform_record(tmp_path, monkeypatch) -> None:
    site, state = _site(tmp_path / "site"), tmp_path / "state"
    record_apply(load(site, state_dir=state), run_id="before")
    before = read_applied(state)
    assert before is not None
    _set_hub_size(site, "100Gi")

    def platform_fails(ctx):
        raise PhaseFailed("platform: the Helm release failed")

    monkeypatch.setitem(up_module.PHASES, "preflight", lambda ctx: PhaseResult("preflight", "ok"))
    monkeypatch.setitem(up_module.PHASES, "hosts", lambda ctx: PhaseResult("hosts", "ok"))
    monkeypatch.setitem(up_module.PHASES, "platform", platform_fails)
    with pytest.raises(PhaseFailed):
        up_module.run_up(load(site, state_dir=state), Console(file=io.StringIO()))
    after = read_applied(state)
    assert after is not None
    assert after["platform"] == before["platform"]  # not applied: the record must not say it was
    assert after["hosts"]["runId"] != "before"
    assert after["hosts"]["settings"][HUB_SIZE] == "100Gi"


def test_incomplete_host_phase_keeps_the_hosts_record(tmp_path, monkeypatch) -> None:
    site, state = _site(tmp_path / "site"), tmp_path / "state"
    record_apply(load(site, state_dir=state), ("hosts",), run_id="before")
    _add_gpu_worker(site)
    monkeypatch.setitem(up_module.PHASES, "preflight", lambda ctx: PhaseResult("preflight", "ok"))
    monkeypatch.setitem(up_module.PHASES, "hosts", lambda ctx: PhaseResult("hosts", "incomplete"))
    up_module.run_up(load(site, state_dir=state), Console(file=io.StringIO()), only="hosts")
    after = read_applied(state)
    assert after is not None
    assert after["hosts"]["runId"] == "before"
    assert "gpu3" not in after["hosts"]["roles"]["kube_node"]


def test_damaged_record_is_exit_2_naming_the_file_and_the_fix(recorded, tmp_path, kfinstall_streams) -> None:
    site, _ = recorded
    state = tmp_path / "state"
    state.mkdir()
    (state / APPLIED_FILE).write_text('{"format": 1, "hosts": [')
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--state-dir", str(state))
    assert code == 2
    assert str(state / APPLIED_FILE) in err and "mv " in err and "Traceback" not in err + out


def test_fingerprint_covers_every_inventory_read_of_the_stacks() -> None:
    """platform_fingerprint takes the control planes and the NFS server from the inventory, nothing
    else: a stack reading more of it would make plan skip a render whose result changed."""
    reads = set()
    for path in sorted((REPO / "stacks").rglob("*.py")):
        for line in path.read_text().splitlines():
            code = line.split("#")[0]
            reads |= set(re.findall(r"\.inventory\.\w+\([^)]*\)|\.inventory\b(?!\.)|\w+_address\(\)", code))
    assert reads <= {'.inventory.in_role("kube_control_plane")', "nfs_server_address()"}


def test_record_finds_the_chart_values_and_output_name_the_stacks_use() -> None:
    from installer import applied
    from stacks import storage, values

    assert charts_dir(REPO / "stacks") == values.charts_dir()
    assert applied.VOLUME_CLASSES_OUTPUT == storage.VOLUME_CLASSES_OUTPUT


def test_fingerprint_covers_every_installer_module_the_stacks_import() -> None:
    """A module of installer/ that stacks/ imports shapes the render: its bytes must be in the
    fingerprint (installer.config and installer.releases enter as the model and the release data)."""
    from installer.applied import PROGRAM_MODULES

    imported = set()
    for path in sorted((REPO / "stacks").rglob("*.py")):
        imported |= set(re.findall(r"^\s*from installer\.([\w.]+)", path.read_text(), re.MULTILINE))
    modules = {name for name in imported if name.split(".")[0] not in {"config", "releases"}}
    assert {name.replace(".", "/") + ".py" for name in modules} <= set(PROGRAM_MODULES)
