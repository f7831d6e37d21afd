"""The hub's own certificate, the fingerprint units pin, and which addresses need TLS at all."""

from __future__ import annotations

import ssl
import stat

import pytest

from intercom.auth.certificates import (
    FingerprintError,
    fingerprint_of_file,
    first_certificate_der,
    loopback_only,
    matches,
    normalise_fingerprint,
    own_certificate,
)


def test_the_hubs_own_certificate_is_made_once_private_and_kept(tmp_path):
    data_dir = tmp_path / "hub"
    cert, key = own_certificate(data_dir)
    first = fingerprint_of_file(cert)
    assert stat.S_IMODE(cert.stat().st_mode) == stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)  # a pair a server can use
    assert own_certificate(data_dir) == (cert, key)
    assert fingerprint_of_file(own_certificate(data_dir)[0]) == first  # a restart: the same pin
    assert matches(first, first_certificate_der(cert))
    other = fingerprint_of_file(own_certificate(tmp_path / "another")[0])
    assert other != first and not matches(other, first_certificate_der(cert))


@pytest.mark.parametrize(
    "spelling",
    ["AB:" * 31 + "CD", ("ab" * 31) + "cd", "sha256:" + "Ab:" * 31 + "cd", " " + "AB " * 31 + "CD "],
)
def test_a_fingerprint_reads_in_the_usual_spellings(spelling):
    assert normalise_fingerprint(spelling) == "AB:" * 31 + "CD"


@pytest.mark.parametrize("bad", ["", "AB:CD", "AB:" * 32 + "CD", "ZZ" * 32, "md5:" + "AB" * 32])
def test_a_fingerprint_that_is_not_32_bytes_of_hex_is_refused(bad):
    with pytest.raises(FingerprintError, match="SHA-256 fingerprint of the hub's certificate"):
        normalise_fingerprint(bad)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
        ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("10.0.0.5", False), ("fe80::1", False),
        ("desk.local", False), ("", False),
    ],
)  # fmt: skip
def test_only_loopback_may_stay_plain(host, loopback):
    assert loopback_only(host) is loopback
