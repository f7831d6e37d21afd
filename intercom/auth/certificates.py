"""The hub's own TLS certificate, the local CA that issues it, and the pins units trust it by.

A hub that no installer gave a certificate makes one on first start, with a small certificate
authority of its own (:func:`local_authority`): an ECDSA P-256 CA, name-constrained to the hub's
names and the private address ranges, issues the hub's leaf. Units pin that leaf's public key, by
its SHA-256 (``intercom units add`` prints it into the unit's env file): a relay on the cable that
shows any other key is refused before a byte of SIP (and so before the unit's token) is sent. A
phone's browser, which cannot pin, trusts the CA instead, once its resident has installed it
(docs/web-desk.md, "Trusting the hub"). The leaf is renewed with the same key, so the pin outlives
it; hubs made before the CA keep their self-signed certificate, pinned whole, until the admin
switches.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_NAME, KEY_NAME = "hub-cert.pem", "hub-key.pem"
CA_CERT_NAME, CA_KEY_NAME = "ca-cert.pem", "ca-key.pem"
VALID_DAYS = 20 * 365  # a unit on a wall outlives any renewal plan: the pin, not the date, is the trust
# iOS refuses a TLS server certificate valid for more than 825 days, whoever issued it (Apple
# HT210176): the leaf is renewed at start when less than RENEW_DAYS are left, with the same key.
LEAF_VALID_DAYS = 800
RENEW_DAYS = 60
# What the hub's CA may vouch for besides the hub's names: the addresses a home network uses. A CA
# on a phone that could vouch for any name would let whoever copies its key impersonate any site.
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "fc00::/7", "::1/128")
_FINGERPRINT_RE = re.compile(r"(?:sha256:)?((?:[0-9a-f]{2}:?){32})\Z", re.IGNORECASE)


class FingerprintError(ValueError):
    """A pinned fingerprint that is not 32 hex bytes, or a certificate that does not match it."""


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate and the key that signs the certificates it issues."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def new_authority(common_name: str, names: Iterable[str] = (), networks: Iterable[str] = PRIVATE_NETWORKS) -> Authority:
    """A CA that may vouch only for ``names`` (DNS names, each with its subdomains) and addresses
    in ``networks`` (CIDR): X.509 name constraints, which Chromium enforces on a root (the tests
    check it), so that its key, if ever copied, cannot vouch for a bank's name."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    permitted: list[x509.GeneralName] = [x509.DNSName(name) for name in dict.fromkeys(names)]
    permitted += [x509.IPAddress(ipaddress.ip_network(network)) for network in dict.fromkeys(networks)]
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if permitted:  # none at all: a CA for any name (the tests' control case)
        builder = builder.add_extension(x509.NameConstraints(permitted, None), critical=True)
    return Authority(builder.sign(key, hashes.SHA256()), key)


def issue(
    authority: Authority, names: Iterable[str], key: ec.EllipticCurvePrivateKey | None = None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A TLS server certificate for ``names`` (DNS names and IP addresses, the first one its
    subject) signed by ``authority``, for ``key`` (a new one when not given), valid
    :data:`LEAF_VALID_DAYS`: with what iOS asks of one (SAN, serverAuth, SHA-256)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    names = list(dict.fromkeys(names))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=LEAF_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_alt_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return certificate, key


def _usage(**allowed: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
         "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
        False,
    )  # fmt: skip
    return x509.KeyUsage(**(flags | allowed))


def local_authority(data_dir: Path, names: Iterable[str] | None = None) -> Authority:
    """The hub's own CA in ``data_dir``, made on first use (key 0600), constrained to ``names``
    (default: :func:`hub_names`' DNS names) and the private address ranges."""
    cert_path, key_path = data_dir / CA_CERT_NAME, data_dir / CA_KEY_NAME
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey), f"{key_path}: not the EC key the hub made"
        return Authority(x509.load_pem_x509_certificate(cert_path.read_bytes()), key)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    dns = [name for name in (names if names is not None else hub_names()) if not _is_address(name)]
    authority = new_authority(f"intercom hub CA ({socket.gethostname() or 'hub'})", dns)
    _write_private(key_path, private_key_pem(authority.key))
    _write_private(cert_path, authority.certificate_pem())
    return authority


def hub_names() -> list[str]:
    """What the hub's leaf names: this machine's host name, its mDNS name, ``localhost``, the
    loopback addresses and the address it reaches the network from (where a phone finds it)."""
    host = socket.gethostname() or "intercom-hub"
    names = [host, f"{host}.local", "localhost", "127.0.0.1", "::1"]
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # a UDP connect sends nothing: it only picks the route's source address
        names.append(probe.getsockname()[0])
    return names


