"""The hub's answers to unusual and malformed SIP, over a real WebSocket (RFC 3261 section 8.2).

Each request goes alone and gets its own answer before the next one leaves, on one connection
that must still register at the end.
"""

from __future__ import annotations

import asyncio

import pytest

from intercom.auth import IncomingCapability, mint_token
from intercom.hub.sip_service import ALLOWED_METHODS
from intercom.sdk.registration import RegistrationState
from intercom.sip import Request, Response, parse_message
from intercom.sip.door import DOOR_EVENT_CONTENT_TYPE
from intercom.sip.ids import new_branch, new_call_id, new_tag

from ..conftest import STEP, replay
from ..units import store_flow


def request(
    method: str,
    uri: str,
    *,
    to_tag: str | None = None,
    extra: tuple[str, ...] = (),
    request_line: str | None = None,
    body: str = "",
) -> str:
    """A request as the browser client words them, with fresh branch, tag and Call-ID."""
    to = f"<{uri}>" if uri.startswith(("sip:", "sips:")) else "<sip:00000@127.0.0.1>"
    lines = [
        request_line or f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/WSS client.invalid;branch={new_branch()}",
        "Max-Forwards: 69",
        f"To: {to}" + (f";tag={to_tag}" if to_tag else ""),
        f"From: <sip:anonymous@127.0.0.1>;tag={new_tag()}",
        f"Call-ID: {new_call_id()}",
        f"CSeq: 7 {method}",
        *extra,
        f"Content-Length: {len(body.encode())}",
    ]
    return "\r\n".join(lines) + "\r\n\r\n" + body


async def test_an_unsupported_require_gets_420_listing_each_tag_once(hub, raw_sip):
    sip = await raw_sip()
    uri = f"sip:{hub.address}"
    options = request("OPTIONS", uri, extra=("Require: timer, x-frobnicate", "Require: timer"))
    response = await sip.exchange(options)
    assert (response.status_code, response.reason) == (420, "Bad Extension")
    assert response.headers.get_all("Unsupported") == ["timer", "x-frobnicate"]
    assert response.to.tag
    register = RegistrationState(hub.address).build(hub.token("desk"))
    register.headers.add("Require", "outbound")
    response = await sip.exchange(register)
    assert response.status_code == 420 and response.headers.get_all("Unsupported") == ["outbound"]
    assert hub.running.registrar.binding_count == 0  # refused before the registrar saw it
    # Supported (what JsSIP sends) is no Require: these go through as before.
    assert (await sip.exchange(request("OPTIONS", uri, extra=("Supported: path,gruu,outbound",)))).status_code == 200
    assert (await sip.exchange(replay("register-first.sip", hub.address, hub.token("desk")))).status_code == 200


async def test_a_cancel_is_not_refused_for_its_require(hub, raw_sip):
    sip = await raw_sip()
    cancel = request("CANCEL", f"sip:00000@{hub.address}", extra=("Require: x-frobnicate",))
    response = await sip.exchange(cancel)
    assert response.status_code == 481  # no INVITE to cancel: the Require did not matter


async def test_a_method_the_hub_does_not_implement_gets_501_with_allow(hub, raw_sip):
    sip = await raw_sip()
    for method in ("FOO", "SUBSCRIBE", "REFER", "PRACK", "NOTIFY", "PUBLISH"):
        response = await sip.exchange(request(method, f"sip:{hub.address}"))
        assert (response.status_code, response.reason) == (501, f"Not Implemented ({method})")
        assert response.headers.get_all("Allow") == list(ALLOWED_METHODS)
        assert response.to.tag, method


async def test_a_method_the_hub_implements_out_of_place_gets_405_or_481(hub, raw_sip):
    sip = await raw_sip()
    uri = f"sip:00000@{hub.address}"
    inside = await sip.exchange(
        request("MESSAGE", uri, to_tag="notours", body="hi", extra=("Content-Type: text/plain",))
    )
    assert inside.status_code == 405  # the hub takes MESSAGE outside dialogs only
    assert inside.headers.get_all("Allow") == list(ALLOWED_METHODS)
    assert inside.to.tag == "notours"  # inside a dialog the request's tag stands, alone
    for method in ("BYE", "INFO", "UPDATE"):  # no dialog without a To tag: none to end or talk in
        response = await sip.exchange(request(method, uri))
        assert (response.status_code, response.reason) == (481, "Call/Transaction Does Not Exist"), method
        assert response.to.tag, method


