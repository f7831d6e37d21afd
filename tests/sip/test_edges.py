"""SIP at the edges (issue 17): unusual but legal messages parse, ambiguous ones are refused, and
every refused request whose request line can be read keeps enough of itself to be answered.
"""

from __future__ import annotations

import pytest

from intercom.sip import (
    MAX_MESSAGE_SIZE,
    Address,
    BadContentLength,
    BadHeader,
    BadStartLine,
    CSeq,
    MessageTooLarge,
    ParseError,
    Request,
    Response,
    SipUri,
    UnsupportedVersion,
    make_response,
    parse_message,
)
from intercom.sip.headers import SINGLE_VALUED_HEADERS

from .test_message import BASE_HEADERS, REQUEST_ERRORS, VIA, build, options, replace, response

# --- '?' in the user part (RFC 3261 25.1: user-unreserved) ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "user", "host", "params", "headers"),
    [
        ("sip:a?b@example.com", "a?b", "example.com", {}, None),
        ("sip:a?b@example.com;transport=ws?subject=hi", "a?b", "example.com", {"transport": "ws"}, "subject=hi"),
        ("sips:?@[2001:db8::1]:5061", "?", "[2001:db8::1]", {}, None),
        ("sip:a;b=c?d/e,f@h.invalid;lr", "a;b=c?d/e,f", "h.invalid", {"lr": None}, None),
        ("sip:alice@example.com?Subject=x@y", "alice", "example.com", {}, "Subject=x@y"),
        ("sip:example.com?h=v", None, "example.com", {}, "h=v"),
    ],
)
def test_question_mark_in_user_part(text: str, user: str | None, host: str, params: dict, headers: str | None) -> None:
    uri = SipUri.parse(text)
    assert (uri.user, uri.host, uri.params, uri.headers) == (user, host, params, headers)
    assert str(uri) == text


def test_question_mark_in_request_uri_and_addresses() -> None:
    raw = build(
        "OPTIONS sip:a?b@example.com SIP/2.0",
        f"Via: {VIA}",
        "To: <sip:to?x@example.com>",
        'From: "Q" <sip:from?y@example.com;transport=ws>;tag=1',
        "Call-ID: q1",
        "CSeq: 1 OPTIONS",
        "Contact: <sip:c?z@example.com>;expires=60, sip:d?w@example.com",
    )
    message = parse_message(raw)
    assert isinstance(message, Request)
    assert message.uri == SipUri(host="example.com", user="a?b")  # not host 'a' with headers 'b@example.com'
    assert (message.to.uri.user, message.to.uri.host) == ("to?x", "example.com")  # type: ignore[union-attr]
    assert message.from_.uri == SipUri(host="example.com", user="from?y", params={"transport": "ws"})
    assert [str(contact.uri) for contact in message.contacts] == ["sip:c?z@example.com", "sip:d?w@example.com"]
    again = parse_message(bytes(message))
    assert isinstance(again, Request)
    assert again.start_line() == "OPTIONS sip:a?b@example.com SIP/2.0"
    assert (again.uri, again.from_, again.to, again.contacts) == (
        message.uri,
        message.from_,
        message.to,
        message.contacts,
    )


def test_at_sign_twice_is_a_bad_host() -> None:
    # Neither a user part nor a host may hold '@': the first one ends the userinfo.
    with pytest.raises(ParseError):
        SipUri.parse("sip:a@b@example.com")


# --- duplicated single-valued headers -----------------------------------------------------------------------------


def test_single_valued_headers_follow_rfc_3261() -> None:
    # Spot checks both ways: list headers and the authentication headers may repeat (RFC 3261 7.3.1).
    assert {"call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type", "expires"} <= (
        SINGLE_VALUED_HEADERS
    )
    for repeatable in ("via", "contact", "route", "record-route", "supported", "require", "authorization", "warning"):
        assert repeatable not in SINGLE_VALUED_HEADERS, repeatable


DUPLICATES = [
    pytest.param("CSeq: 2 OPTIONS", "CSeq", id="cseq"),
    pytest.param("Call-ID: other", "Call-ID", id="call-id"),
    pytest.param("i: other", "Call-ID", id="compact-call-id"),
    pytest.param("From: <sip:b@example.com>;tag=2", "From", id="from"),
    pytest.param("f: <sip:b@example.com>;tag=2", "From", id="compact-from"),
    pytest.param("To: <sip:b@example.com>", "To", id="to"),
    pytest.param("t: <sip:b@example.com>", "To", id="compact-to"),
    pytest.param("Max-Forwards: 70", "Max-Forwards", id="max-forwards"),
    pytest.param("max-forwards: 69", "Max-Forwards", id="max-forwards-same-value-other-case"),
]


