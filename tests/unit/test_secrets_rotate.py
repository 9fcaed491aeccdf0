"""`kfinstall secrets rotate KEY` (issue 15 item 7): shown first, applied by the platform phase, the old value
kept in secrets.yml until that run succeeded, a re-run finishing a failed rotation, the JupyterHub crypt key
kept for decryption, provided values never from argv, and no value in any output or run record.

The platform phase runs for real up to Pulumi: `engine.up` is replaced by a fake that records the
configuration it was given (no Pulumi CLI or cluster here), and preflight by an ok result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from installer.adapters import pulumi as engine
from installer.config.secrets import VAULT_PASSWORD_ENV
from installer.errors import PhaseFailed
from installer.phases.base import PhaseResult


def secrets_of(site: Path) -> dict[str, str]:
    return dict(YAML(typ="safe", pure=True).load((site / "secrets.yml").read_text()))


@pytest.fixture(autouse=True)
def no_vault_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAULT_PASSWORD_ENV, "unset")
    monkeypatch.delenv(VAULT_PASSWORD_ENV)


@pytest.fixture
def site(kfinstall, tmp_path: Path) -> Path:
    path = tmp_path / "site"
    code, output = kfinstall("init", "--profile", "lab", str(path))
    assert code == 0, output
    return path


@pytest.fixture
def ldap_site(kfinstall, tmp_path: Path) -> Path:
    """A bare-metal site with an LDAP bind DN and its password (the one provided secret)."""
    path = tmp_path / "bm"
    code, output = kfinstall("init", "--profile", "bare-metal", str(path))
    assert code == 0, output
    text = (path / "secrets.yml").read_text().replace("ldap_bind_password: ''", "ldap_bind_password: 'old bind pw'")
    (path / "secrets.yml").write_text(text)
    return path


class FakeKubectl:
    """Stands for the site's kubectl: one Grafana Deployment; `fail` makes every call fail."""

    def __init__(self, events: list[str]) -> None:
        self.events, self.calls, self.fail = events, [], False

    def _check(self, args: tuple[str, ...]) -> None:
        self.calls.append(args)
        if self.fail:
            from installer.adapters.kube import KubectlFailed

            raise KubectlFailed(args, "the server is currently unable to handle the request")

    def json(self, *args: str) -> Any:
        self._check(args)
        return {"items": [{"metadata": {"name": "kps-grafana"}}]}

    def run(self, *args: str) -> str:
        self._check(args)
        self.events.append("restart")
        return ""


