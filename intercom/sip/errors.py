"""Typed errors of the SIP layer.

Every way a message can fail to parse is a subclass of :class:`ParseError`, so a caller
catches one type and still knows exactly what went wrong. When the start line of a request
was readable the error carries the partly parsed request, which is enough to answer 400.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Request


class SipError(Exception):
    """Base class of every error raised by :mod:`intercom.sip`."""


class ParseError(SipError):
    """A message could not be parsed.

    ``request`` holds the request as far as it was read (start line plus the headers
    before the faulty one) when the start line was a valid request line, else ``None``.
    ``status_code`` is the final response RFC 3261 wants for it (8.2.2, 21.4).
    """

    status_code: int = 400

    def __init__(self, message: str, request: Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class MessageTooLarge(ParseError):
    """The message is larger than :data:`intercom.sip.message.MAX_MESSAGE_SIZE`."""


class TooManyHeaders(ParseError):
    """The message has more header fields than :data:`intercom.sip.message.MAX_HEADERS`."""


class BadStartLine(ParseError):
    """The first line is neither a request line nor a status line."""


class UnsupportedVersion(BadStartLine):
    """A request line names a SIP version other than SIP/2.0: answered with 505 (RFC 3261 8.2.2)."""

    status_code = 505


class BadHeader(ParseError):
    """A header line or a header value does not follow the grammar."""


class MissingHeader(ParseError):
    """A header every request or response must carry is absent."""


class BadContentLength(ParseError):
    """Content-Length is not a number, or does not match the body."""


class BadUri(ParseError):
    """A URI does not follow the SIP URI grammar."""


class DialogError(SipError):
    """A request or response does not fit the dialog it was given to."""


class TransactionError(SipError):
    """A message was given to a transaction in a state where it is not allowed."""
