"""HTTPS configuration (issue 12 item 9): the site CA `init` makes, and an operator's own certificate.

Facts relied on:
- cert-manager's CA issuer signs with the key pair in the Secret its `spec.ca.secretName` names
  (cert-manager.io/docs/configuration/ca/): the CA must be a CA certificate (basicConstraints CA:TRUE,
  keyCertSign) whose key kfinstall keeps secret.
- Browsers match the host against the certificate's DNS subjectAltNames only (RFC 6125; CA/Browser
  Forum baseline requirements make subjectAltName mandatory); a wildcard covers one left-most label.
"""

from __future__ import annotations

import base64
import datetime
import os
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from installer.config.load import load
from installer.config.problems import InvalidConfig
from installer.config.siteca import CA_FILE, site_ca_certificate, split_site_ca
from installer.config.tlsfiles import host_matches

HOST = "ml.example.com"  # BASE_CLUSTER's spec.networking.ingress.host (tests/conftest.py)
NOW = datetime.datetime.now(datetime.UTC)


def make_cert(site: Path, *, names: tuple[str, ...] = (HOST,), days: int = 90, start_days: int = -1,
              other_key: bool = False, encrypt: bool = False, stem: str = "ui",
              usages: list[x509.ObjectIdentifier] | None = None) -> tuple[str, str]:
    """A self-signed leaf for `names` (with extended key `usages` if given) written as <stem>.crt /
    <stem>.key in the site; returns their names."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else HOST)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW + datetime.timedelta(days=start_days))
               .not_valid_after(NOW + datetime.timedelta(days=days)))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    written_key = ec.generate_private_key(ec.SECP256R1()) if other_key else key
    encryption = (serialization.BestAvailableEncryption(b"passphrase") if encrypt
                  else serialization.NoEncryption())
    (site / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = site / f"{stem}.key"
    key_path.write_bytes(written_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   encryption))
    key_path.chmod(0o600)
    return f"{stem}.crt", f"{stem}.key"


def tls_sets(cert: str, key: str) -> tuple[str, ...]:
    return (f"spec.networking.tls.certFile={cert}", f"spec.networking.tls.keyFile={key}")


def refusal(site: Path, sets: tuple[str, ...]) -> list[str]:
    with pytest.raises(InvalidConfig) as refused:
        load(site, sets)
    return refused.value.lines()


# The site CA ----------------------------------------------------------------------------------------


def test_init_generates_a_site_ca_kept_secret_and_exports_only_its_certificate(kfinstall, tmp_path: Path) -> None:
    site = tmp_path / "site"
    code, output = kfinstall("init", "--profile", "bare-metal", str(site))
    assert code == 0, output
    secrets = yaml.safe_load((site / "secrets.yml").read_text())
    assert stat.S_IMODE(os.stat(site / "secrets.yml").st_mode) == 0o600
    pair = split_site_ca(secrets["site_ca"])
    assert pair is not None
    cert_pem, key_pem = pair
    assert "PRIVATE KEY" in key_pem
    # The key never reaches the terminal, in any encoding.
    for shown in (key_pem, secrets["site_ca"], key_pem.splitlines()[1]):
        assert shown not in output
    ca = x509.load_pem_x509_certificate(cert_pem.encode())
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > datetime.timedelta(days=365 * 5)
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert key.public_key().public_numbers() == ca.public_key().public_numbers()  # type: ignore[union-attr]
    exported = site / CA_FILE
    assert exported.read_text() == cert_pem
    assert "PRIVATE" not in exported.read_text()
    assert f"site CA certificate {exported}" in output


def test_init_again_keeps_the_ca_and_never_replaces_a_certificate_file(kfinstall, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert kfinstall("init", "--profile", "lab", str(site))[0] == 0
    before = yaml.safe_load((site / "secrets.yml").read_text())["site_ca"]
    (site / CA_FILE).write_text("an operator's own file\n")
    code, output = kfinstall("init", "--profile", "lab", str(site))
    assert code == 0, output
    assert yaml.safe_load((site / "secrets.yml").read_text())["site_ca"] == before
    assert (site / CA_FILE).read_text() == "an operator's own file\n"
    assert "is not the site CA in secrets.yml; kept as it is" in output


def test_a_secrets_file_from_before_the_site_ca_gets_one_appended(kfinstall, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert kfinstall("init", "--profile", "lab", str(site))[0] == 0
    path = site / "secrets.yml"
    old = "".join(line for line in path.read_text().splitlines(keepends=True) if not line.startswith("site_ca:"))
    path.write_text(old)
    (site / CA_FILE).unlink()
    code, output = kfinstall("init", "--profile", "lab", str(site))
    assert code == 0, output
    text = path.read_text()
    assert text.startswith(old)  # appended: every byte before it kept
    assert site_ca_certificate(yaml.safe_load(text)["site_ca"]) == (site / CA_FILE).read_text()


def test_an_encrypted_secrets_file_gets_the_site_ca_and_stays_encrypted(kfinstall, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    from installer.config.secrets import VAULT_PASSWORD_ENV

    monkeypatch.setenv(VAULT_PASSWORD_ENV, "unset")
    monkeypatch.delenv(VAULT_PASSWORD_ENV)
    site = tmp_path / "site"
    assert kfinstall("init", "--profile", "lab", str(site))[0] == 0
    path = site / "secrets.yml"
    plain = "".join(line for line in path.read_text().splitlines(keepends=True) if not line.startswith("site_ca:"))
    lib = VaultLib([("default", VaultSecret(b"vault password for tests"))])
    path.write_bytes(lib.encrypt(plain.encode(), VaultSecret(b"vault password for tests"), vault_id="prod"))
    (site / CA_FILE).unlink()
    password_file = tmp_path / "vault-pass"
    password_file.write_text("vault password for tests\n")
    code, output = kfinstall("init", "--profile", "lab", str(site), "--vault-password-file", str(password_file))
    assert code == 0, output
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;prod\n")
    after = lib.decrypt(path.read_bytes()).decode()
    assert after.startswith(plain)
    bundle = yaml.safe_load(after)["site_ca"]
    assert site_ca_certificate(bundle) == (site / CA_FILE).read_text()
    assert bundle not in output


def test_a_hand_edited_site_ca_value_is_not_exported() -> None:
    assert site_ca_certificate(base64.b64encode(b"not a certificate").decode()) is None
    assert site_ca_certificate("!!not base64!!") is None


# An operator's certificate ---------------------------------------------------------------------------


def test_a_good_certificate_is_loaded(make_site) -> None:
    site = make_site()
    cfg = load(site, tls_sets(*make_cert(site)))
    assert cfg.tls_material is not None
    assert cfg.tls_material.certificate_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert "**" in repr(cfg.tls_material.key_pem)  # a SecretStr: repr never shows the key


def test_a_wildcard_certificate_covers_the_host(make_site) -> None:
    site = make_site()
    assert load(site, tls_sets(*make_cert(site, names=("*.example.com",)))).tls_material is not None


@pytest.mark.parametrize(("pattern", "host", "expected"), [
    ("ml.example.com", "ML.example.com.", True), ("*.example.com", "ml.example.com", True),
    ("*.example.com", "a.ml.example.com", False), ("*.example.com", "example.com", False),
    ("ml.example.com", "ml.example.org", False)])
def test_host_matching(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected


def test_a_certificate_for_another_host_is_refused_naming_file_key_and_fix(make_site) -> None:
    site = make_site()
    lines = refusal(site, tls_sets(*make_cert(site, names=("other.example.com",))))
    assert lines == [f"error: ui.crt: spec.networking.tls.certFile: the certificate does not name {HOST} "
                     "(its DNS subjectAltNames: other.example.com). Fix: issue a certificate whose subjectAltName "
                     f"includes DNS:{HOST}, or set spec.networking.ingress.host to a name it covers"]


def test_a_certificate_without_subject_alt_names_is_refused(make_site) -> None:
    site = make_site()
    lines = refusal(site, tls_sets(*make_cert(site, names=())))
    assert any("does not name ml.example.com (its DNS subjectAltNames: none)" in line for line in lines), lines


def test_an_expired_certificate_is_refused(make_site) -> None:
    site = make_site()
    lines = refusal(site, tls_sets(*make_cert(site, days=-1, start_days=-30)))
    assert len(lines) == 1 and lines[0].startswith("error: ui.crt: spec.networking.tls.certFile: the certificate "
                                                   "expired on "), lines
    assert "Fix: renew it" in lines[0]


def test_a_certificate_not_valid_yet_is_refused(make_site) -> None:
    site = make_site()
    lines = refusal(site, tls_sets(*make_cert(site, start_days=2)))
    assert "is not valid before" in lines[0], lines


def test_a_key_of_another_certificate_is_refused(make_site) -> None:
    site = make_site()
    lines = refusal(site, tls_sets(*make_cert(site, other_key=True)))
    assert lines == ["error: ui.key: spec.networking.tls.keyFile: this private key does not belong to the "
                     "certificate in ui.crt. Fix: give the key the certificate was issued for (compare "
                     "`openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)"]


def test_an_encrypted_key_is_refused_with_the_way_to_decrypt_it(make_site) -> None:
    site = make_site()
    lines = refusal(site, tls_sets(*make_cert(site, encrypt=True)))
    assert lines == ["error: ui.key: spec.networking.tls.keyFile: the private key is encrypted with a passphrase. "
                     "Fix: store it unencrypted in a 0600 file: `openssl pkey -in KEY -out KEY.plain`"]


@pytest.mark.parametrize("content", [b"garbage\n", b"\x30\x82\x01\x0a\x02\x82\xff\xfe binary DER",
                                     b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_a_file_that_is_not_a_pem_certificate_is_refused_without_echoing_it(make_site, content: bytes) -> None:
    site = make_site()
    cert, key = make_cert(site)
    (site / cert).write_bytes(content)
    lines = refusal(site, tls_sets(cert, key))
    assert len(lines) == 1 and lines[0].startswith("error: ui.crt: spec.networking.tls.certFile: not "), lines
    assert "garbage" not in lines[0] and "AAAA" not in lines[0] and "0x" not in lines[0]


def test_a_key_file_that_is_not_a_key_never_shows_its_content(make_site) -> None:
    site = make_site()
    cert, key = make_cert(site)
    secret_text = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n"
    (site / key).write_text(secret_text)
    lines = refusal(site, tls_sets(cert, key))
    assert lines == ["error: ui.key: spec.networking.tls.keyFile: not a PEM private key (RSA, EC or Ed25519). "
                     "Fix: give the private key of certFile in PEM ('-----BEGIN PRIVATE KEY-----')"]


def test_missing_and_oversized_files_are_refused(make_site) -> None:
    site = make_site()
    cert, key = make_cert(site)
    (site / key).unlink()
    (site / cert).write_bytes(b"A" * (300 * 1024))
    lines = refusal(site, tls_sets(cert, key))
    assert any(line.startswith("error: ui.key: spec.networking.tls.keyFile: file not found") for line in lines), lines
    assert any(line.startswith("error: ui.crt: spec.networking.tls.certFile:") and "256 KiB" in line
               for line in lines), lines


def test_a_fifo_is_refused_without_blocking(make_site) -> None:
    site = make_site()
    cert, key = make_cert(site)
    (site / cert).unlink()
    os.mkfifo(site / cert)
    lines = refusal(site, tls_sets(cert, key))
    assert any("ui.crt: spec.networking.tls.certFile:" in line and "FIFO" in line for line in lines), lines


@pytest.mark.parametrize("path", ["/etc/ssl/ui.crt", "../ui.crt", "certs/../../ui.crt", "~/ui.crt"])
def test_certificate_paths_stay_inside_the_site(make_site, path: str) -> None:
    site = make_site()
    lines = refusal(site, (f"spec.networking.tls.certFile={path}", "spec.networking.tls.keyFile=ui.key"))
    assert any(line.startswith("error: --set: spec.networking.tls.certFile:") and "relative to the site" in line
               for line in lines), lines


def test_a_certificate_without_its_key_is_refused(make_site) -> None:
    site = make_site()
    cert, _ = make_cert(site)
    lines = refusal(site, (f"spec.networking.tls.certFile={cert}",))
    assert lines == ["error: --set: spec.networking.tls.certFile: given without spec.networking.tls.keyFile. Fix: "
                     "set spec.networking.tls.keyFile too, or neither (cert-manager then issues one from the site CA)"]


def test_a_world_readable_key_is_a_warning(make_site) -> None:
    site = make_site()
    cert, key = make_cert(site)
    (site / key).chmod(0o644)
    cfg = load(site, tls_sets(cert, key))
    assert any(w.key == "spec.networking.tls.keyFile" and "readable by others" in w.message for w in cfg.warnings)


def test_a_bad_certificate_is_exit_2_before_any_host_is_touched(kfinstall, make_site) -> None:
    site = make_site()
    cert, key = make_cert(site, names=("other.example.com",))
    (site / "kfinstall.yaml").write_text((site / "kfinstall.yaml").read_text().replace(
        "  networking:\n", f"  networking:\n    tls:\n      certFile: {cert}\n      keyFile: {key}\n", 1))
    code, output = kfinstall("plan", "-i", str(site))
    assert code == 2, output
    assert "ui.crt: spec.networking.tls.certFile: the certificate does not name ml.example.com" in output
    assert "Traceback" not in output


# Where plain HTTP is allowed ---------------------------------------------------------------------------


def test_tls_off_outside_the_lab_is_refused(make_site) -> None:
    lines = refusal(make_site(), ("spec.networking.tls.enabled=false",))
    assert lines == ["error: --set: spec.networking.tls.enabled: only the lab profile may serve UIs over plain HTTP "
                     "(LDAP passwords would cross the network in clear). Fix: remove spec.networking.tls.enabled: "
                     "false; cert-manager then issues the UI certificate from the site CA, or set "
                     "spec.networking.tls.certFile and keyFile to your own"]


def test_tls_needs_the_ingress_host(make_site) -> None:
    site = make_site()
    text = (site / "kfinstall.yaml").read_text()
    (site / "kfinstall.yaml").write_text(text.replace(f"host: {HOST}", "host: null"))
    lines = refusal(site, ())
    assert len(lines) == 1 and lines[0].startswith("error: kfinstall.yaml:19:7: spec.networking.ingress.host: "
                                                   "required with TLS"), lines
    assert "Fix: set a DNS name that resolves to the ingress controller's address" in lines[0]


def test_tls_needs_the_ingress_controller(make_site) -> None:
    lines = refusal(make_site(), ("spec.networking.ingress.enabled=false",))
    assert lines[0].startswith("error: --set: spec.networking.ingress.enabled: HTTPS is served by the ingress "
                               "controller"), lines


def test_the_lab_may_stay_plain_http(make_site) -> None:
    site = make_site({"spec.profile": "lab", "spec.auth.type": "dummy", "spec.networking": {},
                      "spec.storage.gluster.enabled": False})
    cfg = load(site)
    assert cfg.spec.networking.tls.enabled is False


@pytest.mark.parametrize("channel", ["26.03", "26.03.1"])
def test_an_nginx_class_on_a_traefik_channel_is_refused(make_site, channel: str) -> None:
    lines = refusal(make_site(), (f"spec.channel={channel}", "spec.networking.ingress.className=nginx"))
    assert lines[0].startswith("error: --set: spec.networking.ingress.className: channel "
                               f"{channel} runs Traefik"), lines


def test_an_nginx_class_stays_valid_where_ingress_nginx_runs(make_site) -> None:
    assert load(make_site(), ("spec.channel=1.11", "spec.networking.ingress.className=nginx")).spec.channel == "1.11"