class FakePlatform:
    """Stands for Pulumi's `up`: records the secrets each run applied; fails while `failures` > 0 with an
    error that echoes the values it was given (as a tool's error text may)."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.applied: list[Any] = []
        self.events: list[str] = []
        self.kubectl = FakeKubectl(self.events)

    def __call__(self, cfg: Any, on_output: Any = None) -> engine.StackSummary:
        self.applied.append(cfg.secrets)
        self.events.append("platform")
        values = cfg.secrets.values()
        if on_output is not None:
            on_output("Updating (lab): hub.cookieSecret [secret]")
        if self.failures:
            self.failures -= 1
            raise PhaseFailed("pulumi up failed: helm said " + " | ".join(values))
        return engine.StackSummary("up", "succeeded", {"update": 1})


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> FakePlatform:
    import installer.phases.platform as platform_phase
    import installer.rotate as rotate_module
    import installer.up as up_module

    fake = FakePlatform()
    monkeypatch.setattr(platform_phase.engine, "up", fake)
    monkeypatch.setattr(rotate_module.kube, "site_kubectl", lambda cfg: fake.kubectl)
    monkeypatch.setitem(up_module.PHASES, "preflight", lambda ctx: PhaseResult("preflight", "ok"))
    return fake


def record_text(site: Path) -> str:
    runs = site / ".kfinstall"
    return "\n".join(p.read_text(errors="replace") for p in runs.rglob("*") if p.is_file() and "runs" in p.parts)


def test_dry_run_shows_every_resource_that_carries_the_key_and_changes_nothing(kfinstall, site: Path) -> None:
    before = (site / "secrets.yml").read_bytes()
    code, output = kfinstall("secrets", "rotate", "jupyterhub_tensorboard_api_token", "-i", str(site), "--dry-run",
                             "-o", "json")
    assert code == 0, output
    plan = json.loads(output)
    # Derived by rendering with a marker: the hub's values (its `tensorboard` service) and the proxy's Secret.
    assert plan["resources"] == ["HelmRelease/jupyterhub/jupyterhub", "Secret/kubeflow-user/tensorboard-hub-auth"]
    assert plan["source"] == "generated"
    assert (site / "secrets.yml").read_bytes() == before
    assert secrets_of(site)["jupyterhub_tensorboard_api_token"] not in output


def test_a_new_grafana_password_restarts_grafana_after_the_platform_run(kfinstall, kfinstall_streams, site: Path,
                                                                       platform: FakePlatform) -> None:
    """Grafana takes its admin password only when it creates the admin user on an empty database
    (grafana/grafana conf/defaults.ini, [security] admin_password: "can be changed before first start of
    grafana"), and the chart does not restart it for an existingSecret: kfinstall restarts it."""
    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--dry-run", "-o", "json")
    assert code == 0, output
    assert json.loads(output)["restarts"] == ["Deployment/monitoring/-l app.kubernetes.io/name=grafana"]
    code, out, err = kfinstall_streams("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--yes",
                                       "-o", "json")
    assert code == 0, out + err
    assert json.loads(out)["restarted"] == ["Deployment/monitoring/kps-grafana"]
    assert platform.kubectl.calls[-1] == ("rollout", "restart", "deployment/kps-grafana", "-n", "monitoring")
    assert platform.events == ["platform", "restart"]  # after the Secret changed, never before


def test_a_failed_restart_leaves_the_rotation_pending(kfinstall, site: Path, platform: FakePlatform) -> None:
    old = secrets_of(site)["grafana_admin_password"]
    platform.kubectl.fail = True
    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--yes")
    assert code == 4 and "restarting what reads grafana_admin_password" in output and "again to finish" in output
    assert secrets_of(site)["grafana_admin_password"] == old and "grafana_admin_password_next" in secrets_of(site)
    platform.kubectl.fail = False
    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--yes")
    assert code == 0, output
    assert "grafana_admin_password_next" not in secrets_of(site)


def test_rotating_without_a_reachable_cluster_for_the_restart_changes_nothing(kfinstall, site: Path) -> None:
    before = (site / "secrets.yml").read_bytes()
    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--yes")
    assert code == 3 and "kubeconfig" in output
    assert (site / "secrets.yml").read_bytes() == before


def test_a_failed_run_keeps_the_old_value_and_a_rerun_finishes_with_the_same_new_one(
    kfinstall, site: Path, platform: FakePlatform
) -> None:
    old = secrets_of(site)["grafana_admin_password"]
    platform.failures = 1
    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--yes")
    assert code == 4, output
    after_failure = secrets_of(site)
    new = platform.applied[0].grafana_admin_password.get_secret_value()
    assert new != old
    assert after_failure["grafana_admin_password"] == old  # the site keeps working with the old value
    assert after_failure["grafana_admin_password_next"] == new
    assert "run `kfinstall secrets rotate grafana_admin_password` again" in output
    # A normal load still applies the old value (what `up` would use meanwhile), and `plan` says why.
    from installer.config.load import load

    assert load(site).secrets.grafana_admin_password.get_secret_value() == old
    code, plan = kfinstall("plan", "-i", str(site), "-o", "json")
    warning = next(w for w in json.loads(plan[plan.index("{"):])["warnings"] if "did not finish" in w["message"])
    assert warning["key"] == "grafana_admin_password_next" and warning["line"]
    assert "kfinstall secrets rotate grafana_admin_password" in warning["fix"]
    assert new not in plan and old not in plan

    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--yes")
    assert code == 0, output
    assert platform.applied[1].grafana_admin_password.get_secret_value() == new  # the same pending value
    finished = secrets_of(site)
    assert finished["grafana_admin_password"] == new
    assert "grafana_admin_password_next" not in finished
    assert oct((site / "secrets.yml").stat().st_mode & 0o777) == "0o600"


def test_no_old_or_new_value_in_output_or_run_records(kfinstall_streams, site: Path, platform: FakePlatform) -> None:
    old = secrets_of(site)["jupyterhub_cookie_secret"]
    platform.failures = 1  # its error echoes both values
    first = kfinstall_streams("secrets", "rotate", "jupyterhub_cookie_secret", "-i", str(site), "--yes", "-o", "json")
    new = secrets_of(site)["jupyterhub_cookie_secret_next"]
    second = kfinstall_streams("secrets", "rotate", "jupyterhub_cookie_secret", "-i", str(site), "--yes")
    assert (first[0], second[0]) == (4, 0), (first, second)
    assert json.loads(first[1])["rotation"]["key"] == "jupyterhub_cookie_secret"
    records = record_text(site)
    assert records, "the runs left records"
    for text in (*first[1:], *second[1:], records):
        assert old not in text
        assert new not in text


def test_crypt_key_rotation_keeps_the_old_key_for_decryption(kfinstall, site: Path, platform: FakePlatform) -> None:
    """Upstream: JupyterHub's CryptKeeper.keys is a list; the first key encrypts and every key decrypts
    (MultiFernet), and JUPYTERHUB_CRYPT_KEY takes ';'-separated keys "for key rotation"
    (jupyterhub/jupyterhub jupyterhub/crypto.py, CryptKeeper._keys_default and _fernet_default). z2jh hands
    hub.config.CryptKeeper.keys to the hub joined with ';' in its Secret `hub`
    (jupyterhub/zero-to-jupyterhub-k8s jupyterhub/templates/hub/_helpers-passwords.tpl,
    `.Values.hub.config.CryptKeeper.keys | join ";"`), so the list keeps its order: the new key first."""
    old = secrets_of(site)["jupyterhub_crypt_key"]
    code, output = kfinstall("secrets", "rotate", "jupyterhub_crypt_key", "-i", str(site), "--yes")
    assert code == 0, output
    applied = platform.applied[0]
    new = applied.jupyterhub_crypt_key.get_secret_value()
    assert applied.crypt_keys() == [new, old]  # the new key encrypts, the old one still decrypts
    saved = secrets_of(site)
    assert (saved["jupyterhub_crypt_key"], saved["jupyterhub_crypt_key_retired"]) == (new, old)

    # What the hub is given from then on, by every later `up`: both keys, the new one first.
    from installer import render
    from installer.config.load import load

    hub = next(r for r in render.evaluate(load(site)) if r.typ == render.HELM_RELEASE and r.name.endswith("jupyterhub"))
    keys = render.plain(hub.inputs)["values"]["hub"]["config"]["CryptKeeper"]["keys"]
    assert keys == [new, old]

    # A second rotation keeps both older keys.
    code, output = kfinstall("secrets", "rotate", "jupyterhub_crypt_key", "-i", str(site), "--yes")
    assert code == 0, output
    newest = secrets_of(site)["jupyterhub_crypt_key"]
    assert load(site).secrets.crypt_keys() == [newest, new, old]


def test_a_pending_crypt_key_is_kept_for_decryption_by_a_plain_up(kfinstall, site: Path,
                                                                  platform: FakePlatform) -> None:
    """A rotation run that failed after the hub got the new key: `up` with the old key must still decrypt
    what the new key encrypted meanwhile."""
    old = secrets_of(site)["jupyterhub_crypt_key"]
    platform.failures = 1
    code, _ = kfinstall("secrets", "rotate", "jupyterhub_crypt_key", "-i", str(site), "--yes")
    assert code == 4
    pending = secrets_of(site)["jupyterhub_crypt_key_next"]
    from installer.config.load import load

    assert load(site).secrets.crypt_keys() == [old, pending]


def test_ldap_bind_password_comes_from_a_file_never_from_argv(kfinstall, ldap_site: Path, platform: FakePlatform,
                                                               tmp_path: Path) -> None:
    value_file = tmp_path / "bind-pw"
    value_file.write_text("new bind: pw # 'with' \"quotes\"\n")
    code, output = kfinstall("secrets", "rotate", "ldap_bind_password", "-i", str(ldap_site), "--value-file",
                             str(value_file), "--yes")
    assert code == 0, output
    assert secrets_of(ldap_site)["ldap_bind_password"] == "new bind: pw # 'with' \"quotes\""
    assert "new bind" not in output and "old bind pw" not in output
    # There is no option that takes the value itself on the command line.
    code, output = kfinstall("secrets", "rotate", "ldap_bind_password", "-i", str(ldap_site), "--value", "x")
    assert code == 2 and "No such option" in output


@pytest.mark.parametrize(("content", "message"), [
    ("", "the value is empty"),
    ("line one\nline two\n", "control character"),
    ("old bind pw\n", "already has"),
])
def test_a_bad_value_file_is_refused_naming_file_and_key_not_the_value(
    kfinstall, ldap_site: Path, platform: FakePlatform, tmp_path: Path, content: str, message: str
) -> None:
    value_file = tmp_path / "bind-pw"
    value_file.write_text(content)
    before = (ldap_site / "secrets.yml").read_bytes()
    code, output = kfinstall("secrets", "rotate", "ldap_bind_password", "-i", str(ldap_site), "--value-file",
                             str(value_file), "--yes")
    assert code == 2, output
    assert str(value_file) in output and "ldap_bind_password" in output and message in output
    assert "line one" not in output and "Traceback" not in output
    assert (ldap_site / "secrets.yml").read_bytes() == before
    assert platform.applied == []


def test_generated_keys_take_no_value_from_the_operator(kfinstall, site: Path, tmp_path: Path) -> None:
    value_file = tmp_path / "v"
    value_file.write_text("weak\n")
    code, output = kfinstall("secrets", "rotate", "jupyterhub_cookie_secret", "-i", str(site), "--value-file",
                             str(value_file), "--dry-run")
    assert code == 2 and "generated by kfinstall" in output


def test_unknown_key_is_bad_input_and_the_site_ca_a_refusal(kfinstall, kfinstall_streams, site: Path) -> None:
    before = (site / "secrets.yml").read_bytes()
    code, output = kfinstall("secrets", "rotate", "grafana_password", "-i", str(site), "--yes")
    assert code == 2 and "grafana_admin_password" in output  # the fix lists the keys
    code, out, err = kfinstall_streams("secrets", "rotate", "site_ca", "-i", str(site), "--yes", "-o", "json")
    assert code == 3 and json.loads(out)["exitCode"] == 3 and "site-ca.crt" in err
    assert (site / "secrets.yml").read_bytes() == before


def test_off_a_terminal_without_yes_nothing_changes(kfinstall, site: Path, platform: FakePlatform) -> None:
    before = (site / "secrets.yml").read_bytes()
    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site))
    assert code == 3 and "--yes" in output
    assert (site / "secrets.yml").read_bytes() == before and platform.applied == []


