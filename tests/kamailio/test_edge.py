"""The edge between units and hubs: REGISTER with Path and the unit's flow, requests of a hub
routed back by that Path, dialogs record-routed both ways (deploy/kamailio/kamailio.cfg)."""

from __future__ import annotations

import asyncio
import re

from intercom.sip import Address, Dialog, Request, Response, SipUri, Via, make_cancel, make_response, parse_message

from ..conftest import RawSip, replay
from ..units import STEP
from .edge import Edge, FakeHub, SipStream, by_path, fresh_register, next_at_any, register_answer

FLOW = re.compile(r"^edge1;127\.0\.0\.1:(\d+);(\d+)$")
QUICK = 1.0  # seconds: far below every timer of the edge's (UNIT_TIMEOUT is 8 s)


def forged(text: str) -> str:
    """A unit's message with P-Intercom headers of its own, in two spellings: the edge drops both."""
    head, _, rest = text.partition("\r\n")
    return f"{head}\r\nP-Intercom-Flow: edge9;6.6.6.6:66;1\r\np-intercom-source: door\r\n{rest}"


def flow_of(unit: RawSip, request: Request) -> re.Match[str]:
    """The request's one P-Intercom-Flow, checked to name this edge and the unit's socket."""
    assert len(request.headers.get_all("P-Intercom-Flow")) == 1, request.headers
    assert "P-Intercom-Source" not in request.headers
    flow = FLOW.match(request.headers.get("P-Intercom-Flow") or "")
    assert flow is not None, request.headers.get("P-Intercom-Flow")
    assert int(flow.group(1)) == unit.websocket.local_address[1]
    return flow


async def ringing(peer: RawSip) -> Response:
    """The next response past the edge's own 100 Trying."""
    async with asyncio.timeout(STEP):
        while True:
            message = await peer.receive()
            if isinstance(message, Response) and message.status_code != 100:
                return message


async def registered(edge: Edge, hub: FakeHub, unit: RawSip) -> tuple[Request, Response]:
    """The unit's REGISTER as the hub got it, and the answer the unit got."""
    await unit.send(forged(fresh_register(edge)))
    arrival = await hub.next("REGISTER")
    return arrival.request, await unit.final_response()


async def sent_by_path(
    edge: Edge, fake_hub: FakeHub, unit: RawSip, method: str, body: bytes = b""
) -> tuple[SipStream, Request, Request]:
    """The unit registered, then a request of the hub's to it by the Path: the hub's connection,
    the request it sent and the request as the unit got it."""
    register, _ = await registered(edge, fake_hub, unit)
    hub = await fake_hub.connect(edge)
    request = by_path(method, fake_hub, register, body)
    await hub.send(request)
    at_unit = await unit.receive()
    assert isinstance(at_unit, Request) and (at_unit.method, at_unit.call_id) == (method, request.call_id)
    return hub, request, at_unit


async def unit_hangs_up(unit: RawSip, dialog: Dialog, fake_hub: FakeHub) -> None:
    """The unit's BYE in ``dialog`` reaches the hub with the unit's flow, and the hub's 200 the unit."""
    await unit.send(dialog.create_request("BYE", Via.parse("SIP/2.0/WSS lu88cps5llju.invalid")))
    bye = await fake_hub.next()
    assert (bye.request.method, bye.request.call_id) == ("BYE", dialog.call_id)
    flow_of(unit, bye.request)
    await bye.answer(200)
    assert (await unit.final_response()).status_code == 200


