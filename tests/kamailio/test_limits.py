"""What the edge refuses: floods (pike), oversize messages, WebSocket handshakes it does not
serve, SIP that is not over a WebSocket, hubs it does not know (deploy/kamailio/kamailio.cfg)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from intercom.sip import Request, Response, SipUri, parse_message

from ..conftest import RawSip, replay
from ..units import STEP
from .edge import HOST, Edge, SipStream, free_port, fresh_register, hub_request
from .test_dispatcher import register


def keepalive(edge, number: int) -> Request:
    """An OPTIONS to the edge itself (answered by it: a flood costs the hubs nothing)."""
    options = Request(method="OPTIONS", uri=SipUri.parse(f"sip:{edge.host}"))
    options.headers.add("Via", f"SIP/2.0/WSS flood.invalid;branch=z9hG4bKflood{number}")
    options.headers.add("From", f"<sip:anonymous@{edge.host}>;tag=flood")
    options.headers.add("To", f"<sip:anonymous@{edge.host}>")
    options.headers.add("Call-ID", f"flood{number}")
    options.headers.add("CSeq", f"{number} OPTIONS")
    options.headers.add("Max-Forwards", "70")
    return options


async def test_a_flood_from_one_address_is_refused_while_another_unit_registers(start_edge, fake_hub, open_unit):
    edge = await start_edge([fake_hub.address], PIKE_DENSITY=10, PIKE_UNIT=2, BAN_TIME=30)
    flooder = await open_unit(edge, source="127.0.0.3")
    answers: list[Response] = []
    for number in range(1, 31):
        answers.append(await flooder.exchange(keepalive(edge, number)))
    codes = [answer.status_code for answer in answers]
    assert codes[0] == 200
    first_refused = codes.index(503)
    assert set(codes[first_refused:]) == {503}  # banned: refused from then on
    refused = answers[first_refused]
    assert (refused.reason, refused.headers.get("Retry-After")) == ("Flood limit", "30")
    assert edge.log().count("flood: 127.0.0.3 sent over PIKE_DENSITY=10 requests in PIKE_UNIT=2 s") == 1
    # its REGISTER is refused too, before any hub sees it
    await register(edge, flooder)
    assert (await flooder.final_response()).status_code == 503

    unit = await open_unit(edge, source="127.0.0.4")
    await register(edge, unit)
    assert (await unit.final_response()).status_code == 200
    assert (await fake_hub.next("REGISTER")).request.headers.get("P-Intercom-Flow", "").startswith("edge1;127.0.0.4:")
    assert fake_hub.arrivals.empty()


async def test_a_message_over_the_size_limit_is_refused(start_edge, fake_hub, open_unit):
    edge = await start_edge([fake_hub.address], MAX_SIZE=2000)
    unit = await open_unit(edge)
    invite = replay("invite.sip", edge.host)
    assert len(invite.encode()) > 2000
    refused = await unit.exchange(invite)
    assert (refused.status_code, refused.reason) == (513, "Message Too Large")
    await edge.logged("over MAX_SIZE (2000)")
    await register(edge, unit)  # smaller: passes
    assert (await unit.final_response()).status_code == 200


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/elsewhere", {}, 404),
        ("/", {"Origin": "https://evil.example"}, 403),
    ],
)
async def test_handshakes_the_edge_does_not_serve(edge, tls_files, path, headers, status):
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(STEP):
            await connect(f"wss://{edge.host}{path}", subprotocols=["sip"], ssl=trust, additional_headers=headers)  # type: ignore[list-item]
    assert refused.value.response.status_code == status


async def test_a_websocket_without_the_sip_subprotocol_is_refused(edge, tls_files):
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(STEP):
            await connect(edge.url, ssl=trust)
    assert refused.value.response.status_code == 400


async def test_an_allowed_origin_and_the_edges_own_are_let_in(start_edge, fake_hub, open_unit):
    edge = await start_edge([fake_hub.address], ALLOWED_ORIGINS="^https://desk\\.example$")
    for origin in ("https://desk.example", f"https://{edge.host}"):
        unit = await open_unit(edge, additional_headers={"Origin": origin})
        await register(edge, unit)
        assert (await unit.final_response()).status_code == 200


async def test_no_websocket_on_the_hubs_port(edge):
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(STEP):
            await connect(f"ws://{HOST}:{edge.hub_port}/", subprotocols=["sip"])  # type: ignore[list-item]
    assert refused.value.response.status_code == 403


async def test_sip_straight_over_tls_is_refused(edge, tls_files):
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    async with asyncio.timeout(STEP):
        reader, writer = await asyncio.open_connection(HOST, edge.wss_port, ssl=trust)
    stream = SipStream(reader, writer)
    await stream.send(parse_message(replay("register-first.sip", edge.host)))
    refused = await stream.final_response()
    stream.close()
    assert (refused.status_code, refused.reason) == (403, "Forbidden: WebSocket only")


async def test_a_request_from_an_address_that_is_not_a_hub_is_refused(edge, fake_hub, open_unit):
    stranger = await fake_hub.connect(edge, source="127.0.0.2")
    path = f"<sip:127.0.0.1:{edge.hub_port};transport=tcp;lr;received=127.0.0.1~1~6>"
    await stranger.send(hub_request("MESSAGE", fake_hub, "sip:x@y.invalid;transport=ws", [path]))
    refused = await stranger.final_response()
    assert (refused.status_code, refused.reason) == (403, "Forbidden: not a hub")
    await edge.logged("not a hub in DISPATCHER_LIST")


async def test_plain_websocket_for_a_lan_test(start_edge, fake_hub):
    edge = await start_edge([fake_hub.address], WITH_WS=None, WS_PORT=(port := free_port()))
    async with asyncio.timeout(STEP):
        websocket = await connect(f"ws://{HOST}:{port}/", subprotocols=["sip"])  # type: ignore[list-item]
    try:
        await websocket.send(replay("register-first.sip", edge.host))
        async with asyncio.timeout(STEP):
            answer = parse_message(await websocket.recv())
        assert isinstance(answer, Response) and answer.status_code == 200
        arrival = await fake_hub.next("REGISTER")
        assert "~5>" in (arrival.request.headers.get("Path") or "")  # received=ip~port~5: WS
    finally:
        async with asyncio.timeout(STEP):
            await websocket.close()


async def flood(edge: Edge, unit: RawSip) -> None:
    """Keep-alives from ``unit`` until ``edge`` refuses them."""
    for number in range(1, 100):
        if (await unit.exchange(keepalive(edge, number))).status_code == 503:
            return
    raise AssertionError("never refused")


async def refused_within(edge: Edge, unit: RawSip, seconds: float) -> bool:
    """Whether ``edge`` refuses ``unit`` within ``seconds``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while (await unit.exchange(keepalive(edge, 1))).status_code != 503:
                await asyncio.sleep(0.05)  # polling for the ban to come over DMQ, with the deadline above
            return True
    return False