def test_a_symlinked_secrets_file_is_not_replaced(kfinstall, site: Path, platform: FakePlatform) -> None:
    real = site / "real-secrets.yml"
    os.rename(site / "secrets.yml", real)
    (site / "secrets.yml").symlink_to(real.name)
    before = real.read_bytes()
    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--yes")
    assert code == 2 and "symbolic link" in output
    assert real.read_bytes() == before and (site / "secrets.yml").is_symlink()


class FakeCli:
    """Stands for `pulumi stack change-secrets-provider`: accepts only the passphrase the stack has."""

    def __init__(self, stack_passphrase: str) -> None:
        self.stack_passphrase = stack_passphrase
        self.calls: list[dict[str, Any]] = []

    def __call__(self, argv: list[str], *, timeout: float, input: str | None = None,
                 env: dict[str, str] | None = None) -> Any:
        import subprocess

        assert env is not None and input is not None
        self.calls.append({"argv": argv, "input": input, "passphrase": env["PULUMI_CONFIG_PASSPHRASE"]})
        if env["PULUMI_CONFIG_PASSPHRASE"] != self.stack_passphrase:
            return subprocess.CompletedProcess(argv, 255, "", "error: incorrect passphrase")
        self.stack_passphrase = input.splitlines()[0]
        return subprocess.CompletedProcess(argv, 0, "Migrating old configuration and state", "")