async def test_register_reaches_a_hub_with_path_and_flow(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    sent = parse_message(replay("register-first.sip", edge.host))
    request, response = await registered(edge, fake_hub, unit)

    # the edge's own Via over TCP on its hubs' port, the unit's below it
    assert [via.sent_by for via in request.vias] == [f"127.0.0.1:{edge.hub_port}", "lu88cps5llju.invalid"]
    assert request.top_via.transport == "TCP"
    # one Path: this edge's hubs' side, and the unit's socket (ip~port~proto, 6: WSS)
    [path] = [Address.parse(value).uri for value in request.headers.get_all("Path")]
    assert (path.host, path.port, path.params.get("transport")) == ("127.0.0.1", edge.hub_port, "tcp")
    assert "lr" in path.params
    unit_port = unit.websocket.local_address[1]
    assert path.params["received"] == f"127.0.0.1~{unit_port}~6"
    flow_of(unit, request)
    assert "Record-Route" not in request.headers
    for name in ("Contact", "WebRTC-Token", "From", "To", "Call-ID", "CSeq", "Expires"):
        assert request.headers.get(name) == sent.headers.get(name)

    # the hub's answer comes back as it was, its JSON body included
    expected = register_answer(request, fake_hub.address)
    assert (response.status_code, response.body) == (200, expected.body)
    assert response.headers.get("Content-Type") == "application/json"
    assert response.headers.get_lines("Contact") == sent.headers.get_lines("Contact")
    assert response.top_via.branch == request.vias[1].branch


async def test_the_flow_names_each_connection(edge, fake_hub, open_unit):
    first, second = await open_unit(edge), await open_unit(edge)
    flows = []
    for unit in (first, second):
        request, _ = await registered(edge, fake_hub, unit)
        flows.append(flow_of(unit, request).group(0))
    assert flows[0] != flows[1]


async def test_a_hub_request_by_the_path_reaches_the_unit_and_its_answer_comes_back(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    hub, message, got = await sent_by_path(edge, fake_hub, unit, "MESSAGE", b"hi")
    assert (got.body, str(got.uri)) == (b"hi", str(message.uri))
    assert "Route" not in got.headers
    assert len(got.headers.get_all("Record-Route")) == 2  # the hubs' side and the units' side
    await unit.send(make_response(got, 200, to_tag="unit"))
    answer = await hub.final_response()
    assert (answer.status_code, answer.call_id) == (200, message.call_id)


async def test_a_request_to_a_unit_whose_socket_is_gone_is_refused_at_once(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    register, _ = await registered(edge, fake_hub, unit)
    async with asyncio.timeout(QUICK):
        await unit.websocket.close()
    hub = await fake_hub.connect(edge)
    await hub.send(by_path("MESSAGE", fake_hub, register))
    async with asyncio.timeout(QUICK):
        answer = await hub.final_response()
    assert (answer.status_code, answer.reason) == (480, "Temporarily Unavailable: unit not connected")


async def test_a_unit_call_is_record_routed_and_its_dialog_follows_the_route(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    invite = parse_message(replay("invite.sip", edge.host))
    assert isinstance(invite, Request)
    await unit.send(forged(invite.text()))

    arrival = await fake_hub.next("INVITE")
    at_hub = arrival.request
    flow_of(unit, at_hub)
    record_routes = [Address.parse(value).uri for value in at_hub.headers.get_all("Record-Route")]
    assert [(uri.port, uri.params.get("transport")) for uri in record_routes] == [
        (edge.hub_port, "tcp"),
        (edge.wss_port, "ws"),
    ]
    # the unit's Contact carries its WebSocket, for the hub's requests in the dialog
    [contact] = at_hub.contacts
    assert contact.uri.params["alias"] == f"127.0.0.1~{unit.websocket.local_address[1]}~6"
    assert at_hub.body == invite.body

    hub_contact = Address(SipUri.parse(f"sip:hub@{fake_hub.address};transport=tcp"))
    await arrival.answer(200, headers=[("Contact", str(hub_contact))], body=b"v=0\r\n")
    answer = await unit.final_response()
    assert answer.status_code == 200
    unit_dialog = Dialog.from_uac(invite, answer)
    unit_via = Via.parse("SIP/2.0/WSS lu88cps5llju.invalid")

    # the ACK reaches the hub by the route
    await unit.send(unit_dialog.create_ack(invite.cseq.number, unit_via))
    ack = await fake_hub.next()
    assert ack.request.method == "ACK"
    flow_of(unit, ack.request)

    # the hub's in-dialog request goes by the Record-Route to the unit's WebSocket (the alias)
    hub_dialog = Dialog.from_uas(at_hub, "hubtag", hub_contact)
    hub = await fake_hub.connect(edge)
    await hub.send(hub_dialog.create_request("INFO", Via.parse(f"SIP/2.0/TCP {fake_hub.address}"), body=b"dtmf"))
    info = await unit.receive()
    assert isinstance(info, Request) and (info.method, info.call_id, info.body) == ("INFO", invite.call_id, b"dtmf")
    await unit.send(make_response(info, 200))
    assert (await hub.final_response()).status_code == 200

    # the unit hangs up: its BYE follows the route to the hub, with the unit's flow
    await unit_hangs_up(unit, unit_dialog, fake_hub)


async def test_a_unit_cannot_route_its_dialog_elsewhere(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    invite = parse_message(replay("invite.sip", edge.host))
    await unit.send(invite.text())
    arrival = await fake_hub.next("INVITE")
    await arrival.answer(200, headers=[("Contact", "<sip:hub@127.0.0.2:5999;transport=tcp>")])
    dialog = Dialog.from_uac(invite, await unit.final_response())

    # the Route set is the edge's, but the target is not a hub: refused, nothing relayed
    await unit.send(dialog.create_request("BYE", Via.parse("SIP/2.0/WSS lu88cps5llju.invalid")))
    refused = await unit.final_response()
    assert (refused.status_code, refused.reason) == (403, "Forbidden: not a hub")


async def test_an_initial_request_with_a_route_is_refused(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    message = parse_message(replay("message.sip", edge.host))
    message.headers.add("Route", f"<sip:127.0.0.1:{edge.wss_port};transport=ws;lr>")
    message.headers.add("Route", "<sip:127.0.0.2:5999;transport=tcp;lr>")
    await unit.send(message)
    refused = await unit.final_response()
    assert refused.status_code == 403
    assert fake_hub.arrivals.empty()


async def test_a_keepalive_options_is_answered_by_the_edge(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    options = Request(method="OPTIONS", uri=SipUri.parse(f"sip:{edge.host}"))
    for name, value in parse_message(replay("register-first.sip", edge.host)).headers:
        if name in ("Via", "From", "To", "Call-ID", "Max-Forwards"):
            options.headers.add(name, value)
    options.headers.add("CSeq", "7 OPTIONS")
    answer = await unit.exchange(options)
    assert answer.status_code == 200
    assert answer.headers.get("Server") == "intercom-edge"
    assert fake_hub.arrivals.empty()


async def test_a_hub_call_to_a_unit_by_the_path_and_its_dialog(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    hub, invite, at_unit = await sent_by_path(edge, fake_hub, unit, "INVITE", b"v=0\r\n")
    assert at_unit.body == b"v=0\r\n"
    unit_contact = Address(SipUri.parse("sip:desk@lu88cps5llju.invalid;transport=ws"))
    await unit.send(make_response(at_unit, 180, to_tag="desk"))
    await unit.send(make_response(at_unit, 200, to_tag="desk", headers=[("Contact", str(unit_contact))]))
    assert (await ringing(hub)).status_code == 180
    answer = await hub.final_response()
    assert answer.status_code == 200
    # the unit's Contact carries its WebSocket for the hub's in-dialog requests
    [contact] = answer.contacts
    assert contact.uri.params["alias"] == f"127.0.0.1~{unit.websocket.local_address[1]}~6"

    hub_dialog = Dialog.from_uac(invite, answer)
    hub_via = Via.parse(f"SIP/2.0/TCP {fake_hub.address}")
    await hub.send(hub_dialog.create_ack(invite.cseq.number, hub_via))
    ack = await unit.receive()
    assert isinstance(ack, Request) and ack.method == "ACK"

    # the unit hangs up by the Record-Route it got in the INVITE
    await unit_hangs_up(unit, Dialog.from_uas(at_unit, "desk", unit_contact), fake_hub)


async def test_a_unit_cancels_its_ringing_call(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    invite = parse_message(replay("invite.sip", edge.host))
    assert isinstance(invite, Request)
    await unit.send(invite)
    arrival = await fake_hub.next("INVITE")
    await arrival.answer(180)
    assert (await ringing(unit)).status_code == 180

    await unit.send(make_cancel(invite))
    assert (await unit.final_response()).status_code == 200  # the edge's answer to the CANCEL
    cancel = await fake_hub.next("CANCEL")
    assert cancel.request.headers.get("P-Intercom-Flow") == arrival.request.headers.get("P-Intercom-Flow")
    assert (cancel.request.call_id, cancel.request.cseq.number) == (invite.call_id, invite.cseq.number)
    await cancel.answer(200)
    await arrival.answer(487)
    refused = await unit.final_response()
    assert (refused.status_code, refused.cseq.method) == (487, "INVITE")
    ack = await fake_hub.next("ACK")  # the edge's own, hop by hop, with the flow too
    assert ack.request.headers.get("P-Intercom-Flow") == arrival.request.headers.get("P-Intercom-Flow")


async def test_a_hub_cancels_a_ringing_unit(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    hub, invite, at_unit = await sent_by_path(edge, fake_hub, unit, "INVITE")
    await unit.send(make_response(at_unit, 180, to_tag="desk"))
    assert (await ringing(hub)).status_code == 180

    await hub.send(make_cancel(invite))
    cancel = await unit.receive()
    assert isinstance(cancel, Request) and (cancel.method, cancel.call_id) == ("CANCEL", invite.call_id)
    await unit.send(make_response(cancel, 200))
    await unit.send(make_response(at_unit, 487, to_tag="desk"))
    answers = {}
    async with asyncio.timeout(STEP):
        while len(answers) < 2:
            message = await hub.receive()
            if isinstance(message, Response) and message.status_code >= 200:
                answers[message.cseq.method] = message.status_code
    assert answers == {"CANCEL": 200, "INVITE": 487}


async def test_a_closed_websocket_is_told_to_every_hub(start_edge, fake_hubs, open_unit):
    edge = await start_edge([hub.address for hub in fake_hubs])
    unit = await open_unit(edge)
    await unit.send(fresh_register(edge))
    _, arrival = await next_at_any(fake_hubs, "REGISTER")
    register = arrival.request
    async with asyncio.timeout(QUICK):
        await unit.websocket.close()
    for hub in fake_hubs:  # the one that carries a call of this unit must hear it, whichever it is
        notify = await hub.next("NOTIFY")
        assert notify.request.headers.get("P-Intercom-Flow") == register.headers.get("P-Intercom-Flow")
        await notify.answer(200)


async def test_a_closed_websocket_is_told_to_a_hub(edge, fake_hub, open_unit):
    unit = await open_unit(edge)
    register, _ = await registered(edge, fake_hub, unit)
    async with asyncio.timeout(QUICK):
        await unit.websocket.close()
    notify = await fake_hub.next("NOTIFY")
    assert notify.request.headers.get("Event") == "intercom-flow-closed"
    assert notify.request.headers.get("P-Intercom-Flow") == register.headers.get("P-Intercom-Flow")
    assert notify.request.uri == SipUri.parse(f"sip:{fake_hub.address};transport=tcp")
    await notify.answer(200)