@pytest.mark.parametrize(("line", "name"), DUPLICATES)
def test_repeated_single_valued_header_is_refused(line: str, name: str) -> None:
    with pytest.raises(BadHeader) as info:
        parse_message(options(line))
    error = info.value
    assert error.status_code == 400
    assert f"more than one {name} header" in str(error)
    assert isinstance(error.request, Request)
    assert error.request.method == "OPTIONS"
    assert error.request.headers.get("Via") == VIA
    # The answer copies each of From, To, Call-ID and CSeq once, so it is a message the sender can read.
    answer = parse_message(bytes(make_response(error.request, error.status_code, to_tag="t1")))
    assert isinstance(answer, Response)
    assert answer.call_id == "tjjsegc4ss9osqhp6ior78"
    assert answer.cseq == CSeq(1, "OPTIONS")
    assert answer.headers.get("Via") == VIA


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(("Content-Type: text/plain", "c: application/sdp"), id="content-type-compact"),
        pytest.param(("Expires: 60", "Expires: 60"), id="expires-same-value"),
        pytest.param(("Session-Expires: 90", "x: 90"), id="session-expires"),
        pytest.param(("Subject: a", "s: b"), id="subject"),
    ],
)
def test_other_single_valued_headers_repeated(lines: tuple[str, str]) -> None:
    with pytest.raises(BadHeader, match="more than one"):
        parse_message(options(*lines))


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(("Content-Length: 5", "Content-Length: 9"), id="different"),
        pytest.param(("Content-Length: 5", "l: 5"), id="same-value-compact"),
        pytest.param(("l: 9", "Content-Length: 5"), id="compact-first"),
    ],
)
def test_two_content_lengths_are_refused(lines: tuple[str, str]) -> None:
    with pytest.raises(BadContentLength) as info:
        parse_message(options(*lines, body=b"hello, world"))
    assert "more than one Content-Length header" in str(info.value)
    assert info.value.status_code == 400
    assert info.value.request is not None and info.value.request.call_id == "tjjsegc4ss9osqhp6ior78"


def test_two_content_lengths_in_a_response_are_refused() -> None:
    with pytest.raises(BadContentLength) as info:
        parse_message(response("Content-Length: 0", "Content-Length: 1"))
    assert info.value.request is None


def test_headers_that_may_repeat_still_do() -> None:
    message = parse_message(
        options(
            "Via: SIP/2.0/WSS second.invalid;branch=z9hG4bK2",
            "Contact: <sip:a@a.invalid>",
            "m: <sip:b@b.invalid>",
            "Route: <sip:r1.invalid;lr>",
            "Route: <sip:r2.invalid;lr>",
            "Supported: timer",
            "k: path",
            'Authorization: Digest username="a", realm="r"',
            'Authorization: Digest username="b", realm="s"',
            "X-Extension: 1",
            "X-Extension: 2",
        )
    )
    assert len(message.vias) == 2
    assert [contact.uri.host for contact in message.contacts] == ["a.invalid", "b.invalid"]  # type: ignore[union-attr]
    assert message.headers.get_all("Supported") == ["timer", "path"]
    assert len(message.headers.get_lines("Authorization")) == 2


# --- request lines: what is refused, and the answer it still gets ------------------------------------------------

HEADER_BLOCK = "\r\n".join(BASE_HEADERS)

