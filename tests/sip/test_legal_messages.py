"""Property test: unusual but legal SIP messages parse, and serialise to messages that parse equal.

The strategies below build messages RFC 3261 allows but clients rarely send: compact and oddly
cased header names, folded lines, spaces and tabs around ``:``, ``;``, ``,``, ``=`` and ``/``,
escaped URI characters, ``?`` and ``;`` in user parts, parameters without values, IPv6 hosts,
quoted display names with escapes, quoted parameter values, several Vias and Contacts, empty
bodies, Content-Length absent or with leading zeros, CRLFs before the start line, a lower-case
SIP version. Each must be accepted (a legal message refused is a bug too), must read as what was
built (method, URI, display name, body) and must come back equal from its own serialisation.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intercom.sip import Request, Response, SipUri, parse_message
from intercom.sip.headers import normalise_name

EXAMPLES = 100
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALPHANUM = string.ascii_letters + string.digits
TOKEN_CHARS = ALPHANUM + "-.!%*_+`'~"
UNRESERVED = ALPHANUM + "-_.!~*'()"
USER_CHARS = UNRESERVED + "&=+$,;?/"  # RFC 3261 25.1: unreserved / user-unreserved
PASSWORD_CHARS = UNRESERVED + "&=+$,"
PARAM_CHARS = UNRESERVED + "[]/:&+$"
HEADER_CHARS = UNRESERVED + "[]/?:+$"
SWS_MARK = "\x00"  # where the grammar allows linear whitespace; drawn afresh for each place


def text_of(allowed: str, min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[str]:
    """Characters from ``allowed`` with up to two %HH escapes (of any byte) in the middle."""
    return st.builds(
        lambda text, escapes: (
            text[: len(text) // 2] + "".join(f"%{byte:02X}" for byte in escapes) + text[len(text) // 2 :]
        ),
        st.text(allowed, min_size=min_size, max_size=max_size),
        st.lists(st.integers(0, 255), max_size=2),
    )


# Strategies are built once here: building them inside a draw costs more than the draw.
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=8)
labels = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=8).map(
    lambda label: label.strip("-") or "x"
)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda address: f"[{address}]")
hosts = hostnames | ipv4 | ipv6
ports = st.none() | st.integers(1, 65535)
users = st.none() | text_of(USER_CHARS)
passwords = st.none() | text_of(PASSWORD_CHARS)
uri_params = st.lists(st.tuples(tokens, st.none() | text_of(PARAM_CHARS)), max_size=3)
uri_headers = st.none() | st.lists(st.tuples(text_of(HEADER_CHARS), text_of(HEADER_CHARS, 0)), min_size=1, max_size=2)
utf8_text = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12)
quoted_pairs = st.integers(0, 2**12 - 1)  # which letters to escape needlessly, a bit each
WHITESPACE = ["", "", " ", "  ", "\t", "\r\n ", "\r\n\t", " \r\n  "]  # SWS, folded or not


def quote(value: str, escape_letters: int) -> str:
    """``value`` as a quoted-string: '"' and '\\' escaped, and some letters too (a quoted-pair may escape any)."""
    pieces = []
    for index, char in enumerate(value):
        needless = escape_letters >> index & 1 and char.isascii() and char.isalpha()
        pieces.append("\\" + char if char in '"\\' or needless else char)
    return '"' + "".join(pieces) + '"'


quoted_strings = st.builds(lambda value, escapes: (quote(value, escapes), value), utf8_text, quoted_pairs)


def param_text(pairs: list[tuple[str, str | None]]) -> str:
    """``;name=value`` and ``;name`` parameters, with room for whitespace around ';' and '='."""
    return "".join(
        f"{SWS_MARK};{SWS_MARK}{name}" + ("" if value is None else f"{SWS_MARK}={SWS_MARK}{value}")
        for name, value in pairs
    )


address_params = st.lists(st.tuples(tokens, st.none() | tokens | quoted_strings.map(lambda pair: pair[0])), max_size=3)
via_params = st.lists(
    st.tuples(tokens, st.none() | tokens | ipv4 | ipv6.map(lambda host: host.strip("[]"))), max_size=2
)
address_forms = st.sampled_from(["addr-spec", "bracketed", "token name", "quoted name"])
display_tokens = st.lists(tokens, min_size=1, max_size=3)
transports = st.sampled_from(["WSS", "ws", "UDP", "TCP", "TLS"])


@dataclass
class Uri:
    text: str
    user: str | None
    host: str
    port: int | None


@st.composite
def sip_uris(draw: st.DrawFn) -> Uri:
    scheme = draw(st.sampled_from(["sip", "sips", "SIP", "Sips"]))
    user = draw(users)
    password = draw(passwords) if user else None
    host, port = draw(hosts), draw(ports)
    text = f"{scheme}:"
    if user:
        text += user + (f":{password}" if password else "") + "@"
    text += host + (f":{port}" if port else "")
    text += "".join(f";{name}" + (f"={value}" if value else "") for name, value in draw(uri_params))
    headers = draw(uri_headers)
    if headers:
        text += "?" + "&".join(f"{name}={value}" for name, value in headers)
    return Uri(text, user, host, port)


uris = sip_uris()


@st.composite
def addresses(draw: st.DrawFn, tag: bool) -> tuple[str, str | None]:
    """A From/To/Contact value and the display name it carries."""
    uri = draw(uris)
    header_params = param_text(draw(address_params))
    if tag:
        header_params += f";tag={draw(tokens)}"
    form = draw(address_forms)
    # RFC 3261 20.10: a URI with ',', '?' or ';' must be in angle brackets.
    if form == "addr-spec" and not any(char in uri.text for char in ",?;") and '"' not in header_params:
        return uri.text + header_params, None
    if form == "token name":
        words = draw(display_tokens)
        return f"{' '.join(words)}{SWS_MARK}<{uri.text}>{header_params}", " ".join(words)
    if form == "quoted name":
        quoted, name = draw(quoted_strings)
        return f"{quoted}{SWS_MARK}<{uri.text}>{header_params}", name
    return f"<{uri.text}>{header_params}", None


tagged_addresses = addresses(tag=True)
untagged_addresses = addresses(tag=False)


@st.composite
def vias(draw: st.DrawFn) -> str:
    protocol = SWS_MARK.join(["SIP", "/", "2.0", "/", draw(transports)])
    port = draw(ports)
    sent_by = draw(hosts) + (f"{SWS_MARK}:{SWS_MARK}{port}" if port else "")
    return f"{protocol} {sent_by};branch=z9hG4bK{draw(tokens)}{param_text(draw(via_params))}"


def name(*spellings: str) -> st.SearchStrategy[str]:
    """One of a header's spellings (long or compact), each letter in either case."""
    return st.builds(
        lambda spelling, upper: "".join(
            char.upper() if upper >> index & 1 else char.lower() for index, char in enumerate(spelling)
        ),
        st.sampled_from(spellings),
        st.integers(0, 2**14 - 1),
    )


