"""`kfinstall init` on an existing site: every secret kept as written, unknown keys refused, ansible-vault files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from installer.config.secrets import VAULT_PASSWORD_ENV

# 115 characters: spaces, both quotes, ` #`, `: `, non-ASCII; the value that came back cut.
LONG_PASSWORD = (
    "bind pw with spaces, 'single' and \"double\" quotes # not a comment: colon-space "
    "é ü 中文 ∑ and a tail of text upto 115"
)
assert len(LONG_PASSWORD) == 115
VAULT_PASSWORD = "vault password for tests"


@pytest.fixture(autouse=True)
def no_vault_password(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first: monkeypatch then removes whatever --vault-password-file sets during the test.
    monkeypatch.setenv(VAULT_PASSWORD_ENV, "unset")
    monkeypatch.delenv(VAULT_PASSWORD_ENV)


def parse(text: str) -> dict:
    return YAML(typ="safe", pure=True).load(text)


@pytest.fixture
def site(kfinstall, tmp_path: Path) -> Path:
    path = tmp_path / "site"
    code, output = kfinstall("init", "--profile", "lab", str(path))
    assert code == 0, output
    return path


def _without(text: str, key: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(f"{key}:"))


HAND_WRITTEN = {
    "single-quoted": "ldap_bind_password: '" + LONG_PASSWORD.replace("'", "''") + "'\n",
    "double-quoted": 'ldap_bind_password: "' + LONG_PASSWORD.replace('"', '\\"') + '"\n',
}
NESTED = "lab_user_password:\n  first: [1, two, {three: 3.0}]\n  second: 'yes'\n"


@pytest.mark.parametrize("style", list(HAND_WRITTEN))
def test_init_again_keeps_every_existing_value_and_its_text(kfinstall, site: Path, style: str) -> None:
    path = site / "secrets.yml"
    text = _without(
        _without(_without(path.read_text(), "ldap_bind_password"), "lab_user_password"), "grafana_admin_password"
    )
    path.write_text(text + "# the bind DN's password, set by hand\n" + HAND_WRITTEN[style] + NESTED)
    before = path.read_text()
    code, output = kfinstall("init", "--profile", "lab", str(site))
    assert code == 0, output
    assert "generated: grafana_admin_password" in output
    after = path.read_text()
    assert after.startswith(before), "existing lines must stay byte for byte"
    values = parse(after)
    assert values["ldap_bind_password"] == LONG_PASSWORD
    assert values["lab_user_password"] == {"first": [1, "two", {"three": 3.0}], "second": "yes"}
    assert len(values["grafana_admin_password"]) >= 32
    assert LONG_PASSWORD not in output and values["grafana_admin_password"] not in output
    assert (path.stat().st_mode & 0o777) == 0o600


def test_init_again_with_nothing_missing_does_not_touch_the_file(kfinstall, site: Path) -> None:
    path = site / "secrets.yml"
    path.write_text(_without(path.read_text(), "ldap_bind_password") + HAND_WRITTEN["single-quoted"])
    stamp = path.stat().st_mtime_ns
    time.sleep(0.01)
    code, output = kfinstall("init", "--profile", "lab", str(site))
    assert code == 0 and "generated: none (all present)" in output
    assert path.stat().st_mtime_ns == stamp


def test_an_unknown_key_is_refused_and_named(kfinstall, site: Path) -> None:
    path = site / "secrets.yml"
    path.write_text(_without(path.read_text(), "grafana_admin_password") + "grafana_admin_pasword: my-typo-value\n")
    before = path.read_bytes()
    for argv in (["init", "--profile", "lab", str(site)], ["inventory", "validate", "-i", str(site)]):
        code, output = kfinstall(*argv)
        assert code == 2, output
        assert "grafana_admin_pasword: unknown secret key" in output and "Traceback" not in output
        assert "my-typo-value" not in output
    assert path.read_bytes() == before


@pytest.mark.parametrize("line", ["pulumi_passphrase=Canary-0f3a9c-value: x\n",
                                  '"grafana_admin_password: Canary-0f3a9c-value": 1\n',
                                  "? grafana_admin_password Canary-0f3a9c-value\n"])
def test_a_value_that_a_typo_made_part_of_a_key_is_not_echoed(kfinstall, site: Path, line: str) -> None:
    path = site / "secrets.yml"
    path.write_text(_without(path.read_text(), "grafana_admin_password") + line)
    for argv in (["init", "--profile", "lab", str(site)], ["inventory", "validate", "-i", str(site)],
                 ["inventory", "validate", "-i", str(site), "--output", "json"]):
        code, output = kfinstall(*argv)
        assert code == 2 and "unknown secret key" in output and "Traceback" not in output, output
        assert "Canary" not in output and "0f3a9c" not in output
        assert f"secrets.yml:{len(path.read_text().splitlines())}" in output  # the line is named instead


@pytest.mark.parametrize("value", ["!Cn!ry0f3a9c", '"Cn0f3a9c\\q"', "'Cn0f3a9c' x: y"])
def test_a_syntax_error_in_a_value_does_not_echo_the_value(kfinstall, site: Path, value: str) -> None:
    """The YAML parser quotes what it found (a tag handle, an escape, a token): that is part of a secret."""
    path = site / "secrets.yml"
    path.write_text(_without(path.read_text(), "ldap_bind_password") + f"ldap_bind_password: {value}\n")
    code, output = kfinstall("inventory", "validate", "-i", str(site))
    assert code == 2 and "YAML syntax error" in output and "Traceback" not in output, output
    assert "0f3a9c" not in output and "Cn" not in output, output


@pytest.mark.parametrize("content", ["just-a-plain-string-value\n", "- a list item value\n", "!!binary aGk=\n"])
def test_secrets_that_are_not_a_mapping_give_exit_2(kfinstall, site: Path, content: str) -> None:
    path = site / "secrets.yml"
    path.write_text(content)
    for argv in (["init", "--profile", "lab", str(site)], ["inventory", "validate", "-i", str(site)]):
        code, output = kfinstall(*argv)
        assert code == 2, output
        assert "expected a mapping of key: value" in output and "Traceback" not in output
        assert "value" not in output.split("expected a mapping of key: value")[0]
    assert path.read_text() == content


def test_a_value_yaml_reads_as_a_number_is_refused_not_changed(kfinstall, site: Path) -> None:
    path = site / "secrets.yml"
    path.write_text(_without(path.read_text(), "ldap_bind_password") + "ldap_bind_password: 0123\n")
    code, output = kfinstall("inventory", "validate", "-i", str(site))
    assert code == 2 and "ldap_bind_password: must be a string" in output


def test_an_alias_bomb_in_secrets_is_refused_quickly(kfinstall, site: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    (site / "secrets.yml").write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    code, output = kfinstall("init", "--profile", "lab", str(site))
    assert code == 2 and "anchors and aliases are not allowed" in output
    assert time.monotonic() - started < 5


# --- ansible-vault -------------------------------------------------------------------------------


def _vault(password: str):  # noqa: ANN202 - Ansible's own objects
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultSecret(password.encode())
    return VaultLib([("default", secret)]), secret


def _encrypt(path: Path, text: str, vault_id: str | None = "prod") -> None:
    lib, secret = _vault(VAULT_PASSWORD)
    path.write_bytes(lib.encrypt(text.encode(), secret, vault_id=vault_id))
    path.chmod(0o600)


def _decrypt(path: Path) -> str:
    lib, _ = _vault(VAULT_PASSWORD)
    return lib.decrypt(path.read_bytes()).decode()


@pytest.fixture
def vaulted(site: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """An encrypted secrets.yml missing grafana_admin_password, its password file, its old plaintext."""
    plain = _without(_without((site / "secrets.yml").read_text(), "grafana_admin_password"), "ldap_bind_password")
    plain += HAND_WRITTEN["single-quoted"]
    _encrypt(site / "secrets.yml", plain)
    password_file = tmp_path / "vault-pass"
    password_file.write_text(VAULT_PASSWORD + "\n")
    return site, password_file, plain


@pytest.mark.parametrize("how", ["env", "option", "global option"])
def test_init_adds_a_key_to_an_encrypted_secrets_file_and_keeps_it_encrypted(
    kfinstall, vaulted: tuple[Path, Path, str], how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, password_file, plain = vaulted
    argv = ["init", "--profile", "lab", str(site)]
    if how == "env":
        monkeypatch.setenv(VAULT_PASSWORD_ENV, str(password_file))
    elif how == "option":
        argv += ["--vault-password-file", str(password_file)]
    else:
        argv = ["--vault-password-file", str(password_file), *argv]
    code, output = kfinstall(*argv)
    assert code == 0, output
    assert "generated: grafana_admin_password" in output
    path = site / "secrets.yml"
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;prod\n"), "must stay encrypted, same vault id"
    assert (path.stat().st_mode & 0o777) == 0o600
    after = _decrypt(path)
    assert after.startswith(plain)
    values = parse(after)
    assert values["ldap_bind_password"] == LONG_PASSWORD and len(values["grafana_admin_password"]) >= 32
    assert not [v for v in values.values() if v and v in output]


@pytest.mark.parametrize("how", ["env", "option"])
def test_every_command_reads_an_encrypted_secrets_file_with_the_password_file(
    kfinstall, vaulted: tuple[Path, Path, str], how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, password_file, plain = vaulted
    _encrypt(site / "secrets.yml", plain + "grafana_admin_password: grafana-value-for-tests\n")
    option: list[str] = []
    if how == "env":
        monkeypatch.setenv(VAULT_PASSWORD_ENV, str(password_file))
    else:
        option = ["--vault-password-file", str(password_file)]
    for argv in (["inventory", "validate", "-i", str(site)], ["plan", "-i", str(site)]):
        code, output = kfinstall(*argv, *option)
        assert code == 0, output
        assert LONG_PASSWORD not in output and "grafana-value-for-tests" not in output


def test_an_encrypted_secrets_file_without_a_password_gives_exit_2_and_the_fix(
    kfinstall, vaulted: tuple[Path, Path, str]
) -> None:
    site, password_file, _ = vaulted
    before = (site / "secrets.yml").read_bytes()
    for argv in (["init", "--profile", "lab", str(site)], ["inventory", "validate", "-i", str(site)]):
        code, output = kfinstall(*argv)
        assert code == 2, output
        assert "encrypted with ansible-vault and no vault password given" in output
        assert "--vault-password-file" in output and VAULT_PASSWORD_ENV in output
    wrong = password_file.with_name("wrong")
    wrong.write_text("not it\n")
    code, output = kfinstall("init", "--profile", "lab", str(site), "--vault-password-file", str(wrong))
    assert code == 2 and "cannot decrypt it with the vault password" in output and "not it" not in output
    assert (site / "secrets.yml").read_bytes() == before


# --- init never writes through links -------------------------------------------------------------


def test_init_does_not_write_through_a_linked_folder(kfinstall, tmp_path: Path) -> None:
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    (site / "group_vars").symlink_to(elsewhere)
    code, output = kfinstall("init", "--profile", "lab", str(site))
    assert code == 2, output
    assert "group_vars is a symbolic link" in output
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in site.iterdir()) == ["group_vars"], "a refused init writes nothing"


def test_init_keeps_a_dangling_link_instead_of_writing_through_it(kfinstall, tmp_path: Path) -> None:
    site, target = tmp_path / "site", tmp_path / "not-a-site-file"
    site.mkdir()
    (site / "hosts.yml").symlink_to(target)
    code, output = kfinstall("init", "--profile", "lab", str(site))
    assert code == 0, output
    assert not target.exists() and (site / "hosts.yml").is_symlink()
    assert f"kept    {site / 'hosts.yml'}" in output


def test_init_refuses_to_replace_a_linked_secrets_file(kfinstall, site: Path, tmp_path: Path) -> None:
    real = tmp_path / "real-secrets.yml"
    real.write_text(_without((site / "secrets.yml").read_text(), "grafana_admin_password"))
    real.chmod(0o600)
    (site / "secrets.yml").unlink()
    (site / "secrets.yml").symlink_to(real)
    before = real.read_bytes()
    code, output = kfinstall("init", "--profile", "lab", str(site))
    assert code == 2 and "a symbolic link" in output and "grafana_admin_password" in output
    assert (site / "secrets.yml").is_symlink() and real.read_bytes() == before


def test_init_fills_an_empty_generated_key_and_keeps_the_other_values(kfinstall, site: Path) -> None:
    path = site / "secrets.yml"
    text = _without(_without(path.read_text(), "grafana_admin_password"), "ldap_bind_password")
    text = _without(text, "jupyterhub_crypt_key")
    path.write_text(
        text
        + "grafana_admin_password: ''\n"
        + HAND_WRITTEN["double-quoted"]
        + NESTED.replace("lab_user_password", "jupyterhub_crypt_key")
    )
    before = parse(path.read_text())
    code, output = kfinstall("init", "--profile", "lab", str(site))
    assert code == 0 and "generated: grafana_admin_password" in output, output
    after = parse(path.read_text())
    assert len(after.pop("grafana_admin_password")) >= 32
    before.pop("grafana_admin_password")
    assert after == before and after["ldap_bind_password"] == LONG_PASSWORD


def test_an_inline_vault_value_is_named_with_the_fix(kfinstall, site: Path) -> None:
    path = site / "secrets.yml"
    path.write_text(
        _without(path.read_text(), "ldap_bind_password")
        + "ldap_bind_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3132\n"
    )
    code, output = kfinstall("inventory", "validate", "-i", str(site))
    assert code == 2 and "ldap_bind_password: an inline !vault value" in output and "ansible-vault encrypt" in output


def test_a_fifo_as_vault_password_file_is_refused_not_waited_on(kfinstall, vaulted: tuple[Path, Path, str]) -> None:
    """Ansible opens the FIFO and waits for a writer for ever; kfinstall says what is wrong, exit 2."""
    import signal

    site, password_file, _ = vaulted
    password_file.unlink()
    os.mkfifo(password_file)

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("kfinstall waited on the FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        code, output = kfinstall("inventory", "validate", "-i", str(site), "--vault-password-file", str(password_file))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 2, output
    assert f"the vault password file {password_file} is not a regular file" in output and "Traceback" not in output


def test_init_into_a_site_folder_it_cannot_write_is_exit_2_and_keeps_secrets(kfinstall, site: Path) -> None:
    import subprocess

    path = site / "secrets.yml"
    path.write_text(_without(path.read_text(), "grafana_admin_password"))
    before = path.read_bytes()
    if subprocess.run(["chattr", "+i", str(site)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        code, output = kfinstall("init", "--profile", "lab", str(site))
    finally:
        subprocess.run(["chattr", "-i", str(site)], check=True)
    assert code == 2, output
    assert f"cannot write {path} (Operation not permitted)" in output and "Traceback" not in output
    assert path.read_bytes() == before
