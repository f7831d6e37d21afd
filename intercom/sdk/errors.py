"""The errors of the seed SDK, each with the SIP-derived ``code`` it documents."""

from __future__ import annotations


class ClientError(Exception):
    """Base of the errors a :class:`~intercom.sdk.Client` emits; ``code`` as the seed SDK."""

    code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r})"


class ForbiddenError(ClientError):
    """The hub refused the token (403) five times, each after a fresh ``refresh_token()``."""

    code = 403


class NotAcceptableError(ClientError):
    """The hub refused the token's identity (406). Not retried: a new token will not help."""

    code = 406


class InternalError(ClientError):
    """Any other registration failure (500 in the seed SDK)."""

    code = 500


class CertificateError(InternalError):
    """The hub showed a certificate this client does not trust: not the pinned one
    (``Client(tls_fingerprint=...)``), or one its CAs do not vouch for. Nothing was sent, the
    token least of all. Not retried: the same hub shows the same certificate, and another one
    may be a relay on the network. ``shown``: the fingerprint of the certificate the hub showed.

    Code 500, as the seed SDK's "could not register": an app written for its three codes still
    sees a failure it knows, and one that wants to tell this one apart catches the class."""

    def __init__(self, message: str, shown: str | None = None) -> None:
        super().__init__(message)
        self.shown = shown


class DeviceError(InternalError):
    """A call's microphone or speaker failed or went away (an ``error`` on the call, which carries on).

    ``device`` is ``'microphone'`` or ``'speaker'``; ``cause`` what the sound system said.
    """

    def __init__(self, device: str, cause: Exception) -> None:
        super().__init__(f"{device}: {cause}")
        self.device = device
        self.cause = cause