NAMES = {
    header: name(*spellings)
    for header, *spellings in [
        ("Via", "Via", "v"),
        ("From", "From", "f"),
        ("To", "To", "t"),
        ("Call-ID", "Call-ID", "i"),
        ("CSeq", "CSeq"),
        ("Contact", "Contact", "m"),
        ("Max-Forwards", "Max-Forwards"),
        ("Supported", "Supported", "k"),
        ("Content-Type", "Content-Type", "c"),
        ("Content-Length", "Content-Length", "l"),
    ]
}
via_lines = st.lists(st.lists(vias(), min_size=1, max_size=3), min_size=1, max_size=2)
contact_lines = st.lists(st.lists(untagged_addresses, min_size=1, max_size=2), max_size=2)
call_ids = st.text(ALPHANUM + "-.!%*_+`'~()<>:\\\"/[]?{}", min_size=1, max_size=12)  # RFC 3261 25.1 word
extension_headers = st.lists(st.tuples(tokens.map("X-".__add__), utf8_text.map(str.strip)), max_size=3)
methods = st.sampled_from(["INVITE", "OPTIONS", "REGISTER", "MESSAGE", "INFO", "BYE"]) | tokens
versions = st.sampled_from(["SIP/2.0", "sip/2.0", "Sip/2.0"])  # RFC 3261 7.1: case-insensitive
COLONS = [": ", ":", " : ", "\t:\t", ":\r\n "]
bodies = st.binary(max_size=40) | st.just(b"")


