"""The hub's own certificate and its CA, the pins units use, and which addresses need TLS at all."""

from __future__ import annotations

import ipaddress
import ssl
import stat

import pytest
from cryptography import x509

from intercom.auth.certificates import (
    CA_CERT_NAME,
    CA_KEY_NAME,
    CERT_NAME,
    KEY_NAME,
    LEAF_VALID_DAYS,
    FingerprintError,
    fingerprint_of_file,
    first_certificate_der,
    key_fingerprint_of_der,
    loopback_only,
    matches,
    normalise_fingerprint,
    own_certificate,
    pin_of_file,
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


def test_the_hubs_certificate_is_a_leaf_its_own_constrained_ca_issued(tmp_path):
    data_dir = tmp_path / "hub"
    cert, _ = own_certificate(data_dir, ["desk", "desk.local", "127.0.0.1", "192.168.1.20", "203.0.113.9"])
    leaf, ca = x509.load_pem_x509_certificates(cert.read_bytes())  # the chain the hub serves
    assert ca == x509.load_pem_x509_certificate((data_dir / CA_CERT_NAME).read_bytes())
    leaf.verify_directly_issued_by(ca)
    assert stat.S_IMODE((data_dir / CA_KEY_NAME).stat().st_mode) == 0o600
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert x509.DNSName("desk.local") in constraints.value.permitted_subtrees
    assert x509.IPAddress(ipaddress.ip_network("192.168.0.0/16")) in constraints.value.permitted_subtrees
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # a public address is beyond what the CA may vouch for: a browser would refuse the whole leaf
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("192.168.1.20"),
    ]
    assert names.get_values_for_type(x509.DNSName) == ["desk", "desk.local"]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 825  # what iOS accepts
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]


def test_a_renewed_leaf_keeps_its_key_and_so_the_units_pin(tmp_path, monkeypatch):
    data_dir = tmp_path / "hub"
    cert, _ = own_certificate(data_dir, ["desk", "192.168.1.20"])
    pin, whole = pin_of_file(cert), fingerprint_of_file(cert)
    assert pin == key_fingerprint_of_der(first_certificate_der(cert)) != whole
    assert own_certificate(data_dir, ["desk", "192.168.1.20"]) and fingerprint_of_file(cert) == whole  # kept
    own_certificate(data_dir, ["desk", "192.168.1.77"])  # the desk got a new address
    assert fingerprint_of_file(cert) != whole and pin_of_file(cert) == pin
    assert matches(pin, first_certificate_der(cert))
    renewed = fingerprint_of_file(cert)
    monkeypatch.setattr("intercom.auth.certificates.RENEW_DAYS", LEAF_VALID_DAYS)  # as if it were about to expire
    own_certificate(data_dir, ["desk", "192.168.1.77"])
    assert fingerprint_of_file(cert) != renewed and pin_of_file(cert) == pin


def test_a_self_signed_certificate_from_before_the_ca_is_kept_and_pinned_whole(tmp_path, tls_files):
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    for source, name in zip(tls_files, (CERT_NAME, KEY_NAME), strict=True):
        (data_dir / name).write_bytes(source.read_bytes())
    assert own_certificate(data_dir) == (data_dir / CERT_NAME, data_dir / KEY_NAME)
    assert (data_dir / CERT_NAME).read_bytes() == tls_files[0].read_bytes()  # what the units pinned
    assert pin_of_file(data_dir / CERT_NAME) == fingerprint_of_file(tls_files[0])
    assert not (data_dir / CA_CERT_NAME).exists()
    # The switch (docs/web-desk.md): the certificate moved away, the key kept: a leaf of the new CA.
    (data_dir / CERT_NAME).rename(data_dir / "hub-cert.pem.self-signed")
    cert, _ = own_certificate(data_dir)
    assert pin_of_file(cert) == key_fingerprint_of_der(first_certificate_der(tls_files[0]))


def test_a_pin_of_another_key_does_not_match(tmp_path):
    mine, other = own_certificate(tmp_path / "a")[0], own_certificate(tmp_path / "b")[0]
    assert not matches(pin_of_file(other), first_certificate_der(mine))
    assert matches(fingerprint_of_file(mine), first_certificate_der(mine))  # a whole-certificate pin still works
