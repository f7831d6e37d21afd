"""URIs and the structured header values built on them: name-addr, Via, CSeq.

Each type parses from the text of a header value and serialises back with ``str()``.
Parameter names are case-insensitive in SIP, so they are stored lower-cased; a parameter
without a value (``;lr``, ``;rport``) maps to ``None``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .errors import BadHeader, BadUri
from .headers import split_list, split_outside_quotes

Params = dict[str, str | None]
T = TypeVar("T")

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN + r"\Z")

_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"
_HOST_RE = re.compile(_HOST + r"(?::(\d{1,5}))?\Z")
# sent-protocol LWS sent-by; SLASH and COLON may have whitespace around them (RFC 3261 25.1, 20.42).
_VIA_RE = re.compile(rf"SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*({_TOKEN})[ \t]+{_HOST}(?:[ \t]*:[ \t]*(\d{{1,5}}))?\Z", re.I)
_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_CSEQ_RE = re.compile(r"(\d{1,10})\s+(" + _TOKEN + r")\Z")


def split_params(text: str) -> list[str]:
    """Split ``a;b=c;d="x;y"`` on semicolons outside quotes and angle brackets."""
    return split_outside_quotes(text, ";")


def parse_params(parts: list[str], error: type[BadHeader] | type[BadUri] = BadHeader) -> Params:
    """Parse ``name[=value]`` items into a dict with lower-cased names."""
    params: Params = {}
    for part in parts:
        name, sep, value = part.partition("=")
        name = name.strip()
        if not name or not _TOKEN_RE.match(name):
            raise error(f"bad parameter {part!r}")
        params[name.lower()] = value.strip() if sep else None
    return params


_REMEMBER_MAX_LENGTH = 512


@functools.lru_cache(maxsize=4096)
def _parse_remembered(parse: Callable[[str], Any], text: str) -> Any:
    return parse(text)


def _remembered(parse: Callable[[str], T], text: str) -> T:
    """``parse(text)``, from a cache when the same text was parsed before.

    The same From, To, Contact and Route values come back in every request of a dialog and
    every REGISTER of a client; parsing each once saves a good part of a message's cost. The
    cached object is shared, so callers hand out copies. Failures are not cached.
    """
    if len(text) > _REMEMBER_MAX_LENGTH:
        return parse(text)
    return _parse_remembered(parse, text)


class _Parsed(Protocol):
    params: Params

    def copy(self: P) -> P: ...


P = TypeVar("P", bound=_Parsed)


def _parse_remembering(parse: Callable[[str], P], text: str, fresh_param: str) -> P:
    """``parse(text)`` with all but a trailing ``;<fresh_param>=value`` from the cache."""
    base, value = _split_last_param(text, fresh_param)
    parsed = _remembered(parse, base).copy()
    if value is not None:
        parsed.params[fresh_param] = value
    return parsed


def _split_last_param(text: str, name: str) -> tuple[str, str | None]:
    """``('<sip:a@b>', 'x1')`` from ``'<sip:a@b>;tag=x1'`` when a plain ``;name=value`` ends the text.

    A tag or branch is new in every message while the rest of the header repeats, so splitting
    it off lets the rest be parsed once (see :func:`_remembered`). Anything less plain, such as
    a quoted value or more parameters after it, returns the text whole.
    """
    base, separator, value = text.rpartition(f";{name}=")
    value = value.strip()
    if separator and _TOKEN_RE.match(value):
        return base, value
    return text, None


def format_params(params: Params) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params.items())


@dataclass
class SipUri:
    """A ``sip:`` or ``sips:`` URI (RFC 3261 section 19.1)."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    password: str | None = None
    params: Params = field(default_factory=dict)
    headers: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        return _remembered(cls._parse_fresh, text).copy()

    @classmethod
    def _parse_fresh(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips"):
            raise BadUri(f"not a sip or sips URI: {text!r}")
        # The user part may hold '?' and ';' (RFC 3261 25.1 user-unreserved) but never '@', nor may
        # params or headers: the userinfo ends at the first '@', and only then do '?' headers start.
        userinfo, at, hostpart = rest.partition("@")
        if not at:
            userinfo, hostpart = "", userinfo
        hostpart, _, headers = hostpart.partition("?")
        user = password = None
        if at:
            user, _, pw = userinfo.partition(":")
            password = pw or None
            if not user:
                raise BadUri(f"empty user part in {text!r}")
        pieces = hostpart.split(";")
        match = _HOST_RE.match(pieces[0])
        if not match:
            raise BadUri(f"bad host in {text!r}")
        port = int(match.group(2)) if match.group(2) else None
        if port is not None and not 0 < port < 65536:
            raise BadUri(f"port out of range in {text!r}")
        params = parse_params(pieces[1:], BadUri)
        return cls(match.group(1), user, port, scheme, password, params, headers or None)

    def copy(self) -> SipUri:
        return SipUri(self.host, self.user, self.port, self.scheme, self.password, dict(self.params), self.headers)

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password else "") + "@"
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host_port}{format_params(self.params)}{headers}"


