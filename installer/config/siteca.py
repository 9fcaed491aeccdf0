"""The site CA: a private certificate authority `kfinstall init` makes once per site.

cert-manager's CA issuer signs every UI certificate with it (stacks/tls.py). Its key and certificate
live together in secrets.yml (key site_ca, base64 of the key PEM then the certificate PEM: one line,
so secrets.yml stays one `key: value` per line and vault-encryptable); the certificate alone is
written to the site folder as site-ca.crt for operators to hand to users' browsers. The key is never
printed, logged or written anywhere else.
"""

from __future__ import annotations

import base64
import binascii
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_FILE = "site-ca.crt"
CA_NAME = "kfinstall site CA"
# Ten years: a CA outlives the certificates it signs (cert-manager renews those, 90 days by default);
# replacing it means handing every user a new site-ca.crt.
CA_LIFETIME = datetime.timedelta(days=3650)
_CERT_BEGIN = "-----BEGIN CERTIFICATE-----"


def new_site_ca(now: datetime.datetime | None = None) -> str:
    """A new CA (ECDSA P-256, CA:TRUE pathlen 0, keyCertSign/cRLSign) as secrets.yml's site_ca value."""
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(minutes=5)  # clock skew
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kfinstall")])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return base64.b64encode(key_pem + cert.public_bytes(serialization.Encoding.PEM)).decode("ascii")


def split_site_ca(bundle: str) -> tuple[str, str] | None:
    """(certificate PEM, key PEM) from a site_ca value; None when it is not one (hand-edited, truncated)."""
    try:
        text = base64.b64decode(bundle, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    start = text.find(_CERT_BEGIN)
    if start <= 0:
        return None
    return text[start:], text[:start]


def site_ca_certificate(bundle: str) -> str | None:
    """The CA certificate PEM from a site_ca value (parsed, so what is exported is a certificate); None
    when the value is not a site CA."""
    pair = split_site_ca(bundle)
    if pair is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pair[0].encode("ascii"))
    except ValueError:
        return None
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
