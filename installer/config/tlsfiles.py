"""The operator's UI certificate (spec.networking.tls.certFile/keyFile), checked before any host is touched.

Both files are hostile input: read bounded through installer.config.safefile, parsed with the
`cryptography` package, and never echoed. The certificate must parse as PEM, the key must be an
unencrypted PEM private key matching the certificate's public key, spec.networking.ingress.host must
be one of the certificate's DNS subjectAltNames (browsers ignore the common name when a certificate has
subjectAltNames, RFC 6125; the CA/Browser Forum baseline requirements make SAN mandatory), and the
certificate must be valid now.
Every problem names the file, the key of kfinstall.yaml that points at it, and a fix; nothing of the
key's content, not even a byte, appears in a message.
"""

from __future__ import annotations

import datetime
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from installer.config.model import TlsSpec
from installer.config.problems import Problems
from installer.config.safefile import KIB, read_bytes

# `cryptography` is imported by the functions that parse (~0.1 s): a site without certFile, and every
# `kfinstall plan` of one, never pays for it.
if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

CERT_KEY = "spec.networking.tls.certFile"
KEY_KEY = "spec.networking.tls.keyFile"
# A leaf plus a few intermediates is a few KiB; a bound keeps a hostile file from costing memory.
MAX_PEM_BYTES = 256 * KIB
EXPIRY_WARNING = datetime.timedelta(days=30)


@dataclass(frozen=True)
class TlsMaterial:
    """The checked certificate chain (public) and key (secret) the Tls component writes as Secrets."""

    certificate_pem: str
    key_pem: SecretStr


def load_tls_material(site: Path, tls: TlsSpec, host: str | None, problems: Problems,
                      now: datetime.datetime | None = None) -> TlsMaterial | None:
    """The operator's certificate and key, or None (with problems recorded) when absent or unusable."""
    if tls.cert_file is None and tls.key_file is None:
        return None
    if tls.cert_file is None or tls.key_file is None:
        return None  # installer.config.rules names the one given without the other
    cert_text = _read(site, tls.cert_file, CERT_KEY, problems)
    key_text = _read(site, tls.key_file, KEY_KEY, problems)
    if cert_text is None or key_text is None:
        return None
    chain = _certificates(cert_text, tls.cert_file, problems)
    key = _private_key(key_text, tls.key_file, problems)
    if not chain or key is None:
        return None
    leaf = chain[0]
    ok = _key_matches(leaf, key, tls, problems)
    ok = _names_host(leaf, host, tls.cert_file, problems) and ok
    ok = _valid_now(leaf, tls.cert_file, problems, now or datetime.datetime.now(datetime.UTC)) and ok
    ok = _serves_tls(leaf, tls.cert_file, problems) and ok
    _warn_readable_key(site / tls.key_file, tls.key_file, problems)
    if not ok:
        return None
    from cryptography.hazmat.primitives import serialization

    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain)
    return TlsMaterial(certificate_pem=pem, key_pem=SecretStr(key_text))


def _read(site: Path, name: str, key: str, problems: Problems) -> str | None:
    """Bounded read; ASCII only (PEM is ASCII). A byte is never named: the file may be a private key."""
    path = site / name
    scratch = Problems()  # safefile's messages name the file but not our key; re-home them
    try:
        data = read_bytes(path, name, scratch, MAX_PEM_BYTES)
    except FileNotFoundError:
        problems.error(name, key, f"file not found (looked for {path})",
                       f"put the PEM file in the site folder and name it relative to the site in {key}")
        return None
    except OSError as exc:
        problems.error(name, key, f"cannot read {path} ({exc.strerror or exc.__class__.__name__})",
                       f"check that {path} is a file readable by this user")
        return None
    for problem in scratch.errors:
        problems.error(name, key, problem.message, problem.fix)
    if data is None:
        return None
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        problems.error(name, key, "not PEM text (binary data: DER, PKCS#12 or another format)",
                       "convert it to PEM, e.g. `openssl x509 -inform der -in FILE -out FILE.pem` "
                       "(or `openssl pkey -inform der ...` for a key)")
        return None