def own_certificate(data_dir: Path, names: list[str] | None = None) -> tuple[Path, Path]:
    """The hub's certificate (the leaf, then its CA) and key in ``data_dir`` (0600, in a 0700
    folder): issued by :func:`local_authority` on first use, and again, with the same key, when
    it has less than :data:`RENEW_DAYS` left or lacks one of ``names`` (default :func:`hub_names`),
    such as a new address. A self-signed certificate made before the CA is kept as it is: units
    pin it whole (docs/web-desk.md says how to switch)."""
    cert_path, key_path = data_dir / CERT_NAME, data_dir / KEY_NAME
    current, key = None, None
    if key_path.exists():  # kept, with the pin, whatever happens to the certificate
        if cert_path.exists():
            current = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if _self_signed(current):
                return cert_path, key_path
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey), f"{key_path}: not the EC key the hub made"
        key = loaded
    names = names or hub_names()
    authority = local_authority(data_dir, names)
    names = permitted_names(authority, names)  # a browser refuses a whole leaf for one name beyond its CA's
    if current is not None and _fresh_for(current, names):
        return cert_path, key_path
    certificate, key = issue(authority, names, key)
    _write_private(key_path, private_key_pem(key))
    _write_private(cert_path, certificate.public_bytes(serialization.Encoding.PEM) + authority.certificate_pem())
    return cert_path, key_path


def permitted_names(authority: Authority, names: Iterable[str]) -> list[str]:
    """Those of ``names`` that ``authority``'s name constraints let it vouch for: a DNS name under
    a permitted one, an address in a permitted network (such as a LAN address that is not private,
    or a host name given after the CA was made, are not)."""
    try:
        constraints = authority.certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return list(names)
    permitted = constraints.permitted_subtrees or []
    domains = [entry.value.lower() for entry in permitted if isinstance(entry, x509.DNSName)]
    networks = [entry.value for entry in permitted if isinstance(entry, x509.IPAddress)]
    return [
        name
        for name in names
        if (_is_address(name) and any(ipaddress.ip_address(name) in network for network in networks))
        or (not _is_address(name) and any(name.lower() == d or name.lower().endswith("." + d) for d in domains))
    ]


def _self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject


def _fresh_for(certificate: x509.Certificate, names: list[str]) -> bool:
    left = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    listed = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return left > datetime.timedelta(days=RENEW_DAYS) and set(_alt_names(names)) <= set(listed)


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM, as the hub keeps it (in a 0600 file)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    return [
        x509.IPAddress(ipaddress.ip_address(name)) if _is_address(name) else x509.DNSName(name)
        for name in dict.fromkeys(names)
    ]


def _write_private(path: Path, data: bytes) -> None:
    """Written under a temporary name and renamed: a power cut leaves the old file or the new one."""
    partial = path.with_suffix(path.suffix + ".part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


def fingerprint_of_der(der: bytes) -> str:
    """``AB:CD:...``: the SHA-256 of a certificate in DER, as ``openssl x509 -fingerprint -sha256`` shows it."""
    return ":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest())


def first_certificate_der(cert_path: Path) -> bytes:
    """The first certificate of a PEM file, which may hold a chain (the hub's does), in DER."""
    return x509.load_pem_x509_certificate(cert_path.read_bytes()).public_bytes(serialization.Encoding.DER)


def fingerprint_of_file(cert_path: Path) -> str:
    """The fingerprint of the first certificate in a PEM file."""
    return fingerprint_of_der(first_certificate_der(cert_path))


def key_fingerprint_of_der(der: bytes) -> str:
    """``AB:CD:...``: the SHA-256 of a certificate's public key (its DER SubjectPublicKeyInfo, as
    ``openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum`` gives it)."""
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return fingerprint_of_der(spki)


def pin_of_der(der: bytes) -> str:
    """What a unit pins for the certificate ``der``: a self-signed one whole (as units made before
    the CA do), one a CA issued by its key, which its renewals keep."""
    certificate = x509.load_der_x509_certificate(der)
    return fingerprint_of_der(der) if _self_signed(certificate) else key_fingerprint_of_der(der)


def pin_of_file(cert_path: Path) -> str:
    """:func:`pin_of_der` of the first certificate in a PEM file."""
    return pin_of_der(first_certificate_der(cert_path))


def normalise_fingerprint(text: str) -> str:
    """A pin as ``AB:CD:...`` from any common spelling (colons or not, ``sha256:`` or not, any case)."""
    match = _FINGERPRINT_RE.match(text.strip().replace(" ", ""))
    if match is None:
        raise FingerprintError("must be the SHA-256 fingerprint of the hub's certificate: 32 hex bytes, AB:CD:...")
    digits = match.group(1).replace(":", "").upper()
    return ":".join(digits[index : index + 2] for index in range(0, 64, 2))


def loopback_only(host: str) -> bool:
    """Whether a hub on ``host`` can be reached from this machine only (127.0.0.0/8, ``::1``,
    ``localhost``): the one place it may serve plain ws without an opt-in. Every other address,
    0.0.0.0 and ``::`` above all, and any other name, is reachable from the network."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def matches(pin: str, der: bytes | None) -> bool:
    """Whether the certificate ``der`` is the pinned one, or holds the pinned key (constant time;
    ``None``: no certificate)."""
    if der is None:
        return False
    pin = normalise_fingerprint(pin)
    certificate_match = hmac.compare_digest(fingerprint_of_der(der), pin)
    return hmac.compare_digest(key_fingerprint_of_der(der), pin) or certificate_match
