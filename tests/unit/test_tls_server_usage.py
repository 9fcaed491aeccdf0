"""An operator's certificate must be usable by a TLS server (issue 12 item 9, operator's own certificate).

RFC 5280 section 4.2.1.12: when a certificate carries extendedKeyUsage, it may be used only for the listed
purposes; browsers check id-kp-serverAuth for a web site (Apple HT210176 requires it outright for TLS
server certificates; Chromium and Mozilla accept a certificate without the extension, or with
anyExtendedKeyUsage). A client-only certificate (clientAuth) passes every other check and then fails in
every browser, so kfinstall refuses it before any host is touched, naming file, key and fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from test_tls_config import make_cert, tls_sets

from installer.config.load import load
from installer.config.problems import InvalidConfig


def _write(site: Path, usages: list[x509.ObjectIdentifier] | None) -> tuple[str, ...]:
    return tls_sets(*make_cert(site, usages=usages))


@pytest.mark.parametrize("usages", [None, [ExtendedKeyUsageOID.SERVER_AUTH],
                                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
                                    [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]])
def test_a_certificate_a_server_may_use_is_loaded(make_site, usages) -> None:  # noqa: ANN001
    site = make_site()
    assert load(site, _write(site, usages)).tls_material is not None


def test_a_client_only_certificate_is_refused_naming_file_key_and_fix(make_site) -> None:  # noqa: ANN001
    site = make_site()
    with pytest.raises(InvalidConfig) as refused:
        load(site, _write(site, [ExtendedKeyUsageOID.CLIENT_AUTH]))
    assert refused.value.lines() == [
        "error: ui.crt: spec.networking.tls.certFile: the certificate's extendedKeyUsage does not include TLS "
        "server use (serverAuth): browsers refuse it for a web site. Fix: issue a server certificate "
        "(extendedKeyUsage serverAuth) for the ingress host"]
