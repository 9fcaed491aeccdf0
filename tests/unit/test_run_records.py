"""Run records hold no secret and no environment value beyond an allow-list (issue 11, item 9).

Canaries of every shape: quotes and backslashes (JSON escapes them), a newline, non-ASCII (escaped
as \\uXXXX by default), leading and trailing spaces. A record is scanned byte for byte for each
canary as itself, JSON-escaped (ASCII and UTF-8), YAML-quoted, stripped and base64-encoded.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from installer.cli import cli
from installer.config.load import load
from installer.errors import PreflightError
from installer.lock import run_lock
from installer.phases.base import RunContext
from installer.runs import RunRecord

CANARIES = {
    "quote": 'kfc-qu"ote\\back-slash',
    "newline": "kfc-first line\nsecond line",
    "non_ascii": "kfc-café-密码-ключ",
    "spaces": "   kfc-spaced secret   ",
    "mixed": 'kfc-\t"é\\n密"\'',
}
ENV_CANARIES = {
    "KFC_CLOUD_TOKEN": "kfc-env-cloud-token-7f3a9",  # an unrelated variable: never reaches the child
    "GOOGLE_OAUTH_ACCESS_TOKEN": "kfc-env-oauth-ya29-b41c",
    "ANSIBLE_BECOME_PASS": "kfc-env-become-pass-5d2e",  # passed to Ansible, its value never recorded
    "https_proxy": "http://user:kfc-env-proxy-pass@proxy.invalid:3128",
}


def canary_bytes(value: str) -> set[bytes]:
    """Byte sequences that would give `value` away."""
    yaml_quoted = yaml.safe_dump(value, default_style='"', width=1 << 30).rstrip().removesuffix("...").rstrip()
    forms = {
        value,
        value.strip(),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        yaml_quoted[1:-1],  # how kfinstall render (PyYAML) writes it: "caf\xE9-\u5BC6"
        base64.b64encode(value.encode()).decode(),
    }
    return {form.encode() for form in forms if form}


def leaks(folder: Path, values: list[str]) -> list[str]:
    """Every (file, canary) where a form of the canary is in the file's bytes."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for value in values:
            if any(form in data for form in canary_bytes(value)):
                found.append(f"{path.relative_to(folder)}: {value!r}")
    return found


def _site_with_secret_canaries(make_site, **kwargs) -> Path:  # noqa: ANN001, ANN003 - test helper
    site = make_site(**kwargs)
    secrets_file = site / "secrets.yml"
    data = yaml.safe_load(secrets_file.read_text())
    data["ldap_bind_password"] = CANARIES["quote"]
    data["grafana_admin_password"] = CANARIES["non_ascii"]
    data["lab_user_password"] = CANARIES["newline"]
    data["jupyterhub_crypt_key"] = CANARIES["spaces"]
    data["jupyterhub_cookie_secret"] = CANARIES["mixed"]
    secrets_file.write_text(yaml.safe_dump(data, allow_unicode=True))
    secrets_file.chmod(0o600)
    return site


def test_records_are_redacted_before_serialising(make_site) -> None:
    """Secrets JSON escapes (quote, backslash, newline, non-ASCII) used to be written escaped, in clear."""
    cfg = load(_site_with_secret_canaries(make_site))
    assert set(CANARIES.values()) <= set(cfg.secrets.values())
    record = RunRecord.start(cfg, "test")
    for name, value in CANARIES.items():
        record.write_json(f"{name}.json", {"nested": [{"value": value}], "text": f"token={value};"})
        record.append_event({"event": "x", "line": f"password: {value}"})
        # Tool output that already holds the secret encoded (a JSON result inside an event's text).
        record.append_event({"stdout": json.dumps({"msg": value}), "ascii": json.dumps({"msg": value})[1:-1]})
    assert leaks(record.path, list(CANARIES.values())) == []
    assert json.loads((record.path / "quote.json").read_text())["nested"][0]["value"] == "<redacted>"


def test_a_short_secret_is_redacted_too(make_site) -> None:
    """No minimum length: a record never holds a secret, even one too short to be a good one."""
    cfg = load(make_site())
    record = RunRecord(path=cfg.state_dir, run_id="r", secret_values=["q7"])
    cfg.state_dir.mkdir(parents=True)
    record.write_json("s.json", {"a": "xq7x", "q7": "q7"})
    assert json.loads((cfg.state_dir / "s.json").read_text()) == {"a": "x<redacted>x", "q7": "<redacted>"}