async def test_a_request_uri_of_another_scheme_gets_416_whatever_the_method(hub, raw_sip):
    sip = await raw_sip()
    token = hub.token("desk")
    for uri in ("tel:+31201234567", "urn:service:sos", "http://127.0.0.1/door", "mailto:a@b.c"):
        scheme = uri.partition(":")[0]
        for method in ("OPTIONS", "REGISTER", "INVITE", "MESSAGE", "BYE", "INFO", "UPDATE", "CANCEL"):
            response = await sip.exchange(request(method, uri, extra=(f"WebRTC-Token: {token}",)))
            assert (response.status_code, response.reason) == (416, f"Unsupported URI Scheme ({scheme})"), method
            assert response.to.tag, (method, uri)
    assert hub.running.registrar.binding_count == 0


@pytest.mark.parametrize("uri", ["<sip:127.0.0.1>", "127.0.0.1", ":nothing", "1sip:127.0.0.1"])
async def test_a_request_uri_that_is_no_uri_gets_400(hub, raw_sip, uri):
    sip = await raw_sip()
    response = await sip.exchange(request("OPTIONS", uri))
    assert response.status_code == 400
    assert "Request-URI" in response.reason
    assert response.to.tag


@pytest.mark.parametrize(
    "contacts", [["<tel:+31201234567>"], ["<sip:ok@client.invalid;transport=ws>", "<mailto:a@b.c>"]]
)
async def test_a_register_naming_a_contact_of_another_scheme_is_refused_whole(hub, raw_sip, contacts):
    sip = await raw_sip()
    register = RegistrationState(hub.address).build(hub.token("desk"))
    register.headers.set("Contact", ", ".join(contacts))
    response = await sip.exchange(register)
    assert response.status_code == 400
    assert "is not a sip or sips URI" in response.reason and contacts[-1].strip("<>") in response.reason
    assert response.to.tag
    assert hub.running.registrar.binding_count == 0
    assert hub.running.registrar.lookup("desk") == []


async def test_every_final_answer_outside_a_dialog_carries_a_to_tag(hub, raw_sip):
    """REGISTER 200/403/406/423, OPTIONS 200, MESSAGE 200/403, an INVITE's refusal after its 100."""
    sip = await raw_sip()

    def register(token: str, expires: int = 60) -> str:
        return RegistrationState(hub.address).build(token, expires).text()

    message = request(
        "MESSAGE",
        f"sip:00000@{hub.address}",
        extra=(f"Content-Type: {DOOR_EVENT_CONTENT_TYPE}",),
        body="{}",
    )
    answers = {
        "REGISTER 200": await sip.exchange(register(hub.token("desk"))),
        "REGISTER 403": await sip.exchange(register("not-a-jwt")),
        "REGISTER 406": await sip.exchange(register(mint_token(hub.key, [IncomingCapability("x" * 31)]))),
        "REGISTER 423": await sip.exchange(register(hub.token("desk"), expires=3)),
        "OPTIONS 200": await sip.exchange(request("OPTIONS", f"sip:{hub.address}")),
        "MESSAGE 200": await sip.exchange(replay("message.sip", hub.address)),
    }
    other = await raw_sip()  # a connection where nobody registered: the door event is refused
    answers["MESSAGE 403"] = await other.exchange(message)
    invite = request("INVITE", f"sip:00000@{hub.address}")
    await sip.send(invite)
    trying = await sip.receive()
    assert isinstance(trying, Response) and trying.status_code == 100
    answers["INVITE 403"] = await sip.final_response()
    assert {name: f"{reply.status_code}" for name, reply in answers.items()} == {
        name: name.split()[1] for name in answers
    }
    tags = {name: reply.to.tag for name, reply in answers.items()}
    assert all(tags.values()), tags
    assert len(set(tags.values())) == len(tags)  # one of its own for each transaction
    assert trying.to.tag is None  # 100 Trying may go without (8.2.6.2), and does


async def test_the_ringing_and_the_refusal_of_one_invite_share_their_to_tag(hub, raw_sip, make_unit):
    """The browser's INVITE to a desk that rejects: 100 without a tag, then 180 and 480 with one."""
    await store_flow(hub, "door", "client:desk")
    desk = await make_unit("desk", 880.0)
    door = await raw_sip()
    invite = parse_message(replay("invite.sip", hub.address, hub.token("door", incoming=False, outgoing="door")))
    assert isinstance(invite, Request)
    await door.send(invite)
    trying, ringing = await door.receive(), await door.receive()
    assert isinstance(trying, Response) and isinstance(ringing, Response)
    assert (trying.status_code, ringing.status_code) == (100, 180)
    (await desk.next_incoming()).reject()
    refused = await door.final_response()
    assert refused.status_code == 480
    assert trying.to.tag is None
    assert ringing.to.tag and refused.to.tag == ringing.to.tag
    ack = Request(method="ACK", uri=invite.uri)
    for name, value in (
        ("Via", invite.headers.get("Via")),
        ("From", invite.headers.get("From")),
        ("To", refused.headers.get("To")),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.number} ACK"),
    ):
        ack.headers.add(name, value or "")
    await door.send(ack)
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()