@pytest.fixture
def pulumi_cli(monkeypatch: pytest.MonkeyPatch, site: Path) -> FakeCli:
    fake = FakeCli(secrets_of(site)["pulumi_passphrase"])
    found = engine.Preflight(cli="/opt/pulumi/bin/pulumi", cli_version="3", plugins=(), pulumi_home=Path("/x"))
    monkeypatch.setattr(engine, "preflight", lambda cfg, kubeconfig=True: found)
    monkeypatch.setattr(engine, "_stack", lambda cfg, found: None)
    monkeypatch.setattr(engine, "run_child", fake)
    return fake


def test_pulumi_passphrase_rotates_through_the_cli_with_the_new_one_on_stdin(kfinstall, site: Path,
                                                                              pulumi_cli: FakeCli) -> None:
    """Upstream (pulumi/pulumi): `stack change-secrets-provider passphrase` on a passphrase stack is a rotation
    (pkg/cmd/pulumi/stack/stack_change_secrets_provider.go); the old passphrase is read from
    PULUMI_CONFIG_PASSPHRASE and, non-interactively, the new one from the first line of stdin
    (pkg/secrets/passphrase/manager.go promptForNewPassphrase)."""
    old = secrets_of(site)["pulumi_passphrase"]
    code, output = kfinstall("secrets", "rotate", "pulumi_passphrase", "-i", str(site), "--yes")
    assert code == 0, output
    new = secrets_of(site)["pulumi_passphrase"]
    assert new != old and pulumi_cli.stack_passphrase == new
    call = pulumi_cli.calls[0]
    assert call["argv"][1:5] == ["stack", "change-secrets-provider", "passphrase", "--stack"]
    assert "--non-interactive" in call["argv"]
    assert call["passphrase"] == old and call["input"] == new + "\n"
    assert not any(new in word or old in word for word in call["argv"])  # never on the command line
    assert "pulumi_passphrase_next" not in secrets_of(site)