@dataclass
class Built:
    raw: bytes
    method: str | None
    uri: Uri | None
    display_name: str | None
    body: bytes
    header_count: int


@st.composite
def messages(draw: st.DrawFn) -> Built:
    is_request = draw(st.booleans())
    method = draw(methods)
    uri = draw(uris) if is_request else None
    version = draw(versions)
    if is_request:
        start = f"{method} {uri.text} {version}"  # type: ignore[union-attr]
    else:
        start = f"{version} {draw(st.integers(100, 699))} {draw(utf8_text)}"
    from_value, display_name = draw(tagged_addresses)
    to_value, _ = draw(tagged_addresses if draw(st.booleans()) else untagged_addresses)
    comma = f"{SWS_MARK},{SWS_MARK}"
    fields = [(draw(NAMES["Via"]), comma.join(line)) for line in draw(via_lines)]
    fields += [
        (draw(NAMES["From"]), from_value),
        (draw(NAMES["To"]), to_value),
        (draw(NAMES["Call-ID"]), draw(call_ids)),
        (draw(NAMES["CSeq"]), f"{draw(st.integers(0, 2**31 - 1))}{SWS_MARK} {method}"),
    ]
    fields += [(draw(NAMES["Contact"]), comma.join(value for value, _ in line)) for line in draw(contact_lines)]
    if draw(st.booleans()):
        fields.append((draw(NAMES["Max-Forwards"]), str(draw(st.integers(0, 255)))))
    if draw(st.booleans()):
        fields.append((draw(NAMES["Supported"]), comma.join(draw(st.lists(tokens, max_size=3)))))
    fields += draw(extension_headers)
    body = draw(bodies)
    if body or draw(st.booleans()):
        fields.append((draw(NAMES["Content-Type"]), f"application/x-{draw(tokens)}"))
    if draw(st.booleans()) or not body:
        fields.append((draw(NAMES["Content-Length"]), "0" * draw(st.integers(0, 2)) + str(len(body))))
    fields = draw(st.permutations(fields))

    text = draw(st.sampled_from(["", "\r\n", "\r\n\r\n"])) + start + "\r\n"  # RFC 3261 7.5: CRLFs first
    # The whitespace at each place where the grammar allows it comes from one seed: a draw for each
    # would make a message take hundreds of draws, and shrinking whitespace tells little.
    spaces = random.Random(draw(st.integers(0, 2**32)))
    for header, value in fields:
        first, *rest = value.split(SWS_MARK)
        value = first + "".join(spaces.choice(WHITESPACE) + piece for piece in rest)
        text += f"{header}{spaces.choice(COLONS)}{value}\r\n"
    raw = (text + "\r\n").encode() + body
    return Built(raw, method if is_request else None, uri, display_name, body, len(fields))


def without_content_length(message: Request | Response) -> list[tuple[str, str]]:
    return [(name, value) for name, value in message.headers if normalise_name(name) != "content-length"]


@SETTINGS
@given(messages())
def test_legal_messages_parse_and_round_trip(built: Built) -> None:
    message = parse_message(built.raw)
    assert len(message.headers) == built.header_count
    assert message.body == built.body
    assert message.from_.display_name == built.display_name
    if built.method is None:
        assert isinstance(message, Response)
    else:
        assert isinstance(message, Request)
        assert message.method == built.method
        assert isinstance(message.uri, SipUri) and built.uri is not None
        assert (message.uri.user, message.uri.host, message.uri.port) == (
            built.uri.user,
            built.uri.host,
            built.uri.port,
        )

    again = parse_message(bytes(message))
    assert type(again) is type(message)
    assert again.start_line() == message.start_line()
    assert without_content_length(again) == without_content_length(message)
    assert again.body == message.body
    if isinstance(message, Request):
        assert again.uri == message.uri  # type: ignore[union-attr]
    for view in ("from_", "to", "cseq", "vias", "contacts", "call_id"):
        assert getattr(again, view) == getattr(message, view), view
    assert bytes(again) == bytes(message)