# The corpus of issue 17: what each malformed or unusual request must get, in turn, on one socket.
def corpus(host: str) -> list[tuple[str, str, int]]:
    uri = f"sip:{host}"
    good = request("OPTIONS", uri)
    return [
        ("extra spaces in the request line", request("OPTIONS", uri, request_line=f"OPTIONS  {uri}  SIP/2.0"), 400),
        (
            "a space before ; in the URI",
            request("OPTIONS", uri, request_line=f"OPTIONS {uri} ;transport=ws SIP/2.0"),
            400,
        ),
        ("trailing spaces", request("OPTIONS", uri, request_line=f"OPTIONS {uri} SIP/2.0  "), 400),
        ("SIP/7.0", request("OPTIONS", uri, request_line=f"OPTIONS {uri} SIP/7.0"), 505),
        ("two Content-Lengths", good.replace("Content-Length: 0", "Content-Length: 0\r\nContent-Length: 5"), 400),
        ("two CSeqs", good.replace("CSeq: 7 OPTIONS", "CSeq: 7 OPTIONS\r\nCSeq: 8 OPTIONS"), 400),
        ("two Call-IDs", good.replace("Call-ID: ", "Call-ID: second\r\nCall-ID: "), 400),
        ("two Froms", good.replace("From: ", f"From: <sip:other@{host}>;tag=x\r\nFrom: "), 400),
        ("two Tos", good.replace("To: ", f"To: <sip:other@{host}>\r\nTo: "), 400),
        ("two Max-Forwards", good.replace("Max-Forwards: 69", "Max-Forwards: 69\r\nMax-Forwards: 70"), 400),
        ("a bracketed request-URI", request("OPTIONS", f"<{uri}>"), 400),
        ("? in the user part", request("OPTIONS", f"sip:a?b@{host}"), 200),
        ("an unknown method", request("FOO", uri), 501),
        ("an unknown scheme", request("OPTIONS", "tel:+31201234567"), 416),
        ("an unsupported Require", request("OPTIONS", uri, extra=("Require: 100rel",)), 420),
        ("a line that is no header", good.replace("Max-Forwards: 69", "Max-Forwards: 69\r\nno header here"), 400),
        ("a CSeq of another method", good.replace("CSeq: 7 OPTIONS", "CSeq: 7 INVITE"), 400),
        ("a CSeq that is no number", good.replace("CSeq: 7 OPTIONS", "CSeq: seven OPTIONS"), 400),
        ("no Call-ID", "\r\n".join(line for line in good.split("\r\n") if not line.startswith("Call-ID")), 400),
        ("a bad Via", good.replace("Via: SIP/2.0/WSS", "Via: SIP/2.0/WSS   ;"), 400),
        ("a Content-Length past the body", good.replace("Content-Length: 0", "Content-Length: 40"), 400),
    ]


async def test_the_corpus_gets_an_answer_each_and_the_connection_then_registers(hub, raw_sip):
    """Each case is followed by a good OPTIONS: what comes back before its 200 is the case's answer,
    so a case the hub leaves unanswered shows as ``[]`` at once, with every other case's result."""
    sip = await raw_sip()
    cases = corpus(hub.address)
    answers: dict[str, list[int]] = {}
    for name, frame, _ in cases:
        probe = request("OPTIONS", f"sip:{hub.address}")
        probe_call_id = next(line for line in probe.split("\r\n") if line.startswith("Call-ID: "))
        await sip.send(frame)
        await sip.send(probe)
        answers[name] = []
        async with asyncio.timeout(STEP):
            while probe_call_id not in (raw := await sip.websocket.recv()).split("\r\n"):
                # read raw: a 400 copies a broken Via or CSeq back, which does not parse
                status_line, _, head = raw.partition("\r\n")
                answers[name].append(int(status_line.split()[1]))
                to_lines = [line for line in head.split("\r\n") if line.lower().startswith(("to:", "t:"))]
                assert to_lines and all(";tag=" in line for line in to_lines), (name, raw)
    assert answers == {name: [status] for name, _, status in cases}
    response = await sip.exchange(RegistrationState(hub.address).build(hub.token("survivor")))
    assert response.status_code == 200
    assert len(hub.running.registrar.lookup("survivor")) == 1
