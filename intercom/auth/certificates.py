"""The hub's own TLS certificate, and the fingerprint units pin it by.

A hub that no installer gave a certificate makes one on first start: an ECDSA P-256 key and a
self-signed certificate, both readable by the hub's user only. No CA vouches for it, so a unit
trusts it by its SHA-256 fingerprint, which ``intercom units add`` prints into the unit's env
file: a relay on the cable that shows any other certificate is refused before a byte of SIP
(and so before the unit's token) is sent.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import os
import re
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_NAME, KEY_NAME = "hub-cert.pem", "hub-key.pem"
VALID_DAYS = 20 * 365  # a unit on a wall outlives any renewal plan: the pin, not the date, is the trust
_FINGERPRINT_RE = re.compile(r"(?:sha256:)?((?:[0-9a-f]{2}:?){32})\Z", re.IGNORECASE)


class FingerprintError(ValueError):
    """A pinned fingerprint that is not 32 hex bytes, or a certificate that does not match it."""


def own_certificate(data_dir: Path, names: list[str] | None = None) -> tuple[Path, Path]:
    """The hub's certificate and key in ``data_dir``, made on first use (0600, in a 0700 folder).

    ``names``: DNS names and IP addresses the certificate lists (default: this machine's host
    name and ``localhost``). Units check the fingerprint, not the names; the names only help a
    browser or ``openssl s_client`` user see whose certificate it is."""
    cert_path, key_path = data_dir / CERT_NAME, data_dir / KEY_NAME
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "intercom-hub"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_alt_names(names or [host, "localhost"])), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, key_pem)
    _write_private(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    alt: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    return alt


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


def fingerprint_of_file(cert_path: Path) -> str:
    """The fingerprint of the first certificate in a PEM file."""
    return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(cert_path.read_text()))


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
    """Whether the certificate ``der`` is the pinned one (constant time; ``None``: no certificate)."""
    if der is None:
        return False
    return hmac.compare_digest(fingerprint_of_der(der), normalise_fingerprint(pin))