async def test_two_edges_share_their_flood_bans(start_edge, fake_hub, open_unit):
    ports = free_port(), free_port()
    dmq = [f"sip:{HOST}:{port};transport=tcp" for port in ports]
    first = await start_edge(
        [fake_hub.address], hub_port=ports[0], WITH_DMQ=None, DMQ_SELF=dmq[0], DMQ_PEER=dmq[1], PIKE_DENSITY=10
    )
    # the second edge would let an address send 1000 requests in 2 s: a refusal there is the first's ban
    second = await start_edge(
        [fake_hub.address], hub_port=ports[1], WITH_DMQ=None, DMQ_SELF=dmq[1], DMQ_PEER=dmq[0], PIKE_DENSITY=1000
    )
    # a flooder of the first edge, a new address each time, until the two edges have found each
    # other over DMQ (a ban made before that stays the first edge's)
    async with asyncio.timeout(STEP):
        for source in (f"127.0.1.{host}" for host in itertools.count(1)):
            await flood(first, await open_unit(first, source=source))
            if await refused_within(second, await open_unit(second, source=source), 0.5):
                break
    assert "flood:" not in second.log()
    unit = await open_unit(second, source="127.0.0.4")
    await register(second, unit)
    assert (await unit.final_response()).status_code == 200


async def test_a_malformed_request_is_refused_before_any_hub(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    broken = fresh_register(edge).replace("CSeq: 1 REGISTER", "CSeq: 1 INVITE")
    await unit.send(broken)
    refused = await unit.final_response()
    assert (refused.status_code, refused.reason) == (400, "CSeq method does not match request method")
    assert fake_hub.arrivals.empty()
