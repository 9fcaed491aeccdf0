"""The apply record and plan's render cache read back as hostile files: a state dir can be copied,
edited or forged. Any shape record_apply never writes, or a nesting deep enough to exhaust Python's
recursion inside the diff, is exit 2 naming the file and the fix (the cache: a miss), never a traceback."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.applied import (
    APPLIED_FILE,
    FORMAT,
    RENDER_CACHE_FILE,
    cached_render,
    read_applied,
    record_apply,
)
from installer.config.load import load
from installer.config.secrets import generate_secrets
from installer.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture(scope="module")
def hosts_recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(site, state dir) with a hosts-only record (no platform render: cheap)."""
    root = tmp_path_factory.mktemp("forged")
    site, state = root / "site", root / "state"
    shutil.copytree(REPO / "inventories" / "private-gpu", site)
    generate_secrets(site / "secrets.yml")
    secrets_file = site / "secrets.yml"
    values = yaml.safe_load(secrets_file.read_text())
    secrets_file.write_text(yaml.safe_dump({**values, "ldap_bind_password": "bind-password-for-forgery-tests"}))
    record_apply(load(site, state_dir=state), ("hosts",), run_id="real")
    return site, state


def _forged(state: Path, dest: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    shutil.copytree(state, dest)
    record = json.loads((dest / APPLIED_FILE).read_text())
    change(record)
    (dest / APPLIED_FILE).write_text(json.dumps(record))
    return dest


FORGERIES: dict[str, Callable[[dict[str, Any]], None]] = {
    # ~900 levels parse (json's own limit is ~1,000) but the diff's recursion would not survive them
    "deep setting": lambda r: r["hosts"]["settings"].__setitem__("spec.forged", _nested(900)),
    "deep unused key": lambda r: r.__setitem__("extra", _nested(900)),
    "roles a list": lambda r: r["hosts"].__setitem__("roles", ["cp1"]),
    "role members a string": lambda r: r["hosts"]["roles"].__setitem__("kube_node", "gpu1"),
    "settings a list": lambda r: r["hosts"].__setitem__("settings", [["spec.x", 1]]),
    "versions a string": lambda r: r["hosts"].__setitem__("versions", "1.11"),
    "objects a list": lambda r: r.__setitem__("platform", {"fingerprint": "0", "objects": [1]}),
    "object a string": lambda r: r.__setitem__("platform", {"fingerprint": "0", "objects": {"ConfigMap/a/b": "x"}}),
    "outputs a string": lambda r: r.__setitem__("platform", {"fingerprint": "0", "outputs": "x", "objects": {}}),
    "fingerprint a number": lambda r: r.__setitem__("platform", {"fingerprint": 0, "objects": {}}),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_record_is_refused_naming_the_file(name, hosts_recorded, tmp_path) -> None:
    _, state = hosts_recorded
    forged = _forged(state, tmp_path / "state", FORGERIES[name])
    with pytest.raises(ConfigError) as refused:
        read_applied(forged)
    assert str(forged / APPLIED_FILE) in str(refused.value) and "mv " in str(refused.value)


@pytest.mark.parametrize("name", ["deep setting", "roles a list", "versions a string"])
def test_plan_on_a_forged_record_is_exit_2_with_a_json_document(name, hosts_recorded, tmp_path,
                                                                kfinstall_streams) -> None:
    site, state = hosts_recorded
    forged = _forged(state, tmp_path / "state", FORGERIES[name])
    code, out, err = kfinstall_streams("plan", "-i", str(site), "--state-dir", str(forged), "-o", "json")
    assert code == 2, err
    assert "Traceback" not in out + err and "RecursionError" not in out + err
    document = json.loads(out)
    assert document["result"] == "invalid" and str(forged / APPLIED_FILE) in document["error"]


def test_real_record_still_reads(hosts_recorded) -> None:
    _, state = hosts_recorded
    record = read_applied(state)
    assert record is not None and record["hosts"]["runId"] == "real"


@pytest.mark.parametrize("objects", [_nested(900), {"Secret/a/b": "x"}, {"Secret/a/b": {"component": 1}},
                                     {"ConfigMap/a/b": {"component": "c", "body": _nested(900)}}])
def test_forged_render_cache_is_a_miss(objects, tmp_path) -> None:
    (tmp_path / RENDER_CACHE_FILE).write_text(json.dumps({"format": FORMAT, "fingerprint": "f", "objects": objects}))
    assert cached_render(tmp_path, "f") is None


def test_render_cache_of_the_right_shape_is_a_hit(tmp_path) -> None:
    objects = {"ConfigMap/a/b": {"component": "c", "body": {"data": {"k": "v"}}}}
    (tmp_path / RENDER_CACHE_FILE).write_text(json.dumps({"format": FORMAT, "fingerprint": "f", "objects": objects}))
    assert cached_render(tmp_path, "f") == objects


def test_run_record_scrubs_the_operators_tls_key(make_site, tmp_path) -> None:
    """The operator's UI key (spec.networking.tls.keyFile) reaches Pulumi like secrets.yml's values:
    the run record (kfinstall.log, events, summaries) must scrub it too."""
    from test_tls_config import make_cert, tls_sets

    from installer.runs import RunRecord

    site = make_site()
    cfg = load(site, tls_sets(*make_cert(site)), state_dir=tmp_path / "state")
    assert cfg.tls_material is not None
    key_pem = cfg.tls_material.key_pem.get_secret_value()
    record = RunRecord.start(cfg, "up")
    key_line = next(line for line in key_pem.splitlines() if "-----" not in line)
    cleaned = record.clean_text(f"pulumi said: {key_pem} / {json.dumps(key_pem)}")
    assert key_line not in cleaned


def test_a_failed_phases_message_is_scrubbed_of_the_runs_secrets(hosts_recorded, tmp_path, monkeypatch) -> None:
    """A tool's error text can echo a value it was given (a Helm template error, a task's arguments);
    up's error message reaches the terminal and -o json, so the run's secrets are scrubbed from it."""
    import io

    from rich.console import Console

    from installer import up as up_module
    from installer.errors import PhaseFailed
    from installer.phases import PhaseResult

    site, _ = hosts_recorded
    cfg = load(site, state_dir=tmp_path / "state")
    assert cfg.secrets is not None
    password = cfg.secrets.ldap_bind_password.get_secret_value()

    def platform_fails(ctx):
        raise PhaseFailed(f"pulumi up failed: helm: bad value lookup_dn_search_password={json.dumps(password)}")

    monkeypatch.setitem(up_module.PHASES, "preflight", lambda ctx: PhaseResult("preflight", "ok"))
    monkeypatch.setitem(up_module.PHASES, "hosts", lambda ctx: PhaseResult("hosts", "ok"))
    monkeypatch.setitem(up_module.PHASES, "platform", platform_fails)
    with pytest.raises(PhaseFailed) as failed:
        up_module.run_up(cfg, Console(file=io.StringIO()))
    assert "lookup_dn_search_password=" in failed.value.message
    assert password not in failed.value.message and password not in str(failed.value)


def test_a_failed_hosts_report_is_scrubbed_of_the_runs_secrets(hosts_recorded, tmp_path, monkeypatch) -> None:
    """The report up prints on failure (-o json, summary.json) carries each failed task's message per host,
    and a task's message can echo its arguments: the report is scrubbed like the error message."""
    import io

    from rich.console import Console

    from installer import up as up_module
    from installer.errors import PhaseFailed
    from installer.phases import PhaseResult

    site, _ = hosts_recorded
    cfg = load(site, state_dir=tmp_path / "state")
    assert cfg.secrets is not None
    password = cfg.secrets.ldap_bind_password.get_secret_value()
    failures = [{"host": "cp1", "task": "Kubernetes | Join", "message": f"bind failed for password={password}"}]

    def hosts_fail(ctx):
        raise PhaseFailed("host phase failed", phase=PhaseResult("hosts", "failed", details={"failures": failures}))

    monkeypatch.setitem(up_module.PHASES, "preflight", lambda ctx: PhaseResult("preflight", "ok"))
    monkeypatch.setitem(up_module.PHASES, "hosts", hosts_fail)
    with pytest.raises(PhaseFailed) as failed:
        up_module.run_up(cfg, Console(file=io.StringIO()))
    document = json.dumps(failed.value.report.as_dict())
    assert "bind failed for password=" in document
    assert password not in document


@pytest.mark.parametrize("entry", ["192.0.2.1-192.0.2.5-192.0.2.9", "10.0.0.0/24-10.0.1.0/24", "192.0.2.250-192.0.2.1",
                                   "192.0.2.1-::1"])
def test_a_malformed_metallb_range_is_exit_2(entry, hosts_recorded, monkeypatch, capsys) -> None:
    """Three ends, CIDRs as ends, a reversed or mixed-family range: exit 2 naming the key (a traceback before
    for the first two; MetalLB refuses the others)."""
    from installer.cli import main

    site, _ = hosts_recorded
    monkeypatch.setattr(sys, "argv", ["kfinstall", "inventory", "validate", "-i", str(site), "-o", "json", "--set",
                                      f'spec.networking.metallb.addresses=["{entry}"]'])
    with pytest.raises(SystemExit) as done:
        main()
    out = capsys.readouterr()
    assert done.value.code == 2, out.err
    assert "Traceback" not in out.out + out.err
    assert any("metallb.addresses" in p["key"] for p in json.loads(out.out)["problems"])
