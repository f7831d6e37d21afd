"""Header fields: an ordered, case-insensitive multi-map that keeps the names as sent.

SIP lets one header appear on several lines or as a comma-separated list on one line, and
lets some headers use a one-letter compact name (RFC 3261 section 7.3.3). Lookups here
treat all of those forms alike; serialisation writes back what was stored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator

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


# Headers that may appear on one line only (RFC 3261 section 7.3.1): those of section 20 whose value
# is not a comma-separated list, less the authentication headers 7.3.1 lets repeat, plus the
# session timer's (RFC 4028). Two of them make a message ambiguous: it is refused, not guessed at.
SINGLE_VALUED_HEADERS = frozenset(
    {
        "call-id",
        "content-disposition",
        "content-length",
        "content-type",
        "cseq",
        "date",
        "expires",
        "from",
        "max-forwards",
        "mime-version",
        "min-expires",
        "min-se",
        "organization",
        "priority",
        "reply-to",
        "retry-after",
        "server",
        "session-expires",
        "subject",
        "timestamp",
        "to",
        "user-agent",
    }
)


@functools.lru_cache(maxsize=1024)
def normalise_name(name: str) -> str:
    """Lower-case key of a header name, with compact forms expanded."""
    lowered = name.lower()
    return COMPACT_FORMS.get(lowered, lowered)


def canonical_name(name: str) -> str:
    """The usual spelling of a header name: ``call-id`` -> ``Call-ID``, ``v`` -> ``Via``."""
    key = normalise_name(name)
    return _CANONICAL.get(key) or "-".join(part.capitalize() for part in key.split("-"))


_ITEMS: dict[str, re.Pattern[str]] = {}


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it stands outside quoted strings and angle brackets.

    ``,`` separates list items and ``;`` parameters, and both may appear inside a quoted
    display name or a bracketed URI; an unterminated quoted string is a :class:`BadHeader`.
    """
    if '"' not in text and "<" not in text:
        return text.split(separator)  # the common case
    item = _ITEMS.get(separator)
    if item is None:
        # Runs of plain characters, quoted strings and bracketed URIs, up to a separator.
        plain = "[^" + re.escape(separator) + '"<]+'
        item = _ITEMS[separator] = re.compile(rf'(?:{plain}|"(?:[^"\\]|\\.)*"|<[^>]*>)*')
    parts: list[str] = []
    position = 0
    while True:
        end = item.match(text, position).end()  # type: ignore[union-attr]  # matches the empty string
        if end == len(text):
            parts.append(text[position:])
            return parts
        if text[end] == separator:
            parts.append(text[position:end])
            position = end + 1
        elif text[end] == '"':
            raise BadHeader(f"unterminated quoted string in {text[:80]!r}")
        else:  # an unclosed '<': no separator can follow it
            parts.append(text[position:])
            return parts


def parse_decimal(value: str | None) -> int | None:
    """A header value that must be a plain non-negative number (Content-Length, Expires,
    Min-Expires): its value, or ``None`` when it is absent or anything but ASCII digits
    (``int()`` would also take ``'²'``, ``' 7'`` or ``'1_0'``)."""
    if value is None or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


def split_list(value: str) -> list[str]:
    """The items of a list header value, stripped, empty ones left out."""
    return [item.strip() for item in split_outside_quotes(value, ",") if item.strip()]


def content_type(headers: Headers) -> str:
    """The media type of a message's body, lower-case, without parameters ("" when none)."""
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


class Headers:
    """Ordered header fields of one message.

    Each field keeps its normalised name beside it, so that the dozen lookups a message
    gets on its way through the hub do not lower-case every name each time.
    """

    __slots__ = ("_fields", "_keys")

    def __init__(self, fields: list[tuple[str, str]] | None = None) -> None:
        self._fields: list[tuple[str, str]] = list(fields or [])
        self._keys: list[str] = [normalise_name(name) for name, _ in self._fields]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def keyed(self) -> Iterator[tuple[str, str, str]]:
        """``(normalised name, name, value)`` of every line, for loops that sort headers by kind."""
        for key, (name, value) in zip(self._keys, self._fields, strict=True):
            yield key, name, value

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalise_name(name) in self._keys

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._fields == other._fields

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"

    def repeated_single(self) -> str | None:
        """The normalised name of the first single-valued header that is on more than one line."""
        keys = self._keys
        if len(set(keys)) == len(keys):  # the usual case: no name twice
            return None
        seen: set[str] = set()
        for key in keys:
            if key in seen and key in SINGLE_VALUED_HEADERS:
                return key
            seen.add(key)
        return None

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first line's value of a header, as sent (a list header is not split)."""
        try:
            return self._fields[self._keys.index(normalise_name(name))][1]
        except ValueError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, across lines, with list headers split on commas."""
        values = self.get_lines(name)
        if values and normalise_name(name) in LIST_HEADERS:
            return [item for value in values for item in split_list(value)]
        return values

    def get_lines(self, name: str) -> list[str]:
        """The value of each line of a header, as sent (list headers not split)."""
        key = normalise_name(name)
        if key not in self._keys:
            return []
        return [self._fields[index][1] for index, field_key in enumerate(self._keys) if field_key == key]

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        self._fields.append((name, value))
        self._keys.append(normalise_name(name))

    def set(self, name: str, value: str) -> None:
        """Replace every line of a header with one line, kept at the first line's place."""
        key = normalise_name(name)
        if key not in self._keys:
            self.add(canonical_name(name), value)
            return
        first = self._keys.index(key)
        self._fields[first] = (self._fields[first][0], value)
        self._keep(lambda index, field_key: index <= first or field_key != key)

    def remove(self, name: str) -> None:
        """Remove every line of a header."""
        key = normalise_name(name)
        self._keep(lambda index, field_key: field_key != key)

    def _keep(self, wanted: Callable[[int, str], bool]) -> None:
        kept = [index for index, field_key in enumerate(self._keys) if wanted(index, field_key)]
        self._fields = [self._fields[index] for index in kept]
        self._keys = [self._keys[index] for index in kept]
