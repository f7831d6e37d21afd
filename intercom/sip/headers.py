"""Header fields: an ordered, case-insensitive multi-map that keeps the names as sent.

SIP lets one header appear on several lines or as a comma-separated list on one line, and
lets some headers use a one-letter compact name (RFC 3261 section 7.3.3). Lookups here
treat all of those forms alike; serialisation writes back what was stored.
"""

from __future__ import annotations

from collections.abc import Iterator

from .errors import BadHeader

COMPACT_FORMS = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Spellings that title-casing would get wrong.
_CANONICAL = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "webrtc-token": "WebRTC-Token",
    "webrtc-userdata": "WebRTC-UserData",
    "sdk-version": "SDK-Version",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
}

# Headers whose value is a comma-separated list (RFC 3261 section 7.3.1). Others, such as
# the authentication headers or Date, may contain commas that do not separate values.
LIST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "allow",
        "allow-events",
        "contact",
        "content-encoding",
        "content-language",
        "in-reply-to",
        "proxy-require",
        "record-route",
        "require",
        "route",
        "supported",
        "unsupported",
        "via",
        "path",
    }
)


def normalise_name(name: str) -> str:
    """Lower-case key of a header name, with compact forms expanded."""
    lowered = name.lower()
    return COMPACT_FORMS.get(lowered, lowered)


def canonical_name(name: str) -> str:
    """The usual spelling of a header name: ``call-id`` -> ``Call-ID``, ``v`` -> ``Via``."""
    key = normalise_name(name)
    return _CANONICAL.get(key) or "-".join(part.capitalize() for part in key.split("-"))


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it stands outside quoted strings and angle brackets.

    ``,`` separates list items and ``;`` parameters, and both may appear inside a quoted
    display name or a bracketed URI; an unterminated quoted string is a :class:`BadHeader`.
    """
    parts: list[str] = []
    start = 0
    in_quotes = in_angle = False
    i = 0
    while i < len(text):
        char = text[i]
        if in_quotes:
            if char == "\\":
                i += 1
            elif char == '"':
                in_quotes = False
        elif char == '"':
            in_quotes = True
        elif char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == separator and not in_angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quotes:
        raise BadHeader(f"unterminated quoted string in {text[:80]!r}")
    parts.append(text[start:])
    return parts


def split_list(value: str) -> list[str]:
    """The items of a list header value, stripped, empty ones left out."""
    return [item.strip() for item in split_outside_quotes(value, ",") if item.strip()]


class Headers:
    """Ordered header fields of one message."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]] | None = None) -> None:
        self._fields: list[tuple[str, str]] = list(fields or [])

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._fields == other._fields

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"

    def copy(self) -> Headers:
        return Headers(self._fields)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first line's value of a header, as sent (a list header is not split)."""
        key = normalise_name(name)
        for field_name, value in self._fields:
            if normalise_name(field_name) == key:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, across lines, with list headers split on commas."""
        key = normalise_name(name)
        values: list[str] = []
        for field_name, value in self._fields:
            if normalise_name(field_name) == key:
                values.extend(split_list(value) if key in LIST_HEADERS else [value])
        return values

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        self._fields.append((name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of a header with one line, kept at the first line's place."""
        key = normalise_name(name)
        for index, (field_name, _) in enumerate(self._fields):
            if normalise_name(field_name) == key:
                self._fields[index] = (field_name, value)
                self._fields[index + 1 :] = [
                    field for field in self._fields[index + 1 :] if normalise_name(field[0]) != key
                ]
                return
        self._fields.append((canonical_name(name), value))

    def remove(self, name: str) -> None:
        """Remove every line of a header."""
        key = normalise_name(name)
        self._fields = [field for field in self._fields if normalise_name(field[0]) != key]

    def prepend(self, name: str, value: str) -> None:
        """Insert a header line before all others (used for Via)."""
        self._fields.insert(0, (name, value))
