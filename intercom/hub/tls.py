"""Which certificate a hub serves with, and what another unit needs to trust it.

A hub reachable beyond this machine serves wss/https: with the installer's certificate when one
is given, else with its own (:func:`~intercom.auth.certificates.own_certificate`, issued by the
hub's local CA). What a unit then needs in its env file is the URL and the pin: :func:`served_url`
and :func:`certificate_fingerprint` give both (``intercom units add`` prints them). What a phone
needs is the CA, checked by its fingerprint: :func:`authority_certificate` and
:func:`authority_fingerprint`.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from ..auth.certificates import (
    CA_CERT_NAME,
    CERT_NAME,
    fingerprint_of_file,
    loopback_only,
    own_certificate,
    pin_of_file,
)


def tls_files(
    host: str, data_dir: Path, cert_file: Path | None, key_file: Path | None, *, plain: bool = False
) -> tuple[Path, Path] | None:
    """The certificate and key a hub on ``host`` serves with, or ``None`` for plain ws: the given
    pair, else the hub's own one when ``host`` is reachable beyond loopback, unless ``plain``
    (the explicit opt-out)."""
    if (cert_file is None or key_file is None) and (plain or loopback_only(host)):
        return None
    return served_certificate(data_dir, cert_file, key_file)


def served_certificate(data_dir: Path, cert_file: Path | None, key_file: Path | None) -> tuple[Path, Path]:
    """The certificate and key of a hub that serves TLS: the installer's pair when given, else its
    own in ``data_dir`` (made on first use)."""
    if cert_file is not None and key_file is not None:
        return cert_file, key_file
    return own_certificate(data_dir)


def certificate_fingerprint(data_dir: Path, cert_file: Path | None = None) -> str:
    """The SHA-256 pin units use (:func:`~intercom.auth.certificates.pin_of_file`): of ``cert_file``
    when the installer brought one, else of the hub's own certificate in ``data_dir`` (made now if
    it is not there yet)."""
    return pin_of_file(cert_file if cert_file is not None else own_certificate(data_dir)[0])


def authority_certificate(data_dir: Path, cert_file: Path | None = None) -> Path | None:
    """The hub's CA certificate in ``data_dir``, which a phone installs to trust the hub, when the
    certificate served (``cert_file``, else the hub's own) is one that CA issued; ``None`` when it
    is not: an installer's (a public CA's, which phones trust already) or the self-signed one of a
    hub made before the CA."""
    ca_path, served_path = data_dir / CA_CERT_NAME, cert_file or data_dir / CERT_NAME
    if not (ca_path.exists() and served_path.exists()):
        return None
    served = x509.load_pem_x509_certificate(served_path.read_bytes())
    authority = x509.load_pem_x509_certificate(ca_path.read_bytes())
    try:
        served.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return None
    return ca_path


def authority_fingerprint(data_dir: Path, cert_file: Path | None = None) -> str | None:
    """The SHA-256 fingerprint of :func:`authority_certificate` (``AB:CD:...``), which the resident
    compares with what the phone shows before trusting it; ``None`` when there is no such CA."""
    ca_path = authority_certificate(data_dir, cert_file)
    return None if ca_path is None else fingerprint_of_file(ca_path)


def served_url(host: str, port: int, secure: bool) -> str:
    """``wss://host:port`` as another unit reaches this hub: the address it listens on, or, for
    every address (0.0.0.0, ``::``), this machine's name."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        name = host
    else:
        name = socket.gethostname() if address.is_unspecified else str(address)
        if address.version == 6 and not address.is_unspecified:
            name = f"[{name}]"
    return f"{'wss' if secure else 'ws'}://{name}:{port}"


def phone_trust_line(data_dir: Path, cert_file: Path | None, url: str) -> str | None:
    """What a hub logs at start for the phones (``url``: its :func:`served_url`): where its CA is
    and the fingerprint to check it by; ``None`` when it has no CA of its own to offer."""
    fingerprint = authority_fingerprint(data_dir, cert_file)
    if fingerprint is None:
        return None
    where = url.replace("wss://", "https://", 1)
    return f"phones trust this hub once they install its CA, {where}/ca.crt, SHA-256 fingerprint {fingerprint}"