MALFORMED_REQUEST_LINES = [
    pytest.param("OPTIONS  sip:127.0.0.1:8443 SIP/2.0", 400, id="two-spaces-after-method"),
    pytest.param("OPTIONS sip:127.0.0.1:8443  SIP/2.0", 400, id="two-spaces-before-version"),
    pytest.param("OPTIONS sip:127.0.0.1:8443 SIP/2.0 ", 400, id="trailing-space"),
    pytest.param("OPTIONS sip:127.0.0.1:8443 SIP/2.0\t", 400, id="trailing-tab"),
    pytest.param("OPTIONS sip:127.0.0.1:8443 ;transport=ws SIP/2.0", 400, id="space-before-semicolon"),
    pytest.param("OPTIONS sip:127.0.0.1:8443\tSIP/2.0", 400, id="tab-separator"),
    pytest.param("OPTIONS sip:127.0.0.1:8443 SIP/2.0 extra", 400, id="fourth-part"),
    pytest.param("OPTIONS sip:127.0.0.1:8443", 400, id="no-version"),
    pytest.param("OPTIONS sip:127.0.0.1:8443 HTTP/1.1", 400, id="not-sip"),
    pytest.param("OPTIONS sip:127.0.0.1:8443 SIP/2.0x", 400, id="version-with-tail"),
    pytest.param("OPTIONS sip:127.0.0.1:8443 SIP/7.0", 505, id="sip-7.0"),
    pytest.param("OPTIONS sip:127.0.0.1:8443 SIP/3.0", 505, id="sip-3.0"),
    pytest.param("OPTIONS sip:127.0.0.1:8443 sip/1.0", 505, id="sip-1.0-lower-case"),
    pytest.param("OPTIONS  sip:127.0.0.1:8443 SIP/7.0", 400, id="spaces-and-version"),
    pytest.param("OPTIONS <sip:127.0.0.1:8443> SIP/2.0", 400, id="uri-in-angle-brackets"),
    pytest.param("OPTIONS <tel:+31> SIP/2.0", 400, id="tel-uri-in-angle-brackets"),
    pytest.param("OPTIONS sip:127.0.0.1:99999 SIP/2.0", 400, id="port-out-of-range"),
    pytest.param("OPTIONS sip:@127.0.0.1 SIP/2.0", 400, id="empty-user"),
    pytest.param("OPTIONS 127.0.0.1 SIP/2.0", 400, id="no-scheme"),
    pytest.param('OPTIONS tel:"+31" SIP/2.0', 400, id="quote-in-uri"),
    pytest.param("ACK sip:127.0.0.1 SIP/7.0", 505, id="ack"),
]


@pytest.mark.parametrize(("line", "status"), MALFORMED_REQUEST_LINES)
def test_malformed_request_line_is_refused_with_the_request(line: str, status: int) -> None:
    method = line.split(" ")[0]
    raw = build(line, *(header.replace("1 OPTIONS", f"1 {method}") for header in BASE_HEADERS))
    with pytest.raises(BadStartLine) as info:
        parse_message(raw)
    error = info.value
    assert error.status_code == status
    assert isinstance(error, UnsupportedVersion) == (status == 505)
    request = error.request
    assert isinstance(request, Request)
    assert request.method == method
    assert list(request.headers) == [tuple(header.split(": ", 1)) for header in raw.decode().split("\r\n")[1:-2]]
    answer = parse_message(bytes(make_response(request, error.status_code, to_tag="t1")))
    assert isinstance(answer, Response)
    assert (answer.status_code, answer.reason) == (
        status,
        "Version Not Supported" if status == 505 else "Bad Request",
    )
    assert answer.headers.get("Via") == VIA
    assert answer.call_id == "tjjsegc4ss9osqhp6ior78"
    assert answer.cseq == CSeq(1, method)
    assert answer.to.tag == "t1"


def test_request_line_not_utf8_is_still_answered() -> None:
    raw = b"OPTIONS sip:\xff@127.0.0.1 SIP/2.0\r\n" + HEADER_BLOCK.encode() + b"\r\n\r\n"
    with pytest.raises(BadStartLine, match="not UTF-8") as info:
        parse_message(raw)
    assert info.value.request is not None
    assert info.value.request.method == "OPTIONS"
    assert info.value.request.headers.get("Call-ID") == "tjjsegc4ss9osqhp6ior78"


def test_malformed_request_line_with_a_bad_header_keeps_the_good_headers() -> None:
    raw = build("OPTIONS  sip:127.0.0.1 SIP/2.0", " folded first", *BASE_HEADERS, "Not a header")
    with pytest.raises(BadStartLine) as info:  # the start line is what is reported
        parse_message(raw)
    assert info.value.request is not None
    assert info.value.request.headers.get("CSeq") == "1 OPTIONS"
    assert info.value.request.headers.get("Via") == VIA


def test_oversized_message_with_a_malformed_request_line_is_answerable() -> None:
    raw = build("OPTIONS sip:127.0.0.1 SIP/7.0", *BASE_HEADERS, body=b"x" * MAX_MESSAGE_SIZE)
    with pytest.raises(MessageTooLarge) as info:
        parse_message(raw)
    assert info.value.status_code == 400  # the size is the first thing wrong: 400, not 505
    assert info.value.request is not None
    assert info.value.request.headers.get("Call-ID") == "tjjsegc4ss9osqhp6ior78"