def test_a_real_ansible_run_leaves_no_canary_in_the_record(make_site, monkeypatch) -> None:
    """ansible-runner wrote the controller's whole environment into artifacts/<id>/command."""
    for name, value in ENV_CANARIES.items():
        monkeypatch.setenv(name, value)
    hosts = {f"all.hosts.{h}": {"ansible_host": "127.0.0.1", "ansible_port": port,
                                "ansible_ssh_common_args": "-o ConnectTimeout=2"}
             for h, port in (("cp1", 1), ("n1", 2), ("n2", 3))}
    site = _site_with_secret_canaries(make_site, hosts=hosts)
    result = CliRunner().invoke(cli, ["up", "-i", str(site), "--only", "hosts", "--yes"])
    assert isinstance(result.exception, PreflightError), result.output  # the hosts do not answer
    state = site / ".kfinstall" / "test"
    # preflight.yml ran as the first play of the host phase's run (playbooks/up.yml): its record is "ansible"
    commands = list(state.glob("runs/*/ansible/artifacts/*/command"))
    assert len(commands) == 1, "ansible-runner ran and its command was kept"
    assert leaks(state, [*CANARIES.values(), *ENV_CANARIES.values()]) == []
    env = json.loads(commands[0].read_text())["env"]
    assert env["ANSIBLE_BECOME_PASS"] == "<withheld>"  # passed to Ansible, named, value withheld
    assert "KFC_CLOUD_TOKEN" not in env and "https_proxy" not in env  # never given to the child
    assert env["ANSIBLE_NOCOLOR"] == "1" and env["PATH"]  # kfinstall's own settings stay readable
    assert not list(state.glob("runs/*/ansible*/artifacts/*/job_events"))


def test_the_upgrade_render_leaves_no_secret_in_the_record(make_site) -> None:
    """The Pod Security check's render holds Secret objects; it wrote them into runs/<id>/render-hop-*."""
    from installer.upgrade.route import plan_route
    from installer.upgrade.run import target_namespace_levels

    cfg = load(_site_with_secret_canaries(make_site, cluster={"spec.channel": "26.03.1"}))
    ctx = RunContext(cfg=cfg, record=RunRecord.start(cfg, "test"), console=Console(file=io.StringIO()))
    levels = target_namespace_levels(ctx, plan_route("26.03", "1.34", "26.03.1").hops[0])
    assert levels["kubeflow"] == "restricted"
    assert leaks(ctx.record.path, list(CANARIES.values())) == []
    assert not list(ctx.record.path.glob("render-hop-*"))


def test_plan_check_hosts_takes_the_lock(make_site) -> None:
    """plan --check-hosts reaches every host over SSH: it must not run beside `up`."""
    site = make_site()
    cfg = load(site)
    with run_lock(cfg.state_dir, "up"):
        result = CliRunner().invoke(cli, ["plan", "-i", str(site), "--check-hosts"])
    assert isinstance(result.exception, PreflightError), result.output
    assert result.exception.exit_code == 3 and "another kfinstall run holds" in result.exception.message
    assert not (cfg.state_dir / "runs").exists()  # refused before any record or SSH


@pytest.mark.parametrize("name", sorted(ENV_CANARIES))
def test_child_environment_keeps_only_what_ansible_needs(name: str) -> None:
    from installer.adapters.ansible import child_environment, recorded_environment

    inherited = {"PATH": "/usr/bin", "HOME": "/root", "SSH_AUTH_SOCK": "/run/agent", "LC_ALL": "C.UTF-8",
                 name: ENV_CANARIES[name]}
    prepared = {**inherited, "PATH": "/venv/bin:/usr/bin", "ANSIBLE_NOCOLOR": "1"}
    child = child_environment(prepared, inherited)
    assert child["SSH_AUTH_SOCK"] == "/run/agent" and child["LC_ALL"] == "C.UTF-8"
    assert child["PATH"] == "/venv/bin:/usr/bin"
    assert (name in child) == name.startswith("ANSIBLE_")
    recorded = recorded_environment(child)
    assert recorded["SSH_AUTH_SOCK"] == "<withheld>" and ENV_CANARIES[name] not in recorded.values()


def test_cached_host_facts_keep_no_environment_and_no_secret(make_site, monkeypatch) -> None:
    """Ansible's fact cache in the record held ansible_env: for a host reached with
    ansible_connection=local, the environment Ansible was given (an operator's ANSIBLE_BECOME_PASS)."""
    from installer import up as up_module
    from installer.phases.base import FACTS_CACHE, PhaseResult
    from installer.up import run_up

    site = _site_with_secret_canaries(make_site)
    cached: list[Path] = []

    def preflight_caching_facts(ctx: RunContext) -> PhaseResult:
        folder = ctx.record.path / FACTS_CACHE
        folder.mkdir()
        cached.append(folder / "cp1")
        env = {"ANSIBLE_BECOME_PASS": ENV_CANARIES["ANSIBLE_BECOME_PASS"], "HOME": "/root"}
        cached[0].write_text(json.dumps({"ansible_env": env, "ansible_hostname": "cp1",
                                         "kf_motd": f"welcome {CANARIES['quote']}"}))
        return PhaseResult("preflight", "ok")

    monkeypatch.setitem(up_module.PHASES, "preflight", preflight_caching_facts)
    run_up(load(site), Console(file=io.StringIO()), only="preflight")
    facts = json.loads(cached[0].read_text())
    assert "ansible_env" not in facts and facts["ansible_hostname"] == "cp1"
    assert leaks(cached[0].parent.parent, [*CANARIES.values(), *ENV_CANARIES.values()]) == []


def test_kfinstalls_own_ansible_settings_are_recorded_with_their_values(tmp_path) -> None:
    """The record says what Ansible was told to do (transport, sockets, host keys): none is withheld."""
    from installer.adapters.ansible import ansible_environment, recorded_environment
    from installer.adapters.ssh import HostKeyPolicy

    for env in (ansible_environment(), ansible_environment(HostKeyPolicy("accept-new", tmp_path / "known_hosts"))):
        assert recorded_environment(env) == dict(sorted(env.items()))