def _certificates(text: str, name: str, problems: Problems) -> list[x509.Certificate]:
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(text.encode("ascii"))
    except ValueError:
        problems.error(name, CERT_KEY, "not a PEM certificate (no parsable '-----BEGIN CERTIFICATE-----' block)",
                       "give the certificate for the ingress host in PEM, leaf first, then its chain")
        return []


def _private_key(text: str, name: str, problems: Problems) -> PrivateKeyTypes | None:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except TypeError:  # "Password was not given but private key is encrypted"
        problems.error(name, KEY_KEY, "the private key is encrypted with a passphrase",
                       "store it unencrypted in a 0600 file: `openssl pkey -in KEY -out KEY.plain`")
    except (ValueError, UnsupportedAlgorithm):  # the parser's text is never echoed: it may quote the key
        problems.error(name, KEY_KEY, "not a PEM private key (RSA, EC or Ed25519)",
                       "give the private key of certFile in PEM ('-----BEGIN PRIVATE KEY-----')")
    return None


def _public_der(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    public_bytes = getattr(key, "public_bytes")  # noqa: B009 - every public key type has it
    return bytes(public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _key_matches(leaf: x509.Certificate, key: PrivateKeyTypes, tls: TlsSpec, problems: Problems) -> bool:
    if _public_der(leaf.public_key()) == _public_der(key.public_key()):
        return True
    problems.error(str(tls.key_file), KEY_KEY,
                   f"this private key does not belong to the certificate in {tls.cert_file}",
                   "give the key the certificate was issued for (compare `openssl x509 -noout -pubkey -in CERT` "
                   "with `openssl pkey -pubout -in KEY`)")
    return False


def _dns_names(leaf: x509.Certificate) -> list[str]:
    from cryptography import x509

    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [name.lower() for name in san.get_values_for_type(x509.DNSName)]


def host_matches(pattern: str, host: str) -> bool:
    """RFC 6125's wildcard rule: `*` stands for exactly one whole left-most label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == host


def _names_host(leaf: x509.Certificate, host: str | None, name: str, problems: Problems) -> bool:
    if host is None:
        return True  # the rule requiring spec.networking.ingress.host reports its absence
    names = _dns_names(leaf)
    if any(host_matches(pattern, host) for pattern in names):
        return True
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "") if names else "none"
    problems.error(name, CERT_KEY, f"the certificate does not name {host} (its DNS subjectAltNames: {shown})",
                   f"issue a certificate whose subjectAltName includes DNS:{host}, or set "
                   "spec.networking.ingress.host to a name it covers")
    return False


def _valid_now(leaf: x509.Certificate, name: str, problems: Problems, now: datetime.datetime) -> bool:
    after, before = leaf.not_valid_after_utc, leaf.not_valid_before_utc
    if now > after:
        problems.error(name, CERT_KEY, f"the certificate expired on {after:%Y-%m-%d %H:%M} UTC",
                       "renew it and point certFile at the new file")
        return False
    if now < before:
        problems.error(name, CERT_KEY, f"the certificate is not valid before {before:%Y-%m-%d %H:%M} UTC",
                       "check the issuing CA's clock, or wait until then")
        return False
    if after - now < EXPIRY_WARNING:
        problems.warn(name, CERT_KEY, f"the certificate expires on {after:%Y-%m-%d} UTC",
                      "renew it soon; browsers refuse it after that day")
    return True


def _serves_tls(leaf: x509.Certificate, name: str, problems: Problems) -> bool:
    """False when an extendedKeyUsage extension leaves out TLS server use (serverAuth or any): browsers refuse
    such a certificate for a web site (RFC 5280 4.2.1.12: with the extension, only the listed uses)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    if ExtendedKeyUsageOID.SERVER_AUTH in usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages:
        return True
    problems.error(name, CERT_KEY, "the certificate's extendedKeyUsage does not include TLS server use "
                   "(serverAuth): browsers refuse it for a web site",
                   "issue a server certificate (extendedKeyUsage serverAuth) for the ingress host")
    return False


def _warn_readable_key(path: Path, name: str, problems: Problems) -> None:
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & 0o077:
        problems.warn(name, KEY_KEY, f"permissions are {mode:04o}; the private key is readable by others",
                      f"chmod 600 {path}")
