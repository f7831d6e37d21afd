"""Trusting a hub by its certificate's SHA-256 fingerprint, as a unit pins its hub's own certificate.

No CA the unit knows vouches for a hub's own certificate, so the TLS layer is told not to check the
chain or the name, and the check is made here instead, on the certificate itself (or its key, which
the hub keeps when it renews it): between the TLS
handshake and the WebSocket's HTTP upgrade. A certificate that is not the pinned one ends the
connection there, before a byte of HTTP, and so long before the REGISTER that carries the token.
"""

from __future__ import annotations

import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection

from ..auth.certificates import matches, pin_of_der
from .errors import CertificateError


def unverified_context() -> ssl.SSLContext:
    """TLS without the chain and name checks, which :func:`pinned_connection` replaces."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def pinned_connection(pin: str) -> type[ClientConnection]:
    """A ``websockets`` connection class (its ``create_connection``) that refuses a peer whose
    certificate is not ``pin`` with :class:`CertificateError`, before its opening handshake."""

    class PinnedConnection(ClientConnection):
        async def handshake(self, *args: Any, **kwargs: Any) -> None:
            ssl_object = self.transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            if not matches(pin, der):
                shown = pin_of_der(der) if der else None
                raise CertificateError(
                    f"the hub's certificate does not match the pinned fingerprint (it shows {shown or 'none'})", shown
                )  # websockets aborts the connection: nothing was written on it
            await super().handshake(*args, **kwargs)

    return PinnedConnection
