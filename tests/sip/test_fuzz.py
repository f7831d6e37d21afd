"""Property tests of :func:`intercom.sip.parse_message` on hostile input.

Whatever the input, the parser either returns a message or raises :class:`intercom.sip.ParseError`
(some subclass of it); any other exception is a bug. A message that parses serialises with
``bytes()`` and parses again to the same start line, headers and body, unless serialising pushed
it past a limit (it adds a Content-Length line and CRs). Its typed views (From, To, CSeq, Via,
Contact) raise nothing but ParseError, and each value they give parses back from its ``str()``.

Generated messages per run: 2,000 arbitrary byte strings + 2,000 arbitrary text strings (valid
Unicode, as a WebSocket text frame carries) + 6,000 mutations of the browser client's vectors in
``shared/vectors`` (byte flips and bit flips, deletions, insertions, duplicated, dropped and swapped
lines, truncation, inserted and rewritten header lines, line-ending changes, folding, huge values
and bodies, Content-Length rewrites, request lines respaced, re-versioned or bracketed) = **10,000** in total.

A refused message whose start line begins with a method and a space always carries the request as
far as it was read, with the status to answer it with (400, or 505 for another SIP version).
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intercom.sip import (
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    Address,
    CSeq,
    MessageTooLarge,
    ParseError,
    Request,
    Response,
    TooManyHeaders,
    Via,
    make_response,
    parse_message,
)
from intercom.sip.headers import normalise_name

VECTORS = Path(__file__).parents[3] / "shared" / "vectors"
VECTOR_BYTES = [path.read_bytes() for path in sorted(VECTORS.glob("*.sip"))]

BYTES_EXAMPLES = 2_000
TEXT_EXAMPLES = 2_000
MUTATION_EXAMPLES = 6_000
assert BYTES_EXAMPLES + TEXT_EXAMPLES + MUTATION_EXAMPLES >= 10_000

FUZZ_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
}

HEADER_NAMES = [
    "Via",
    "v",
    "V",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "cseq",
    "Content-Length",
    "l",
    "Contact",
    "m",
    "Content-Type",
    "c",
    "Supported",
    "k",
    "Session-Expires",
    "x",
    "Record-Route",
    "Route",
    "Max-Forwards",
    "X-Fuzz",
    "Bad Name",
    "",
    " Via",
    "Via\t",
    "Ä",
]

VALUE_PIECES = [
    "SIP/2.0/WSS h.invalid;branch=z9hG4bK1",
    "SIP/2.0/WSS [2001:db8::1]:8443;rport;branch=z9hG4bKx",
    "<sip:a@b>;tag=1",
    "sip:user:pw@host:5060;transport=ws?x=y",
    '"Al \\"ice\\"; x, y" <sip:alice@[::1]:5061;lr>;tag=q',
    "<sip:c@d;x=1,2>;expires=60, *",
    "1 INVITE",
    "2147483648 BYE",
    "0",
    "-1",
    "99999999999999999999",
    "²",
    "٣",
    ",",
    ";",
    "=",
    '"',
    "\\",
    "<",
    ">",
    "@",
    ":",
    "[",
    "]",
    "?",
    "sip:",
    "sips:",
    "tel:+31",
    "\r",
    "\n",
    "\r\n",
    "\r\n ",
    " ",
    "\t",
    "\x00",
    "\x0b",
    "\x85",
    "\u2028",
    "é",
    "\U0001f600",
]

header_values = st.lists(st.sampled_from(VALUE_PIECES) | st.text(max_size=12), max_size=6).map("".join)
header_lines = st.builds(
    lambda name, separator, value: f"{name}{separator}{value}".encode(),
    st.sampled_from(HEADER_NAMES),
    st.sampled_from([": ", ":", " : ", " ", ""]),
    header_values,
)


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


@st.composite
def mutation(draw: st.DrawFn, data: bytes) -> bytes:
    """One random change to ``data``."""
    size = len(data)
    at = draw(st.integers(0, size))
    kind = draw(st.integers(0, 16))
    if kind == 0 and size:  # replace a byte
        at = min(at, size - 1)
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    if kind == 1 and size:  # flip one bit
        at = min(at, size - 1)
        return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    if kind == 2:  # delete a run of bytes
        return data[:at] + data[at + draw(st.integers(1, 64)) :]
    if kind == 3:  # insert random bytes
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    if kind == 4:  # truncate
        return data[:at]
    lines = _lines(data)
    index = draw(st.integers(0, len(lines) - 1))
    if kind == 5:  # duplicate a line
        lines.insert(index, lines[index])
    elif kind == 6:  # drop a line
        del lines[index]
    elif kind == 7:  # swap two lines
        other = draw(st.integers(0, len(lines) - 1))
        lines[index], lines[other] = lines[other], lines[index]
    elif kind == 8:  # insert a header line
        lines.insert(max(index, 1), draw(header_lines))
    elif kind == 9:  # rewrite the value of a line, keeping its name
        name, _, _ = lines[index].partition(b":")
        lines[index] = name + b": " + draw(header_values).encode()
    elif kind == 10:  # change line ends, everywhere or in one place
        new = draw(st.sampled_from([b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n\r\n", b"", b" "]))
        if draw(st.booleans()):
            return data.replace(b"\r\n", new)
        return b"\r\n".join(lines[: index + 1]) + new + b"\r\n".join(lines[index + 1 :])
    elif kind == 11:  # fold a line, or turn a header into a continuation line
        cut = draw(st.integers(0, len(lines[index])))
        lines[index] = lines[index][:cut] + draw(st.sampled_from([b"\r\n ", b"\r\n\t", b"\n "])) + lines[index][cut:]
    elif kind == 12:  # a huge header value, near or over the size limit
        length = draw(st.sampled_from([1_000, 8_000, 60_000, MAX_MESSAGE_SIZE - size, MAX_MESSAGE_SIZE, 70_000]))
        filler = draw(st.sampled_from([b"a", b",", b";", b" ", b'"', b"<", b"\xff"]))
        lines.insert(max(index, 1), b"X-Huge: " + filler * max(length, 0))
    elif kind == 13:  # many header lines
        count = draw(st.sampled_from([50, 94, 95, 100, 101, 150]))
        lines[max(index, 1) : max(index, 1)] = [b"X-Many: %d" % n for n in range(count)]
    elif kind == 14:  # a huge body
        return data + draw(st.sampled_from([b"b", b"\r\n", b"\x00"])) * draw(st.sampled_from([10, 60_000, 70_000]))
    elif kind == 15:  # mangle the request line: spacing, version, angle brackets
        words = lines[0].split(b" ")
        at = draw(st.integers(0, len(words) - 1))
        new = draw(st.sampled_from([b"", b" ", b"\t", b"SIP/7.0", b"sip/2.0", b"<" + words[at] + b">", b" ;x"]))
        words[at] = draw(st.sampled_from([words[at] + new, new + words[at], new]))
        lines[0] = b" ".join(words)
    else:  # rewrite Content-Length
        value = draw(st.sampled_from(["0", "1", "00", "-1", "+1", "1.0", "", "x", "²", "99999999999", str(size)]))
        lines = [b"Content-Length: " + value.encode() if line.startswith(b"Content-Length") else line for line in lines]
    return b"\r\n".join(lines)


@st.composite
def mutated_vectors(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(VECTOR_BYTES))
    for _ in range(draw(st.integers(1, 4))):
        data = draw(mutation(data))
    return data


def _without_content_length(message: Request | Response) -> list[tuple[str, str]]:
    return [(name, value) for name, value in message.headers if normalise_name(name) != "content-length"]


_METHOD_AND_SPACE = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+ ")


def starts_with_method(data: bytes | str) -> bool:
    """Whether the start line begins with a method and a space: then a refusal can be answered."""
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else data
    return _METHOD_AND_SPACE.match(raw.lstrip(b"\r\n")) is not None


def check(data: bytes | str) -> None:
    """Parse, and if that works, serialise and parse again."""
    try:
        message = parse_message(data)
    except ParseError as exc:
        # Every refusal of a message that starts with a method carries the request, to answer it with.
        assert (exc.request is not None) == starts_with_method(data), exc
        if exc.request is not None:
            assert isinstance(exc.request, Request)
            assert exc.status_code in (400, 505)
            bytes(make_response(exc.request, exc.status_code, to_tag="t"))
        return
    serialised = bytes(message)
    over = None
    if len(serialised) > MAX_MESSAGE_SIZE:
        over = MessageTooLarge
    elif len(_without_content_length(message)) + 1 > MAX_HEADERS:
        over = TooManyHeaders
    if over is not None:
        # Serialising adds a Content-Length line and CRs: a message at a limit may end up past it.
        try:
            parse_message(serialised)
        except over:
            return
        raise AssertionError(f"a serialised message past a limit parsed, expected {over.__name__}")
    again = parse_message(serialised)
    assert type(again) is type(message)
    assert again.start_line() == message.start_line()
    assert _without_content_length(again) == _without_content_length(message)
    assert again.headers.get("Content-Length") == str(len(message.body))
    assert again.body == message.body
    assert bytes(again) == serialised
    check_typed_views(message)


def check_typed_views(message: Request | Response) -> None:
    """The typed views of a parsed message raise nothing but ParseError, and what they give serialises back.

    A dialog writes From, To and Contact back into the requests it builds, so ``str()`` of a parsed
    address must parse to the same address.
    """
    values: list[Address | Via | CSeq] = []
    for view in ("from_", "to", "cseq", "top_via", "vias", "contacts"):
        try:
            value = getattr(message, view)
        except ParseError:
            assert view in ("vias", "contacts")  # the others were checked by parse_message
            continue
        values.extend(value if isinstance(value, list) else [value])
    for value in values:
        assert type(value).parse(str(value)) == value, str(value)


def test_vectors_satisfy_the_property() -> None:
    assert len(VECTOR_BYTES) == 18
    for data in VECTOR_BYTES:
        check(data)
        parse_message(data)  # and they parse


@settings(max_examples=BYTES_EXAMPLES, **FUZZ_SETTINGS)
@given(st.binary(max_size=2_048) | st.binary(max_size=64).map(lambda tail: b"INVITE sip:a@b SIP/2.0\r\n" + tail))
def test_parse_arbitrary_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=TEXT_EXAMPLES, **FUZZ_SETTINGS)
@given(st.text(max_size=1_024) | st.text(max_size=64).map(lambda tail: "SIP/2.0 200 OK\r\n" + tail))
def test_parse_arbitrary_text(text: str) -> None:
    check(text)


@settings(max_examples=MUTATION_EXAMPLES, **FUZZ_SETTINGS)
@given(mutated_vectors())
def test_parse_mutated_vectors(data: bytes) -> None:
    check(data)