@dataclass
class Address:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route.

    ``uri`` is kept as a :class:`SipUri` when it is one; other schemes (``tel:``, ``urn:``)
    stay as text so that a Contact naming one does not make the whole message unreadable.
    """

    uri: SipUri | str
    display_name: str | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Address:
        return _parse_remembering(cls._parse_fresh, text, "tag")

    @classmethod
    def _parse_fresh(cls, text: str) -> Address:
        text = text.strip()
        display_name = None
        rest = text
        if text.startswith('"'):
            # A quoted display name may itself hold '<', '>' and ';' (RFC 3261 25.1).
            match = _QUOTED_RE.match(text)
            if not match:
                raise BadHeader(f"bad quoted display name in {text!r}")
            display_name = re.sub(r"\\(.)", r"\1", match.group(1))
            rest = text[match.end() :].lstrip()
            if not rest.startswith("<"):
                raise BadHeader(f"a quoted display name must be followed by <URI> in {text!r}")
        if "<" in rest:
            head, _, tail = rest.partition("<")
            uri_text, closed, after = tail.partition(">")
            if not closed:
                raise BadHeader(f"unclosed '<' in {text!r}")
            if head.strip():
                display_name = head.strip()
            param_text = after.strip()
            if param_text and not param_text.startswith(";"):
                raise BadHeader(f"unexpected text after '>' in {text!r}")
            params = parse_params(split_params(param_text)[1:]) if param_text else {}
        else:
            # addr-spec form: every ';' after the URI belongs to the header, not the URI.
            uri_text, *param_parts = split_params(text)
            params = parse_params(param_parts)
        uri_text = uri_text.strip()
        if not uri_text:
            raise BadHeader(f"empty URI in {text!r}")
        if "<" in uri_text or ">" in uri_text:
            raise BadHeader(f"stray angle bracket in {text!r}")
        uri: SipUri | str = SipUri.parse(uri_text) if uri_text[:4].lower() in ("sip:", "sips") else uri_text
        return cls(uri, display_name, params)

    def copy(self) -> Address:
        uri = self.uri.copy() if isinstance(self.uri, SipUri) else self.uri
        return Address(uri, self.display_name, dict(self.params))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        name = ""
        if self.display_name is not None:
            escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
            name = f'"{escaped}" '
        return f"{name}<{self.uri}>{format_params(self.params)}"


def parse_address_list(lines: str) -> list[Address]:
    """The addresses of a list header (Contact, Route), its lines joined by newlines; ``*`` is
    left out. A client sends the same Contact every time, so the parse is remembered."""
    return [address.copy() for address in _remembered(_parse_address_list, lines)]


def _parse_address_list(lines: str) -> list[Address]:
    return [Address.parse(item) for line in lines.split("\n") for item in split_list(line) if item != "*"]


@dataclass
class Via:
    """One Via entry: ``SIP/2.0/WSS host[:port];branch=...``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        return _parse_remembering(cls._parse_fresh, text, "branch")

    @classmethod
    def _parse_fresh(cls, text: str) -> Via:
        first, *param_parts = split_params(text.strip())
        match = _VIA_RE.match(first.strip())
        if not match:
            raise BadHeader(f"bad Via {text!r}")
        transport, host, port = match.groups()
        return cls(transport.upper(), host, int(port) if port else None, parse_params(param_parts))

    def copy(self) -> Via:
        return Via(self.transport, self.host, self.port, dict(self.params))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.sent_by}{format_params(self.params)}"


@dataclass(frozen=True)
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        match = _CSEQ_RE.match(text.strip())
        if not match or int(match.group(1)) >= 2**31:
            raise BadHeader(f"bad CSeq {text!r}")
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"
