"""Parsing and serialising SIP messages: the browser client's vectors, header forms, URIs, limits, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from intercom.sip import (
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    Address,
    BadContentLength,
    BadHeader,
    BadStartLine,
    BadUri,
    CSeq,
    MessageTooLarge,
    MissingHeader,
    ParseError,
    Request,
    Response,
    SipError,
    SipUri,
    TooManyHeaders,
    UnsupportedVersion,
    Via,
    make_response,
    parse_message,
)

VECTORS = Path(__file__).parents[3] / "shared" / "vectors"
VECTOR_FILES = sorted(VECTORS.glob("*.sip"))

# The vectors listed in shared/vectors/README.md.
EXPECTED_VECTORS = {
    "ack.sip",
    "bye.sip",
    "info-dtmf.sip",
    "info-stats.sip",
    "invite-with-userdata.sip",
    "invite.sip",
    "message.sip",
    "register-first.sip",
    "register-refresh.sip",
    "register-unregister.sip",
    "response-100-invite.sip",
    "response-180-invite.sip",
    "response-200-bye.sip",
    "response-200-cancel.sip",
    "response-200-invite.sip",
    "response-480-invite.sip",
    "response-487-invite.sip",
    "update.sip",
}

VIA = "SIP/2.0/WSS ups08t1v9tsc.invalid;branch=z9hG4bK5347310"
BASE_HEADERS = [
    f"Via: {VIA}",
    "Max-Forwards: 69",
    "To: <sip:anonymous@127.0.0.1:8443>",
    "From: <sip:anonymous@127.0.0.1:8443>;tag=er75svn301",
    "Call-ID: tjjsegc4ss9osqhp6ior78",
    "CSeq: 1 OPTIONS",
]


def build(*lines: str, body: bytes = b"") -> bytes:
    """A message from its start line and header lines, CRLF-terminated, with ``body`` after the blank line."""
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def options(*extra: str, body: bytes = b"", headers: list[str] | None = None) -> bytes:
    """An OPTIONS request with the mandatory headers (or ``headers``) followed by ``extra`` lines."""
    return build(
        "OPTIONS sip:127.0.0.1:8443 SIP/2.0", *(BASE_HEADERS if headers is None else headers), *extra, body=body
    )


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def head_and_body(raw: bytes) -> tuple[list[str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode().split("\r\n"), body


# --- the vectors --------------------------------------------------------------------------------------------------


def test_all_vectors_are_present() -> None:
    assert {path.name for path in VECTOR_FILES} == EXPECTED_VECTORS


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda path: path.name)
def test_vector_parses(path: Path) -> None:
    raw = path.read_bytes()
    lines, body = head_and_body(raw)
    message = parse_message(raw)

    if path.name.startswith("response-"):
        assert isinstance(message, Response)
        code = int(path.name.split("-")[1])
        assert message.status_code == code
        assert message.start_line() == lines[0]
        assert message.cseq.method == path.name.split("-")[2].removesuffix(".sip").upper()
    else:
        assert isinstance(message, Request)
        method, uri, version = lines[0].split(" ")
        assert message.method == method == path.name.split("-")[0].removesuffix(".sip").upper()
        assert isinstance(message.uri, SipUri)
        assert str(message.uri) == uri
        assert version == "SIP/2.0"
        assert message.cseq.method == message.method

    # Every header line is kept, in order, with its name as sent.
    expected_fields = [tuple(line.split(": ", 1)) for line in lines[1:]]
    assert list(message.headers) == expected_fields
    assert int(message.headers.get("Content-Length") or "-1") == len(body)
    assert message.body == body
    assert message.top_via.transport == "WSS"
    assert message.top_via.branch is not None and message.top_via.branch.startswith("z9hG4bK")
    assert message.from_.tag
    assert message.call_id == message.headers.get("Call-ID")


@pytest.mark.parametrize("path", VECTOR_FILES, ids=lambda path: path.name)
def test_vector_round_trip(path: Path) -> None:
    raw = path.read_bytes()
    message = parse_message(raw)
    serialised = bytes(message)
    # The vectors put Content-Length last and use "Name: value", so serialising gives back the exact frame.
    assert serialised == raw
    again = parse_message(serialised)
    assert type(again) is type(message)
    assert again.headers == message.headers
    assert again.body == message.body
    assert again.start_line() == message.start_line()
    assert parse_message(message.text()).headers == message.headers


def test_vector_register_first_contact() -> None:
    message = parse_message(vector("register-first.sip"))
    assert isinstance(message, Request)
    assert message.uri == SipUri(host="127.0.0.1", port=8443)
    assert message.cseq == CSeq(1, "REGISTER")
    assert message.headers.get("Expires") == "60"
    assert message.headers.get("webrtc-token", "").startswith("eyJ")
    (contact,) = message.contacts
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.user == "2esjnui5"
    assert contact.uri.host == "lu88cps5llju.invalid"
    assert contact.uri.params == {"transport": "ws"}
    assert contact.params == {
        "+sip.ice": None,
        "reg-id": "1",
        "+sip.instance": '"<urn:uuid:d664fe8c-4845-4510-a1a4-f89202df24fa>"',
        "expires": "60",
    }
    assert message.to.tag is None
    assert message.from_.tag == "ummfdp3c07"
    assert message.headers.get_all("Allow") == [
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "UPDATE",
        "MESSAGE",
        "OPTIONS",
        "REFER",
        "INFO",
        "NOTIFY",
        "SUBSCRIBE",
    ]
    assert message.headers.get_all("Supported") == ["path", "gruu", "outbound"]


def test_vector_invite() -> None:
    message = parse_message(vector("invite.sip"))
    assert isinstance(message, Request)
    assert message.uri == SipUri(host="127.0.0.1", user="00000", port=8443)
    assert message.cseq == CSeq(3046, "INVITE")
    assert message.headers.get("Content-Type") == "application/sdp"
    assert message.body.startswith(b"v=0\r\no=- ")
    assert message.body.endswith(b"\r\n")
    assert len(message.body) == 1550
    (contact,) = message.contacts
    assert contact.uri == SipUri(host="setdn3a1sf12.invalid", user="meo2iuvm", params={"transport": "ws", "ob": None})
    assert message.top_via == Via("WSS", "setdn3a1sf12.invalid", None, {"branch": "z9hG4bK9291998"})
    assert "WebRTC-UserData" not in message.headers
    with_userdata = parse_message(vector("invite-with-userdata.sip"))
    assert with_userdata.headers.get("webrtc-userdata") == "Zm9vPWJhcg=="


def test_vector_response_200_invite() -> None:
    message = parse_message(vector("response-200-invite.sip"))
    assert isinstance(message, Response)
    assert (message.status_code, message.reason) == (200, "OK")
    assert message.is_success and not message.is_provisional
    assert message.from_.display_name == "Stub Caller accept"
    assert message.from_.uri == SipUri(host="127.0.0.1", user="+31000000000")
    assert message.to.tag == "tu4vh7ggcr"
    assert message.top_via.sent_by == "127.0.0.1:8443"
    assert message.headers.get("Session-Expires") == "90;refresher=uas"
    assert len(message.body) == 935


def test_vector_response_100_has_no_to_tag() -> None:
    message = parse_message(vector("response-100-invite.sip"))
    assert isinstance(message, Response)
    assert message.is_provisional and not message.is_success
    assert message.reason == "Trying"
    assert message.to.tag is None


def test_vector_ack_uri_params() -> None:
    message = parse_message(vector("ack.sip"))
    assert isinstance(message, Request)
    assert message.uri == SipUri(host="127.0.0.1", user="stub", port=8443, params={"transport": "ws"})
    assert message.cseq == CSeq(1293, "ACK")
    assert message.to.tag == "n08c7oi1"


def test_parse_accepts_text() -> None:
    raw = vector("info-dtmf.sip")
    from_text = parse_message(raw.decode())
    from_bytes = parse_message(raw)
    assert from_text.headers == from_bytes.headers
    assert from_text.body == from_bytes.body == b"Signal=1\r\nDuration=100"


# --- round trips of hand-built messages -------------------------------------------------------------------------


def assert_round_trip(message: Request | Response) -> Request | Response:
    again = parse_message(bytes(message))
    assert type(again) is type(message)
    assert again.start_line() == message.start_line()
    strip = [field for field in message.headers if field[0].lower() not in ("content-length", "l")]
    assert [field for field in again.headers if field[0].lower() != "content-length"] == strip
    assert again.headers.get("Content-Length") == str(len(message.body))
    assert again.body == message.body
    return again


def test_serialise_built_request() -> None:
    request = Request(method="MESSAGE", uri=SipUri(host="127.0.0.1", user="00000", port=8443))
    for line in BASE_HEADERS:
        name, value = line.split(": ", 1)
        request.headers.add(name, value)
    request.headers.set("CSeq", "7 MESSAGE")
    request.body = b'{"clientPostDialDelay":"68.100"}'
    raw = bytes(request)
    assert raw.startswith(b"MESSAGE sip:00000@127.0.0.1:8443 SIP/2.0\r\nVia: ")
    assert raw.endswith(b"\r\nContent-Length: 32\r\n\r\n" + request.body)
    assert_round_trip(request)


def test_serialise_replaces_stale_content_length() -> None:
    message = parse_message(options("Content-Length: 3", body=b"abc"))
    message.body = b"abcdef"
    raw = bytes(message)
    assert raw.count(b"Content-Length") == 1
    assert parse_message(raw).body == b"abcdef"


# --- compact forms, multi-valued headers, folding ----------------------------------------------------------------


def test_compact_header_forms() -> None:
    raw = build(
        "INVITE sip:00000@127.0.0.1:8443 SIP/2.0",
        f"v: {VIA}",
        "f: <sip:anonymous@127.0.0.1:8443>;tag=ogjhmci1qn",
        "t: <sip:00000@127.0.0.1:8443>",
        "i: fvt60d2vcaitubtncin8",
        "CSeq: 2478 INVITE",
        "m: <sip:25nccsjc@nmqm420g46cq.invalid;transport=ws;ob>",
        "c: application/sdp",
        "k: timer,ice",
        "x: 90",
        "l: 4",
        body=b"v=0\r\nextra",
    )
    message = parse_message(raw)
    assert message.top_via.branch == "z9hG4bK5347310"
    assert message.from_.tag == "ogjhmci1qn"
    assert message.to.uri == SipUri(host="127.0.0.1", user="00000", port=8443)
    assert message.call_id == "fvt60d2vcaitubtncin8"
    assert message.contacts[0].uri.user == "25nccsjc"
    assert message.headers.get("Content-Type") == "application/sdp"
    assert message.headers.get_all("Supported") == ["timer", "ice"]
    assert message.headers.get("Session-Expires") == "90"
    assert message.headers.get("Content-Length") == "4"
    assert message.body == b"v=0\r"  # l: 4 counts bytes
    # Upper-case compact names and long-name lookups of compact lines are the same header.
    assert parse_message(raw.replace(b"\r\ni: ", b"\r\nI: ")).call_id == "fvt60d2vcaitubtncin8"
    assert "call-id" in message.headers and "I" in message.headers
    again = assert_round_trip(message)
    assert again.headers.get("i") == "fvt60d2vcaitubtncin8"
    assert [name for name, _ in again.headers][:3] == ["v", "f", "t"]  # names are written back as sent


def test_multiple_via_lines_and_comma_separated_vias() -> None:
    raw = options(
        headers=[
            "Via: SIP/2.0/WSS first.invalid;branch=z9hG4bKone, SIP/2.0/WSS second.invalid:8443;branch=z9hG4bKtwo",
            "v: SIP/2.0/UDP [2001:db8::7]:5060;branch=z9hG4bKthree;rport;received=192.0.2.1",
            *BASE_HEADERS[1:],
        ]
    )
    message = parse_message(raw)
    assert [(via.host, via.port, via.branch) for via in message.vias] == [
        ("first.invalid", None, "z9hG4bKone"),
        ("second.invalid", 8443, "z9hG4bKtwo"),
        ("[2001:db8::7]", 5060, "z9hG4bKthree"),
    ]
    assert message.vias[2].transport == "UDP"
    assert message.vias[2].params == {"branch": "z9hG4bKthree", "rport": None, "received": "192.0.2.1"}
    assert message.top_via.host == "first.invalid"
    assert message.headers.get("Via") == raw.decode().split("\r\n")[1].removeprefix("Via: ")
    assert len(assert_round_trip(message).vias) == 3


def test_contact_list_with_commas_inside_quotes_and_angle_brackets() -> None:
    raw = options(
        'Contact: "Doe, John" <sip:john@a.invalid;transport=ws>;expires=60, <sip:b@b.invalid;x=1,2>;q=0.7',
        'Contact: "a > b, c" <sip:c@c.invalid>, sip:d@d.invalid;q=0.5',
    )
    message = parse_message(raw)
    contacts = message.contacts
    assert [c.display_name for c in contacts] == ["Doe, John", None, "a > b, c", None]
    assert [str(c.uri) for c in contacts] == [
        "sip:john@a.invalid;transport=ws",
        "sip:b@b.invalid;x=1,2",
        "sip:c@c.invalid",
        "sip:d@d.invalid",
    ]
    assert [c.params for c in contacts] == [{"expires": "60"}, {"q": "0.7"}, {}, {"q": "0.5"}]
    assert message.headers.get_all("Contact")[1] == "<sip:b@b.invalid;x=1,2>;q=0.7"


def test_contact_star_is_not_an_address() -> None:
    message = parse_message(options("Contact: *", "Expires: 0"))
    assert message.contacts == []


def test_header_folding() -> None:
    raw = options(
        "Subject: first",
        "  second",
        "\tthird",
        "Via: SIP/2.0/WSS b.invalid;branch=z9hG4bKb,",
        " SIP/2.0/WSS c.invalid;branch=z9hG4bKc",
        "X-After: kept",
    )
    message = parse_message(raw)
    assert message.headers.get("Subject") == "first second third"
    assert [via.host for via in message.vias] == ["ups08t1v9tsc.invalid", "b.invalid", "c.invalid"]
    assert message.headers.get("X-After") == "kept"
    again = assert_round_trip(message)
    assert b"first second third\r\n" in bytes(again)


def test_bare_lf_line_ends_are_accepted() -> None:
    raw = options("Content-Type: text/plain", body=b"hello").replace(b"\r\n", b"\n")
    message = parse_message(raw)
    assert message.call_id == "tjjsegc4ss9osqhp6ior78"
    assert message.headers.get("Content-Type") == "text/plain"
    assert message.body == b"hello"


def test_leading_crlf_before_start_line_is_ignored() -> None:
    message = parse_message(b"\r\n\r\n" + options())
    assert isinstance(message, Request)
    assert message.method == "OPTIONS"


def test_header_names_are_case_insensitive_and_values_trimmed() -> None:
    message = parse_message(options("X-Custom  :   spaced value  "))
    assert message.headers.get("x-custom") == "spaced value"
    assert message.headers.get("X-CUSTOM") == "spaced value"
    assert parse_message(options("call-ID: other", headers=BASE_HEADERS[:4] + BASE_HEADERS[5:])).call_id == "other"


# --- name-addr and URIs ------------------------------------------------------------------------------------------


def test_name_addr_with_escaped_quotes_semicolon_and_comma() -> None:
    text = r'"Alice \"Al\" O\\Neil; Esq., PhD" <sip:alice@example.com;transport=ws>;tag=abc;x-y'
    address = Address.parse(text)
    assert address.display_name == 'Alice "Al" O\\Neil; Esq., PhD'
    assert address.uri == SipUri(host="example.com", user="alice", params={"transport": "ws"})
    assert address.tag == "abc"
    assert address.params == {"tag": "abc", "x-y": None}
    assert str(address) == text
    assert Address.parse(str(address)) == address


def test_name_addr_in_message_from_header() -> None:
    raw = options(
        headers=[
            BASE_HEADERS[0],
            "To: <sip:anonymous@127.0.0.1:8443>",
            r'From: "Caller \"Q\"; one, two" <sip:+31000000000@127.0.0.1>;tag=5v0p6yq2',
            *BASE_HEADERS[4:],
        ]
    )
    message = parse_message(raw)
    assert message.from_.display_name == 'Caller "Q"; one, two'
    assert message.from_.tag == "5v0p6yq2"
    assert message.from_.uri == SipUri(host="127.0.0.1", user="+31000000000")
    assert_round_trip(message)


def test_name_addr_display_name_containing_angle_brackets() -> None:
    # A quoted-string may contain '<' and '>' (RFC 3261 25.1); the URI is the one in the real angle brackets.
    address = Address.parse('"Front <door> bell" <sip:door@hub.invalid>;tag=1')
    assert address.display_name == "Front <door> bell"
    assert address.uri == SipUri(host="hub.invalid", user="door")
    assert address.tag == "1"


def test_name_addr_forms() -> None:
    unquoted = Address.parse("Bob <sip:bob@example.com>")
    assert unquoted.display_name == "Bob"
    assert unquoted.params == {}
    # addr-spec form: the parameters after the URI are header parameters, not URI parameters.
    bare = Address.parse("sip:bob@example.com;tag=xyz")
    assert bare.display_name is None
    assert bare.uri == SipUri(host="example.com", user="bob")
    assert bare.tag == "xyz"
    # Other schemes stay text.
    tel = Address.parse("<tel:+31000000000>;tag=1")
    assert tel.uri == "tel:+31000000000"
    assert tel.tag == "1"
    assert str(Address(SipUri(host="h"), "x", {"tag": "t"})) == '"x" <sip:h>;tag=t'


@pytest.mark.parametrize(
    "text",
    [
        ">",
        "sip:a>b@host;tag=1",
        "sip:a@host?x=>;tag=1",
        "tel:+31>;tag=1",
        "1 INVITE",
        "sip:host;x=a>b",
        "<urn:service:sos>;tag=1",
        '"" <sip:a@b>',
        r'"back\\slash\\" <sip:a@b>',
        'Bo"b <sip:a@b>',
    ],
)
def test_accepted_address_serialises_back(text: str) -> None:
    # A dialog writes parsed From/To/Contact values back with str(): an address the parser accepts
    # must come back the same from its own serialisation (or be rejected in the first place).
    try:
        address = Address.parse(text)
    except ParseError:
        return
    assert Address.parse(str(address)) == address


@pytest.mark.parametrize(
    "text",
    [
        "<sip:bob@example.com",  # unclosed angle bracket
        '"unterminated <sip:bob@example.com>',
        "<sip:bob@example.com> garbage",
        "<>",
        "<sip:bob@example.com>;bad param=1",
    ],
)
def test_bad_name_addr(text: str) -> None:
    with pytest.raises(BadHeader):
        Address.parse(text)


def test_uri_with_user_password_port_params_and_headers() -> None:
    text = "sip:alice:secret@example.com:5061;transport=ws;lr?subject=hi&priority=urgent"
    uri = SipUri.parse(text)
    assert uri == SipUri(
        host="example.com",
        user="alice",
        port=5061,
        scheme="sip",
        password="secret",
        params={"transport": "ws", "lr": None},
        headers="subject=hi&priority=urgent",
    )
    assert uri.host_port == "example.com:5061"
    assert str(uri) == text


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sips:[2001:db8::1]:5061;maddr=x", "[2001:db8::1]", 5061),
        ("sip:alice@[::1]", "[::1]", None),
        ("sip:[fe80::1:2:3:4]:1", "[fe80::1:2:3:4]", 1),
        ("sip:[::ffff:192.0.2.1]:65535", "[::ffff:192.0.2.1]", 65535),
    ],
)
def test_uri_ipv6_hosts(text: str, host: str, port: int | None) -> None:
    uri = SipUri.parse(text)
    assert (uri.host, uri.port) == (host, port)
    assert str(uri) == text


def test_uri_case_rules() -> None:
    uri = SipUri.parse("SIP:Alice@Example.COM;Transport=WS")
    assert uri.scheme == "sip"
    assert (uri.user, uri.host) == ("Alice", "Example.COM")  # user and host kept as sent
    assert uri.params == {"transport": "WS"}  # parameter names are case-insensitive


@pytest.mark.parametrize(
    "text",
    [
        "http://example.com",
        "sip",
        "sip:",
        "sip:@example.com",
        "sip::pw@example.com",
        "sip:example.com:0",
        "sip:example.com:65536",
        "sip:example.com:123456",
        "sip:[2001:db8::1",
        "sip:exa mple.com",
        "sip:example.com;=x",
        "tel:+31000000000",
    ],
)
def test_bad_uri(text: str) -> None:
    with pytest.raises(BadUri):
        SipUri.parse(text)


def test_request_uri_ipv6_and_non_sip() -> None:
    message = parse_message(options().replace(b"sip:127.0.0.1:8443", b"sip:[2001:db8::1]:5060;transport=ws", 1))
    assert isinstance(message, Request)
    assert message.uri == SipUri(host="[2001:db8::1]", port=5060, params={"transport": "ws"})
    other = parse_message(options().replace(b"sip:127.0.0.1:8443", b"urn:service:sos", 1))
    assert isinstance(other, Request)
    assert other.uri == "urn:service:sos"
    assert_round_trip(other)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SIP/2.0/WSS host.invalid;branch=z9hG4bK1", Via("WSS", "host.invalid", None, {"branch": "z9hG4bK1"})),
        ("SIP / 2.0 / wss 10.0.0.1:5060 ;rport", Via("WSS", "10.0.0.1", 5060, {"rport": None})),
        ("sip/2.0/TCP [::1]:5070;Branch=z9hG4bKx", Via("TCP", "[::1]", 5070, {"branch": "z9hG4bKx"})),
    ],
)
def test_via_parse(text: str, expected: Via) -> None:
    assert Via.parse(text) == expected
    assert Via.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "SIP/2.0/WSS", "SIP/3.0/WSS host", "HTTP/1.1 host", "SIP/2.0/WSS ho st;x", "x"])
def test_bad_via(text: str) -> None:
    with pytest.raises(BadHeader):
        Via.parse(text)


@pytest.mark.parametrize("text", ["", "1", "INVITE", "x INVITE", "-1 INVITE", "2147483648 INVITE", "1 INV ITE"])
def test_bad_cseq(text: str) -> None:
    with pytest.raises(BadHeader):
        CSeq.parse(text)


def test_cseq_parse() -> None:
    assert CSeq.parse(" 2147483647   BYE ") == CSeq(2**31 - 1, "BYE")
    assert str(CSeq(5, "INFO")) == "5 INFO"


# --- Content-Length --------------------------------------------------------------------------------------------


def test_content_length_shorter_than_body_truncates() -> None:
    message = parse_message(options("Content-Length: 5", body=b"hello, world"))
    assert message.body == b"hello"
    assert bytes(message).endswith(b"Content-Length: 5\r\n\r\nhello")


def test_content_length_counts_bytes_not_characters() -> None:
    body = "héllo".encode()
    message = parse_message(options("Content-Length: 6", body=body).decode())
    assert message.body == body


def test_content_length_zero_with_trailing_bytes() -> None:
    assert parse_message(options("Content-Length: 0", body=b"junk")).body == b""


def test_content_length_absent_takes_the_rest() -> None:
    assert parse_message(options(body=b"whole body")).body == b"whole body"


def test_content_length_longer_than_body() -> None:
    with pytest.raises(BadContentLength) as info:
        parse_message(options("Content-Length: 13", body=b"hello, world"))
    assert info.value.request is not None
    assert info.value.request.method == "OPTIONS"
    assert info.value.request.call_id == "tjjsegc4ss9osqhp6ior78"


@pytest.mark.parametrize("value", ["abc", "12a", "-1", "+5", "5.0", "0x10", "", "1 2", "²", "①"])
def test_content_length_not_a_number(value: str) -> None:
    with pytest.raises(BadContentLength) as info:
        parse_message(options(f"Content-Length: {value}", body=b"hello"))
    assert info.value.request is not None
    assert info.value.request.method == "OPTIONS"


def test_content_length_not_a_number_in_response() -> None:
    raw = vector("response-200-bye.sip").replace(b"Content-Length: 0", b"Content-Length: zero")
    with pytest.raises(BadContentLength) as info:
        parse_message(raw)
    assert info.value.request is None


# --- limits ------------------------------------------------------------------------------------------------------


def sized_message(size: int) -> bytes:
    """An OPTIONS request of exactly ``size`` bytes, padded in its body."""
    empty = options("Content-Length: 00000", body=b"")
    body_size = size - len(empty)
    raw = options(f"Content-Length: {body_size:05d}", body=b"x" * body_size)
    assert len(raw) == size
    return raw


def test_message_of_exactly_max_size_parses() -> None:
    assert MAX_MESSAGE_SIZE == 64 * 1024
    message = parse_message(sized_message(MAX_MESSAGE_SIZE))
    assert len(message.body) > 65_000


def test_message_over_max_size() -> None:
    with pytest.raises(MessageTooLarge) as info:
        parse_message(sized_message(MAX_MESSAGE_SIZE + 1))
    assert isinstance(info.value, ParseError)
    assert info.value.request is not None
    assert info.value.request.method == "OPTIONS"


def test_message_over_max_size_counts_utf8_bytes_of_text() -> None:
    body = "é" * 33_000  # 33,000 characters, 66,000 bytes
    text = options(body=b"").decode() + body
    assert len(text) < MAX_MESSAGE_SIZE < len(text.encode())
    with pytest.raises(MessageTooLarge):
        parse_message(text)


def test_huge_response_is_too_large_without_request() -> None:
    raw = vector("response-200-bye.sip").replace(b"Content-Length: 0\r\n", b"X-Pad: " + b"p" * 70_000 + b"\r\n")
    with pytest.raises(MessageTooLarge) as info:
        parse_message(raw)
    assert info.value.request is None


def test_huge_garbage_is_too_large_without_request() -> None:
    with pytest.raises(MessageTooLarge) as info:
        parse_message(b"\xff" * (MAX_MESSAGE_SIZE + 1))
    assert info.value.request is None


def with_header_count(count: int) -> bytes:
    fillers = [f"X-Filler-{i}: {i}" for i in range(count - len(BASE_HEADERS))]
    return options(*fillers)


def test_exactly_max_headers_parses() -> None:
    assert MAX_HEADERS == 100
    message = parse_message(with_header_count(100))
    assert len(message.headers) == 100
    assert message.headers.get("X-Filler-93") == "93"


def test_too_many_headers() -> None:
    with pytest.raises(TooManyHeaders) as info:
        parse_message(with_header_count(101))
    assert info.value.request is not None
    assert info.value.request.method == "OPTIONS"


@pytest.mark.parametrize(
    "raw",
    [with_header_count(101), sized_message(MAX_MESSAGE_SIZE + 1)],
    ids=["too-many-headers", "too-large"],
)
def test_limit_errors_keep_enough_of_the_request_to_answer_400(raw: bytes) -> None:
    # The hub answers a malformed request with 400 built from error.request; the client can only
    # match that 400 if it carries the request's Via, Call-ID and CSeq (all within the first 100 lines).
    with pytest.raises(ParseError) as info:
        parse_message(raw)
    assert info.value.request is not None
    answer = make_response(info.value.request, 400)
    assert answer.headers.get("Via") == VIA
    assert answer.call_id == "tjjsegc4ss9osqhp6ior78"
    assert answer.cseq == CSeq(1, "OPTIONS")


def test_folded_lines_count_as_one_header() -> None:
    folded = with_header_count(100).replace(b"X-Filler-50: 50\r\n", b"X-Filler-50: 50\r\n continued\r\n\tagain\r\n")
    message = parse_message(folded)
    assert message.headers.get("X-Filler-50") == "50 continued again"


def test_too_many_headers_in_response() -> None:
    lines, _ = head_and_body(vector("response-200-bye.sip"))
    fillers = [f"X-F{i}: {i}" for i in range(101 - len(lines[1:]))]
    raw = build(*lines, *fillers)
    with pytest.raises(TooManyHeaders) as info:
        parse_message(raw)
    assert info.value.request is None


# --- malformed messages: the exact error, and the partly parsed request -------------------------------------------

STATUS_LINE = "SIP/2.0 200 OK"
RESPONSE_HEADERS = [*BASE_HEADERS[:1], *BASE_HEADERS[2:]]


def response(*lines: str, start: str = STATUS_LINE, headers: list[str] | None = None) -> bytes:
    return build(start, *(RESPONSE_HEADERS if headers is None else headers), *lines)


def drop(name: str) -> list[str]:
    return [line for line in BASE_HEADERS if not line.startswith(name + ":")]


def replace(name: str, value: str) -> list[str]:
    return [f"{name}: {value}" if line.startswith(name + ":") else line for line in BASE_HEADERS]


# Start lines that do not begin with a method and a space: nothing to answer.
UNANSWERABLE_START_LINES = [
    b"",
    b"\r\n\r\n",
    b"HELLO\r\n\r\n",
    build("OPT@IONS sip:127.0.0.1:8443 SIP/2.0", *BASE_HEADERS),
    build(" OPTIONS sip:127.0.0.1:8443 SIP/2.0", *BASE_HEADERS),
    response(start="SIP/2.0 99 Odd"),
    response(start="SIP/2.0 700 Odd"),
    response(start="SIP/2.0 2000 OK"),
    response(start="SIP/2.0 20x OK"),
    response(start="SIP/2.0 200"),
    response(start="SIP/1.0 200 OK"),
    response(start="SIP/2.0"),
    "OPTIONS sip:127.0.0.1 SIP/2.0".encode("utf-16"),
]


@pytest.mark.parametrize("raw", UNANSWERABLE_START_LINES)
def test_bad_start_line_without_a_method(raw: bytes) -> None:
    with pytest.raises(BadStartLine) as info:
        parse_message(raw)
    assert info.value.request is None


REQUEST_ERRORS = [
    pytest.param(options("No colon here"), BadHeader, id="header-without-colon"),
    pytest.param(options("Bad Name: x"), BadHeader, id="header-name-with-space"),
    pytest.param(options(": no name"), BadHeader, id="empty-header-name"),
    pytest.param(options("X-Bad\x01: x"), BadHeader, id="control-char-in-name"),
    pytest.param(build("OPTIONS sip:h SIP/2.0", " folded first", *BASE_HEADERS), BadHeader, id="fold-before-first"),
    pytest.param(options(headers=drop("Via")), MissingHeader, id="missing-via"),
    pytest.param(options(headers=drop("From")), MissingHeader, id="missing-from"),
    pytest.param(options(headers=drop("To")), MissingHeader, id="missing-to"),
    pytest.param(options(headers=drop("Call-ID")), MissingHeader, id="missing-call-id"),
    pytest.param(options(headers=drop("CSeq")), MissingHeader, id="missing-cseq"),
    pytest.param(options(headers=replace("Via", "")), MissingHeader, id="empty-via"),
    pytest.param(options(headers=replace("Via", "garbage")), BadHeader, id="bad-via"),
    pytest.param(options(headers=replace("CSeq", "abc OPTIONS")), BadHeader, id="bad-cseq-number"),
    pytest.param(options(headers=replace("CSeq", "1 INVITE")), BadHeader, id="cseq-method-mismatch"),
    pytest.param(options(headers=replace("From", "<sip:a@b;tag=1")), BadHeader, id="unclosed-from"),
    pytest.param(options(headers=replace("From", '"x <sip:a@b>;tag=1')), BadHeader, id="unterminated-quote"),
    pytest.param(options(headers=replace("To", "<sip:a@b:0>")), BadUri, id="bad-to-uri"),
    pytest.param(options(headers=replace("From", "<sip:@b>;tag=1")), BadUri, id="empty-user-in-from"),
    pytest.param(options("Content-Length: 1x"), BadContentLength, id="content-length-not-number"),
    pytest.param(options("Content-Length: 10", body=b"short"), BadContentLength, id="content-length-too-long"),
    pytest.param(with_header_count(101), TooManyHeaders, id="too-many-headers"),
    pytest.param(sized_message(MAX_MESSAGE_SIZE + 1), MessageTooLarge, id="too-large"),
    # The start line is fine; a header value is not UTF-8. That is a bad header, not a bad start line.
    pytest.param(options("Subject: caf\xe9 ok").replace("é".encode(), b"\xe9"), BadHeader, id="non-utf8-header"),
]


@pytest.mark.parametrize(("raw", "error"), REQUEST_ERRORS)
def test_malformed_request_keeps_partial_request(raw: bytes, error: type[ParseError]) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(raw)
    assert type(info.value) is error
    assert isinstance(info.value, SipError)
    request = info.value.request
    assert isinstance(request, Request)
    assert request.method == "OPTIONS"


RESPONSE_ERRORS = [
    pytest.param(response("No colon here"), BadHeader, id="header-without-colon"),
    pytest.param(response(headers=RESPONSE_HEADERS[1:]), MissingHeader, id="missing-via"),
    pytest.param(
        response(headers=[line for line in RESPONSE_HEADERS if "Call-ID" not in line]), MissingHeader, id="no-call-id"
    ),
    pytest.param(response(headers=[*RESPONSE_HEADERS[:-1], "CSeq: x OPTIONS"]), BadHeader, id="bad-cseq"),
    pytest.param(response("Content-Length: 99"), BadContentLength, id="content-length-too-long"),
]


@pytest.mark.parametrize(("raw", "error"), RESPONSE_ERRORS)
def test_malformed_response_has_no_request(raw: bytes, error: type[ParseError]) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(raw)
    assert type(info.value) is error
    assert info.value.request is None


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ParseError, 400),
        (BadStartLine, 400),
        (BadHeader, 400),
        (MissingHeader, 400),
        (BadContentLength, 400),
        (BadUri, 400),
        (TooManyHeaders, 400),
        (MessageTooLarge, 400),
        (UnsupportedVersion, 505),
    ],
)
def test_parse_errors_name_the_status_to_answer_with(error: type[ParseError], status: int) -> None:
    raised = error("why")
    assert raised.status_code == status
    assert raised.request is None
    assert isinstance(UnsupportedVersion("x"), BadStartLine)
    request = parse_message(options())
    assert isinstance(request, Request)
    assert make_response(request, error("x", request).status_code).reason == (
        "Version Not Supported" if status == 505 else "Bad Request"
    )


def test_bad_header_partial_request_has_the_headers_before_it() -> None:
    raw = options("X-Before: 1", "Not a header", "X-After: 2")
    with pytest.raises(BadHeader) as info:
        parse_message(raw)
    request = info.value.request
    assert request is not None
    assert request.uri == SipUri(host="127.0.0.1", port=8443)
    assert request.headers.get("Via") == VIA
    assert request.headers.get("Call-ID") == "tjjsegc4ss9osqhp6ior78"
    assert request.headers.get("X-Before") == "1"
    assert all(name != "Not a header" for name, _ in request.headers)


def test_missing_header_partial_request_answers_400() -> None:
    with pytest.raises(MissingHeader) as info:
        parse_message(options(headers=drop("CSeq")))
    assert info.value.request is not None
    answer = make_response(info.value.request, 400, to_tag="t1")
    assert answer.status_code == 400
    assert answer.headers.get("Via") == VIA
    assert answer.headers.get("Call-ID") == "tjjsegc4ss9osqhp6ior78"
    assert answer.headers.get("CSeq") is None


# --- make_response -----------------------------------------------------------------------------------------------


def invite_with_record_route() -> Request:
    raw = vector("invite.sip").replace(
        b"Max-Forwards: 69\r\n",
        b"Max-Forwards: 69\r\nRecord-Route: <sip:p1.invalid;lr>, <sip:p2.invalid;lr>\r\n"
        b"Via: SIP/2.0/WSS second.invalid;branch=z9hG4bKsecond\r\nRecord-Route: <sip:p3.invalid;lr>\r\n",
    )
    request = parse_message(raw)
    assert isinstance(request, Request)
    return request


def test_make_response_copies_the_transaction_headers() -> None:
    invite = invite_with_record_route()
    answer = make_response(invite, 180, to_tag="abc123")
    assert (answer.status_code, answer.reason) == (180, "Ringing")
    assert answer.headers.get_all("Via") == [
        "SIP/2.0/WSS setdn3a1sf12.invalid;branch=z9hG4bK9291998",
        "SIP/2.0/WSS second.invalid;branch=z9hG4bKsecond",
    ]
    assert answer.headers.get("From") == invite.headers.get("From")
    assert answer.call_id == invite.call_id
    assert answer.cseq == CSeq(3046, "INVITE")
    assert answer.to.tag == "abc123"
    assert answer.headers.get("To") == "<sip:00000@127.0.0.1:8443>;tag=abc123"
    for absent in ("Max-Forwards", "Contact", "Content-Type", "WebRTC-Token", "Allow", "Session-Expires"):
        assert answer.headers.get(absent) is None, absent
    assert answer.body == b""
    again = parse_message(bytes(answer))
    assert isinstance(again, Response)
    assert [field for field in again.headers if field[0] != "Content-Length"] == list(answer.headers)
    assert again.to.tag == "abc123"


def test_make_response_adds_the_to_tag_once() -> None:
    invite = invite_with_record_route()
    first = make_response(invite, 200, to_tag="tag1")
    assert first.headers.get("To", "").count("tag=") == 1
    # An in-dialog request already has a To tag: it is kept, not doubled or replaced.
    bye = parse_message(vector("bye.sip"))
    assert isinstance(bye, Request)
    answer = make_response(bye, 200, to_tag="other")
    assert answer.headers.get("To") == "<sip:00000@127.0.0.1:8443>;tag=n08c7oi1"
    assert answer.to.tag == "n08c7oi1"
    # No tag asked for: To is copied as is (a 100 Trying).
    trying = make_response(invite, 100)
    assert trying.headers.get("To") == "<sip:00000@127.0.0.1:8443>"
    assert trying.to.tag is None


def test_make_response_to_tag_with_compact_to_and_spaced_tag() -> None:
    request = parse_message(options(headers=[line.replace("To:", "t:") for line in BASE_HEADERS]))
    assert isinstance(request, Request)
    answer = make_response(request, 200, to_tag="zz")
    assert answer.to.tag == "zz"
    spaced = parse_message(options(headers=replace("To", "<sip:anonymous@127.0.0.1:8443> ; TAG = old")))
    assert isinstance(spaced, Request)
    assert make_response(spaced, 200, to_tag="new").to.tag == "old"


def test_make_response_to_tag_when_display_name_mentions_tag() -> None:
    # ';tag=' inside the quoted display name is not a tag parameter: the response must still get one.
    request = parse_message(options(headers=replace("To", '"Door;tag=x" <sip:anonymous@127.0.0.1:8443>')))
    assert isinstance(request, Request)
    assert request.to.tag is None
    answer = make_response(request, 200, to_tag="real")
    assert answer.to.tag == "real"
    assert answer.to.display_name == "Door;tag=x"


@pytest.mark.parametrize(
    ("status", "copied"),
    [(100, False), (101, True), (180, True), (183, True), (200, True), (299, True), (300, False), (486, False)],
)
def test_make_response_record_route_only_for_101_to_299(status: int, copied: bool) -> None:
    answer = make_response(invite_with_record_route(), status, to_tag="t")
    expected = ["<sip:p1.invalid;lr>", "<sip:p2.invalid;lr>", "<sip:p3.invalid;lr>"] if copied else []
    assert answer.headers.get_all("Record-Route") == expected


def test_make_response_reason_extra_headers_and_body() -> None:
    invite = invite_with_record_route()
    answer = make_response(
        invite,
        200,
        to_tag="t",
        headers=[("Contact", "<sip:hub@127.0.0.1>"), ("Content-Type", "application/json")],
        body=b'{"zone": "local"}',
    )
    assert answer.reason == "OK"
    assert answer.headers.get("Contact") == "<sip:hub@127.0.0.1>"
    assert answer.body == b'{"zone": "local"}'
    assert parse_message(bytes(answer)).body == b'{"zone": "local"}'
    assert make_response(invite, 486).reason == "Busy Here"
    assert make_response(invite, 480, "Gone Fishing").reason == "Gone Fishing"
    assert make_response(invite, 499).reason  # an unknown code still gets a non-empty reason