@pytest.mark.parametrize(
    ("line", "uri"),
    [
        pytest.param(
            "OPTIONS sip:127.0.0.1:8443 sip/2.0", SipUri(host="127.0.0.1", port=8443), id="lower-case-version"
        ),
        pytest.param("OPTIONS tel:+31000000000 SIP/2.0", "tel:+31000000000", id="tel"),
        pytest.param("OPTIONS urn:service:sos SIP/2.0", "urn:service:sos", id="urn"),
        pytest.param("OPTIONS sipsx:a@b SIP/2.0", "sipsx:a@b", id="unknown-scheme-starting-with-sips"),
        pytest.param("OPTIONS SIPS:a@b SIP/2.0", SipUri(host="b", user="a", scheme="sips"), id="scheme-upper-case"),
        pytest.param("x-Custom.Method sip:b SIP/2.0", SipUri(host="b"), id="extension-method"),
    ],
)
def test_legal_request_lines_parse(line: str, uri: SipUri | str) -> None:
    # A Request-URI of another scheme stays text: refusing it (416) is the hub's decision, not the parser's.
    method = line.split(" ")[0]
    message = parse_message(build(line, *(header.replace("1 OPTIONS", f"1 {method}") for header in BASE_HEADERS)))
    assert isinstance(message, Request)
    assert (message.method, message.uri) == (method, uri)
    assert message.start_line() == f"{method} {uri} SIP/2.0"


def test_status_line_version_is_case_insensitive() -> None:
    message = parse_message(response(start="sip/2.0 180 Ringing"))
    assert isinstance(message, Response)
    assert message.start_line() == "SIP/2.0 180 Ringing"


# --- every refused request that names a method carries what its answer needs --------------------------------------

ANSWER_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")


def refused_requests() -> list[bytes]:
    """Every malformed request of these tests and of test_message.py, and more of each kind."""
    cases = [param.values[0] for param in REQUEST_ERRORS]
    cases += [
        build(
            param.values[0],
            *(header.replace("1 OPTIONS", "1 " + param.values[0].split(" ")[0]) for header in BASE_HEADERS),
        )
        for param in MALFORMED_REQUEST_LINES
    ]
    cases += [options(param.values[0]) for param in DUPLICATES]
    cases += [
        options("Content-Length: 5", "l: 6", body=b"hello, world"),
        options(headers=replace("To", "<sip:a@b")),
        options(headers=replace("Via", 'SIP/2.0/WSS h;branch="x')),
        options(headers=replace("CSeq", "99999999999 OPTIONS")),
        build("OPTIONS sip:h SIP/2.0", *BASE_HEADERS, "\x00bad: x"),
        build("OPTIONS sip:h SIP/2.0", *BASE_HEADERS).replace(b"\r\n\r\n", b"\r\nX-Bin: \xc3\x28\r\n\r\n"),
    ]
    return cases


def test_refused_requests_carry_what_the_answer_needs() -> None:
    cases = refused_requests()
    assert len(cases) > 50
    for raw in cases:
        with pytest.raises(ParseError) as info:
            parse_message(raw)
        error = info.value
        assert error.status_code in (400, 505), raw[:60]
        request = error.request
        assert isinstance(request, Request), raw[:60]
        assert request.method == raw.split(b" ")[0].decode()
        # Each of the headers an answer copies is there whenever the message had a readable line of it.
        lines = raw.decode("utf-8", errors="replace").split("\r\n")
        for name in ANSWER_HEADERS:
            sent = [line.split(":", 1)[1].strip() for line in lines[1:] if line.split(":", 1)[0] == name]
            if sent:
                assert request.headers.get(name) == sent[0], (name, raw[:60])
        answer = make_response(request, error.status_code, to_tag="t")
        assert bytes(answer).startswith(f"SIP/2.0 {error.status_code} ".encode())
        assert answer.headers.get("Call-ID") == request.headers.get("Call-ID")


def test_address_with_question_mark_user_is_kept_in_a_dialog() -> None:
    # A dialog writes From/To back with str(): the user with '?' must survive that.
    address = Address.parse('"Door" <sip:door?1@hub.invalid;transport=ws>;tag=a1')
    assert Address.parse(str(address)) == address
    assert address.uri == SipUri(host="hub.invalid", user="door?1", params={"transport": "ws"})