def test_a_passphrase_rotation_whose_secrets_file_was_not_updated_finishes(kfinstall, site: Path,
                                                                           pulumi_cli: FakeCli) -> None:
    """The CLI re-encrypted the stack, then kfinstall stopped before secrets.yml took the new passphrase:
    the re-run finds the old one refused and proves the pending one opens the stack."""
    from installer.config.secrets import stage_rotation

    pending = "pending-passphrase-" + "x" * 30
    stage_rotation(site / "secrets.yml", "pulumi_passphrase", pending)
    pulumi_cli.stack_passphrase = pending  # the stack is already under the new passphrase
    code, output = kfinstall("secrets", "rotate", "pulumi_passphrase", "-i", str(site), "--yes")
    assert code == 0, output
    assert [c["passphrase"] for c in pulumi_cli.calls][-1] == pending
    assert secrets_of(site)["pulumi_passphrase"] == pending


def test_passphrase_rotation_without_the_pulumi_cli_says_what_is_missing(kfinstall, site: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    before = (site / "secrets.yml").read_bytes()
    code, output = kfinstall("secrets", "rotate", "pulumi_passphrase", "-i", str(site), "--yes")
    assert code == 3, output
    assert "pulumi" in output and "PATH" in output
    assert (site / "secrets.yml").read_bytes() == before  # a refusal changes nothing


def test_a_preflight_refusal_leaves_secrets_yml_as_it_was(kfinstall, site: Path, platform: FakePlatform,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import installer.up as up_module
    from installer.errors import PreflightError

    def refuse(ctx: Any) -> PhaseResult:
        raise PreflightError("h1 is unreachable")

    monkeypatch.setitem(up_module.PHASES, "preflight", refuse)
    before = (site / "secrets.yml").read_bytes()
    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--yes")
    assert code == 3 and "unreachable" in output
    assert (site / "secrets.yml").read_bytes() == before and platform.applied == []


def test_a_kept_grafana_database_is_named_with_grafanas_own_reset(kfinstall, site: Path) -> None:
    yaml = YAML()
    path = site / "kfinstall.yaml"
    doc = yaml.load(path.read_text())
    components = doc["spec"].setdefault("components", {})
    components.setdefault("monitoring", {})["values"] = {"grafana": {"persistence": {"enabled": True}}}
    with path.open("w") as handle:
        yaml.dump(doc, handle)
    code, output = kfinstall("secrets", "rotate", "grafana_admin_password", "-i", str(site), "--dry-run", "-o", "json")
    assert code == 0, output
    assert "reset-admin-password --password-from-stdin" in json.loads(output)["effect"]


def test_an_encrypted_secrets_file_stays_encrypted_through_a_rotation(kfinstall, site: Path, platform: FakePlatform,
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """ansible-vault secrets.yml: staged, failed, finished, it is never written in the clear."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    lib = VaultLib([("default", VaultSecret(b"vault password for tests"))])
    path = site / "secrets.yml"
    plain = path.read_text()
    old = secrets_of(site)["jupyterhub_cookie_secret"]
    path.write_bytes(lib.encrypt(plain.encode(), VaultSecret(b"vault password for tests"), vault_id="prod"))
    password_file = tmp_path / "vault-pass"
    password_file.write_text("vault password for tests\n")
    monkeypatch.setenv(VAULT_PASSWORD_ENV, str(password_file))
    platform.failures = 1
    code, _ = kfinstall("secrets", "rotate", "jupyterhub_cookie_secret", "-i", str(site), "--yes")
    assert code == 4
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;prod")
    staged = YAML(typ="safe", pure=True).load(lib.decrypt(path.read_bytes()).decode())
    assert staged["jupyterhub_cookie_secret"] == old and staged["jupyterhub_cookie_secret_next"]
    code, output = kfinstall("secrets", "rotate", "jupyterhub_cookie_secret", "-i", str(site), "--yes")
    assert code == 0, output
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;prod")
    done = YAML(typ="safe", pure=True).load(lib.decrypt(path.read_bytes()).decode())
    assert done["jupyterhub_cookie_secret"] == staged["jupyterhub_cookie_secret_next"]
    assert "jupyterhub_cookie_secret_next" not in done


# One run lock over the whole rotation (review 2, finding R1) -------------------------------------------------


def _lock_is_held(site: Path) -> bool:
    """Whether a run holds the site's lock now (flock is per open file: this process's own hold counts)."""
    from installer.config.load import load
    from installer.errors import PreflightError
    from installer.lock import run_lock

    try:
        with run_lock(load(site, need_secrets=False).state_dir, "probe"):
            return False
    except PreflightError:
        return True


def test_a_rotation_while_another_run_holds_the_lock_touches_nothing(kfinstall, site: Path,
                                                                     platform: FakePlatform) -> None:
    """Another run (an `up`, another rotation) holds the lock: refused before KEY_next is written, so it can
    neither overwrite nor delete the other rotation's pending value."""
    from installer.config.load import load
    from installer.lock import run_lock

    path = site / "secrets.yml"
    before = (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns)
    with run_lock(load(site, need_secrets=False).state_dir, "secrets rotate jupyterhub_cookie_secret"):
        code, output = kfinstall("secrets", "rotate", "jupyterhub_cookie_secret", "-i", str(site), "--yes")
    assert code == 3 and "another kfinstall run holds" in output, output
    assert (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) == before  # never rewritten
    assert platform.applied == []


def test_the_new_value_is_staged_applied_and_recorded_under_one_lock(kfinstall, site: Path, platform: FakePlatform,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import installer.rotate as rotate_module

    held: dict[str, bool] = {}
    for name in ("stage_rotation", "finish_rotation"):
        real = getattr(rotate_module, name)

        def probe(*args: Any, _real: Any = real, _name: str = name) -> None:
            held[_name] = _lock_is_held(site)
            _real(*args)

        monkeypatch.setattr(rotate_module, name, probe)
    code, output = kfinstall("secrets", "rotate", "jupyterhub_cookie_secret", "-i", str(site), "--yes")
    assert code == 0, output
    assert held == {"stage_rotation": True, "finish_rotation": True}
    assert not _lock_is_held(site)  # released at the end


def test_the_passphrase_is_recorded_before_the_lock_is_released(kfinstall, site: Path, pulumi_cli: FakeCli,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the stack's re-encryption and secrets.yml's new passphrase, an `up` would open the stack with
    the old one: the lock covers both."""
    import installer.rotate as rotate_module

    held = []
    real = rotate_module.finish_rotation
    monkeypatch.setattr(rotate_module, "finish_rotation", lambda *a: (held.append(_lock_is_held(site)), real(*a)))
    code, output = kfinstall("secrets", "rotate", "pulumi_passphrase", "-i", str(site), "--yes")
    assert code == 0, output
    assert held == [True] and secrets_of(site)["pulumi_passphrase"] == pulumi_cli.stack_passphrase


def test_a_secrets_file_changed_since_it_was_read_is_not_rotated_from_the_old_copy(site: Path,
                                                                                    platform: FakePlatform) -> None:
    """The command read secrets.yml, then asked; meanwhile another rotation of the crypt key finished. Going on
    from the old copy would write a retired-key list without that rotation's key."""
    import io

    from rich.console import Console

    from installer.config.load import load
    from installer.config.secrets import finish_rotation, stage_rotation
    from installer.errors import PreflightError
    from installer.rotate import plan_rotation, run_rotation

    cfg = load(site)
    plan = plan_rotation(cfg, "jupyterhub_crypt_key", given=False)
    path = site / "secrets.yml"
    other = "ab" * 32
    stage_rotation(path, "jupyterhub_crypt_key", other)  # the other rotation, start to finish
    finish_rotation(path, "jupyterhub_crypt_key", cfg.secrets.rotated("jupyterhub_crypt_key", other))
    before = path.read_bytes()
    with pytest.raises(PreflightError, match="changed since this command read it"):
        run_rotation(cfg, plan, "cd" * 32, Console(file=io.StringIO()))
    assert path.read_bytes() == before and platform.applied == []
