"""Cutting the SIP/TCP stream from a SIP proxy into messages (RFC 3261 section 18.3)."""

from __future__ import annotations

import pytest

from intercom.sip import parse_message
from intercom.transport.addresses import split_host_port
from intercom.transport.stream import FramingError, StreamFramer

BODY = b"v=0\r\n"
MESSAGE = (
    b"OPTIONS sip:hub@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
    b"From: <sip:edge@edge.invalid>;tag=1\r\nTo: <sip:hub@127.0.0.1>\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\n" + BODY
)


def test_a_message_split_across_reads_comes_out_whole_once() -> None:
    framer = StreamFramer()
    pieces = [MESSAGE[:10], MESSAGE[10:-3], MESSAGE[-3:]]

    out = [framer.feed(piece) for piece in pieces]

    assert out == [[], [], [MESSAGE]]
    assert parse_message(out[2][0]).body == BODY


def test_two_messages_in_one_read_and_keepalives_between() -> None:
    framer = StreamFramer()

    assert framer.feed(b"\r\n\r\n" + MESSAGE + b"\r\n" + MESSAGE.replace(b"Content-Length: 5", b"l: 5")) == [
        MESSAGE,
        MESSAGE.replace(b"Content-Length: 5", b"l: 5"),
    ]
    assert framer.feed(b"\r\n\r\n") == []


def test_the_body_is_exactly_content_length_bytes() -> None:
    framer = StreamFramer()
    short = MESSAGE.replace(b"Content-Length: 5", b"Content-Length: 3")

    [message] = framer.feed(short)

    assert message.endswith(b"\r\n\r\nv=0")
    assert framer.feed(b"") == []  # "\r\n" left over: a keep-alive, nothing else


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"OPTIONS sip:hub SIP/2.0\r\nVia: x\r\n\r\n", "without Content-Length"),
        (b"OPTIONS sip:hub SIP/2.0\r\nContent-Length: 100000\r\n\r\n", "over the limit of 1000"),
        (b"OPTIONS sip:hub SIP/2.0\r\nContent-Length: -1\r\n\r\n", "unreadable Content-Length"),
        (b"OPTIONS sip:hub SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n", "unreadable Content-Length"),
        (b"\x16\x03\x01" + bytes(range(256)) * 4, "no end of headers within 1000 bytes"),  # TLS at a plain port
    ],
)
def test_what_cannot_be_framed_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(FramingError, match=why):
        StreamFramer(max_size=1000).feed(data)


def test_the_buffer_never_holds_more_than_a_message() -> None:
    framer = StreamFramer(max_size=1000)
    framer.feed(b"OPTIONS sip:hub SIP/2.0\r\n")
    with pytest.raises(FramingError):
        for _ in range(100):
            framer.feed(b"X-Padding: " + b"a" * 50 + b"\r\n")
    assert len(framer._buffer) <= 1000 + 100


def test_garbage_with_a_length_reaches_the_parser_which_answers_it() -> None:
    framer = StreamFramer()
    [garbage] = framer.feed(b"HELLO\r\nContent-Length: 0\r\n\r\n")
    assert garbage == b"HELLO\r\nContent-Length: 0\r\n\r\n"  # SipConnection drops or answers 400, as on a WebSocket


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:5070", ("127.0.0.1", 5070)), ("[::1]:5070", ("::1", 5070)), ("0.0.0.0:0", ("0.0.0.0", 0))],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:http", "::1", "127.0.0.1:70000"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(text)


def test_content_length_is_found_on_any_line_of_the_head() -> None:
    moved = b"OPTIONS sip:hub SIP/2.0\r\ncontent-length:  5 \r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1\r\n\r\n"
    moved += BODY
    assert StreamFramer().feed(moved + MESSAGE) == [moved, MESSAGE]
