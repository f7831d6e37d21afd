"""SIP requests and responses: parsing and serialisation (RFC 3261 sections 7 and 20).

Over WebSocket (RFC 7118) each frame holds exactly one message, so :func:`parse_message`
takes a whole message and never has to find where one ends. Bodies are bytes because
Content-Length counts bytes; a frame may arrive as text or binary.
"""

from __future__ import annotations

import contextlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .address import Address, CSeq, SipUri, Via, parse_address_list
from .errors import (
    BadContentLength,
    BadHeader,
    BadStartLine,
    BadUri,
    MessageTooLarge,
    MissingHeader,
    ParseError,
    TooManyHeaders,
    UnsupportedVersion,
)
from .headers import SINGLE_VALUED_HEADERS, Headers, canonical_name, normalise_name, parse_decimal, split_list

T = TypeVar("T")

MAX_MESSAGE_SIZE = 64 * 1024
MAX_HEADERS = 100

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    600: "Busy Everywhere",
    603: "Decline",
}

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"  # RFC 3261 token: a method or a header name
_METHOD_RE = re.compile(_TOKEN + r"\Z")
_HEADER_LINE_RE = re.compile(rf"({_TOKEN})[ \t]*:(.*)\Z", re.DOTALL)
_HEADER_LINES_RE = re.compile(rf"^({_TOKEN})[ \t]*:(.*)$", re.MULTILINE)
# RFC 3261 7.1: the SIP-Version string is case-insensitive.
_STATUS_RE = re.compile(r"(?i:SIP)/2\.0 ([1-6]\d\d) ([^\r\n]*)\Z")
_VERSION_RE = re.compile(r"SIP/\d+\.\d+\Z", re.IGNORECASE)
# absoluteURI (RFC 3261 25.1), loosely: a scheme, a colon, then no space, angle bracket or quote.
_ABSOLUTE_URI_RE = re.compile(r'[A-Za-z][A-Za-z0-9+\-.]*:[^\s<>"]+\Z')
_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_COPIED = frozenset({"via", "from", "call-id", "cseq"})  # into a response; To gets its tag separately


@dataclass
class Message(ABC):
    """What requests and responses share: headers, a body, and typed views of headers.

    A view (``cseq``, ``from_``, ``to``, ``top_via``, ``contacts``) is parsed once per header
    value and then shared, since a message is looked at many times on its way through: treat
    views as read-only, and build a new object to change one.
    """

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    _views: dict[str, tuple[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        return self._view("cseq", self._required("CSeq"), CSeq.parse)

    @property
    def from_(self) -> Address:
        return self._view("from", self._required("From"), Address.parse)

    @property
    def to(self) -> Address:
        return self._view("to", self._required("To"), Address.parse)

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(value) for value in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        first_line = self._required("Via")
        return self._view("via", first_line, _parse_top_via)

    @property
    def contacts(self) -> list[Address]:
        return self._view("contact", "\n".join(self.headers.get_lines("Contact")), parse_address_list)

    def _view(self, name: str, raw: str, parse: Callable[[str], T]) -> T:
        cached = self._views.get(name)
        if cached is not None and cached[0] == raw:
            return cached[1]
        value = parse(raw)
        self._views[name] = (raw, value)
        return value

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise MissingHeader(f"no {name} header")
        return value

    @abstractmethod
    def start_line(self) -> str:
        """The request line or status line, without CRLF."""

    def __bytes__(self) -> bytes:
        lines = [self.start_line()]
        lines.extend(f"{name}: {value}" for name, value in self.headers if normalise_name(name) != "content-length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body

    def text(self) -> str:
        """The serialised message as text, as it goes into a WebSocket text frame."""
        return bytes(self).decode("utf-8", errors="replace")


@dataclass
class Request(Message):
    method: str = "OPTIONS"
    uri: SipUri | str = ""

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass
class Response(Message):
    status_code: int = 200
    reason: str = "OK"

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status_code} {self.reason}"

    @property
    def is_provisional(self) -> bool:
        return self.status_code < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300


def _parse_top_via(first_line: str) -> Via:
    values = split_list(first_line)
    if not values:
        raise MissingHeader("empty Via header")
    return Via.parse(values[0])


def parse_message(data: bytes | str) -> Request | Response:
    """Parse one whole SIP message; raise a :class:`ParseError` subclass if it is malformed."""
    # surrogatepass: a str with a lone surrogate becomes bytes that fail UTF-8 decoding below
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_MESSAGE_SIZE:
        raise MessageTooLarge(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_SIZE}", _salvage(raw))
    head, body = _split_head(raw)
    first, _, rest = head.partition(b"\n")
    try:
        message = _parse_start_line(first.decode("utf-8").rstrip("\r"))
    except UnicodeDecodeError:
        raise _with_readable_request(BadStartLine("start line is not UTF-8"), first, rest) from None
    except BadStartLine as exc:
        raise _with_readable_request(exc, first, rest) from None
    request = message if isinstance(message, Request) else None
    _read_headers(message, rest, request)
    _refuse_repeated(message, request)
    message.body = _checked_body(message, body, request)
    _validate(message, request)
    return message


def _with_readable_request(error: BadStartLine, first: bytes, block: bytes) -> BadStartLine:
    """``error`` with the request it refuses, as far as it can be read, when the start line begins
    with a method: the sender then gets an answer (400, or 505) instead of waiting out its timer."""
    request = _readable_request(first.decode("utf-8", errors="replace").rstrip("\r"))
    if request is not None:
        with contextlib.suppress(ParseError):  # the start line is what gets reported; keep the good headers
            _read_headers(request, block, request)
        error.request = request
    return error


def _read_headers(message: Request | Response, block: bytes, request: Request | None) -> None:
    """Fill ``message.headers`` from the header block; on a bad line, keep the good ones (a
    400 needs the Via and Call-ID) and then raise."""
    try:
        text, checked = block.decode("utf-8"), True
    except UnicodeDecodeError:
        text, checked = block.decode("utf-8", errors="surrogateescape"), False
    if checked and text and "\n " not in text and "\n\t" not in text and text[0] not in " \t":
        # No folding and valid UTF-8: one regex pass over the block, if every line is a header.
        found = _HEADER_LINES_RE.findall(text)
        if len(found) == text.count("\n") + 1 <= MAX_HEADERS:
            message.headers = Headers([(name, value.strip()) for name, value in found])
            return
    fields = _unfold(text.split("\n"))
    bad_line = None
    pairs: list[tuple[str, str]] = []
    for line in fields[:MAX_HEADERS]:
        match = _HEADER_LINE_RE.match(line)
        if match is None or not (checked or _is_utf8(line)):
            bad_line = bad_line or line
            continue
        pairs.append((match.group(1), match.group(2).strip()))
    message.headers = Headers(pairs)
    if len(fields) > MAX_HEADERS:
        raise TooManyHeaders(f"more than {MAX_HEADERS} header fields", request)
    if bad_line is not None:
        shown = bad_line[:80].encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
        raise BadHeader(f"bad header line {shown!r}", request)


def _is_utf8(line: str) -> bool:
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _salvage(raw: bytes) -> Request | None:
    """The request line and the well-formed short header lines of an oversized message,
    enough to answer it with 400; ``None`` when it does not start with a method."""
    head = _split_head(raw[:MAX_MESSAGE_SIZE])[0].decode("utf-8", errors="replace").split("\n")
    message = _readable_request(head[0].rstrip("\r"))
    if message is None:
        return None
    for line in head[1 : MAX_HEADERS + 1]:
        match = _HEADER_LINE_RE.match(line.strip())
        if match and len(line) < 1024:
            message.headers.add(match.group(1), match.group(2).strip())
    return message


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    raw = raw.lstrip(b"\r\n")  # RFC 3261 7.5: ignore CRLFs before the start line
    index = raw.find(b"\r\n\r\n")
    if index >= 0:
        return raw[:index], raw[index + 4 :]
    index = raw.find(b"\n\n")
    if index >= 0:
        return raw[:index], raw[index + 2 :]
    return raw.rstrip(b"\r\n"), b""


def _parse_start_line(line: str) -> Request | Response:
    if line[:4].upper() == "SIP/":
        match = _STATUS_RE.match(line)
        if not match:
            raise BadStartLine(f"bad status line {line[:80]!r}")
        return Response(status_code=int(match.group(1)), reason=match.group(2))
    parts = line.split(" ")
    if not _METHOD_RE.match(parts[0]):
        raise BadStartLine(f"bad request line {line[:80]!r}")
    # RFC 3261 7.1: single spaces between the three parts. Extra or trailing spaces, or one inside
    # the Request-URI, leave it unclear where the URI ends: refused rather than guessed at.
    if len(parts) != 3 or not parts[1] or not parts[2]:
        raise BadStartLine(f"request line {line[:80]!r} is not 'Method SP Request-URI SP SIP/2.0'")
    method, uri_text, version = parts
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if _VERSION_RE.match(version):
            raise UnsupportedVersion(f"SIP version {version[:20]!r} is not supported, only SIP/2.0")
        raise BadStartLine(f"bad SIP version {version[:20]!r} in the request line")
    return Request(method=method, uri=_parse_request_uri(uri_text))


def _parse_request_uri(text: str) -> SipUri | str:
    """A ``sip:``/``sips:`` Request-URI parsed; any other scheme kept as text, for the hub to refuse."""
    if text[:1] == "<":
        raise BadStartLine(f"Request-URI {text[:80]!r} in angle brackets")
    scheme = text.partition(":")[0].lower()
    if scheme in ("sip", "sips"):
        try:
            return SipUri.parse(text)
        except BadUri as exc:
            raise BadStartLine(f"bad Request-URI: {exc}") from None
    if not _ABSOLUTE_URI_RE.match(text):
        raise BadStartLine(f"Request-URI {text[:80]!r} is not a URI")
    return text


def _readable_request(line: str) -> Request | None:
    """The request a start line asks for, as far as it can be read: the method (an ACK is never
    answered) and the Request-URI as text when the line is malformed; ``None`` when it does not
    start with a method and a space."""
    try:
        message = _parse_start_line(line)
    except BadStartLine:
        method, space, rest = line.partition(" ")
        if not space or not _METHOD_RE.match(method):
            return None
        return Request(method=method, uri=rest.strip().partition(" ")[0])
    return message if isinstance(message, Request) else None


def _unfold(lines: list[str]) -> list[str]:
    if not any(line[:1] in (" ", "\t") for line in lines):  # no folded lines: the usual case
        return [stripped for line in lines if (stripped := line.rstrip("\r"))][: MAX_HEADERS + 1]
    fields: list[str] = []
    for line in lines:
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += " " + line.strip()
        elif line:
            fields.append(line)
        if len(fields) > MAX_HEADERS:
            break
    return fields


def _refuse_repeated(message: Message, request: Request | None) -> None:
    """Refuse a message with two lines of a header that may have one (RFC 3261 7.3.1): which
    one counts is a guess, and two Content-Lengths leave the body's end unknown."""
    key = message.headers.repeated_single()
    if key is None:
        return
    values = ", ".join(repr(value[:20]) for value in message.headers.get_lines(key))
    if key == "content-length":
        raise BadContentLength(f"more than one Content-Length header: {values}", request)
    raise BadHeader(f"more than one {canonical_name(key)} header: {values}", request)


def _checked_body(message: Message, body: bytes, request: Request | None) -> bytes:
    length_text = message.headers.get("Content-Length")
    if length_text is None:
        return body
    length = parse_decimal(length_text)
    if length is None:
        raise BadContentLength(f"Content-Length {length_text!r} is not a number", request)
    if length > len(body):
        raise BadContentLength(f"Content-Length {length} but only {len(body)} body bytes", request)
    return body[:length]  # RFC 3261 18.3: bytes past Content-Length are discarded


def _validate(message: Request | Response, request: Request | None) -> None:
    headers = message.headers
    for name in _REQUIRED:
        if headers.get(name) is None:
            raise MissingHeader(f"missing {name} header", request)
    try:
        cseq = message.cseq
        message.top_via  # noqa: B018 - parsed for its validation
        message.from_  # noqa: B018
        message.to  # noqa: B018
    except ParseError as exc:
        raise type(exc)(str(exc), request) from None
    if request is not None and cseq.method != request.method:
        raise BadHeader(f"CSeq method {cseq.method} does not match {request.method}", request)


def _has_tag(request: Request, value: str) -> bool:
    try:
        to = request.to if value == request.headers.get("To") else Address.parse(value)
        return to.tag is not None
    except ParseError:  # answering a broken request: judge by the text
        return ";tag=" in value.replace(" ", "").lower()


def make_response(
    request: Request,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Response:
    """Build a response to ``request`` with the headers RFC 3261 section 8.2.6 copies over.

    Works on a partly parsed request too (as kept by a :class:`ParseError`): headers the
    request lacks are left out.
    """
    fields: list[tuple[str, str]] = []
    copied_once: set[str] = set()
    for key, name, value in request.headers.keyed():
        if key in SINGLE_VALUED_HEADERS:
            if key in copied_once:
                continue  # a refused request may repeat its From or CSeq; the answer must not
            copied_once.add(key)
        if key in _COPIED or (key == "record-route" and 100 < status_code < 300):
            fields.append((name, value))
        elif key == "to":
            if to_tag and not _has_tag(request, value):
                value = f"{value};tag={to_tag}"
            fields.append((name, value))
    fields.extend(headers or [])
    reason = reason or REASON_PHRASES.get(status_code, "Unknown")
    return Response(headers=Headers(fields), body=body, status_code=status_code, reason=reason)


def make_cancel(invite: Request) -> Request:
    """The CANCEL of a pending INVITE (RFC 3261 section 9.1): the same Request-URI, top Via,
    Call-ID, From, To, Route set and CSeq number, so the far end matches it to the INVITE."""
    cancel = Request(method="CANCEL", uri=invite.uri)
    cancel.headers.add("Via", invite.headers.get_all("Via")[0])
    for name in ("Route", "Max-Forwards", "From", "To", "Call-ID"):
        for value in invite.headers.get_lines(name):
            cancel.headers.add(name, value)
    cancel.headers.add("CSeq", f"{invite.cseq.number} CANCEL")
    return cancel
