"""The edge between units and hubs: REGISTER with Path and the unit's flow, requests of a hub
routed back by that Path, dialogs record-routed both ways (deploy/kamailio/kamailio.cfg)."""

from __future__ import annotations

import asyncio
import re
import secrets

from intercom.sip import Address, Dialog, Request, Response, SipUri, Via, make_response, parse_message

from ..conftest import RawSip, replay
from .edge import Edge, FakeHub, register_answer

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


async def registered(edge: Edge, hub: FakeHub, unit: RawSip) -> tuple[Request, Response]:
    """The unit's REGISTER as the hub got it, and the answer the unit got."""
    text = replay("register-first.sip", edge.host).replace("z9hG4bK3793391", f"z9hG4bK{secrets.token_hex(8)}")
    await unit.send(forged(text))  # a branch of its own: else the edge takes it for a resend
    arrival = await hub.next("REGISTER")
    return arrival.request, await unit.final_response()


def hub_request(method: str, hub: FakeHub, target: SipUri | str, route: list[str], body: bytes = b"") -> Request:
    """A new request of a hub's to a unit: to its Contact, by its Path."""
    request = Request(method=method, uri=target, body=body)
    request.headers.add("Via", f"SIP/2.0/TCP {hub.address};branch=z9hG4bK{secrets.token_hex(8)}")
    for value in route:
        request.headers.add("Route", value)
    request.headers.add("Max-Forwards", "70")
    request.headers.add("From", f"<sip:door@{hub.address}>;tag={secrets.token_hex(4)}")
    request.headers.add("To", f"<{target}>")
    request.headers.add("Call-ID", secrets.token_hex(8))
    request.headers.add("CSeq", f"1 {method}")
    request.headers.add("Contact", f"<sip:hub@{hub.address};transport=tcp>")
    return request


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
    register, _ = await registered(edge, fake_hub, unit)
    hub = await fake_hub.connect(edge)
    message = hub_request("MESSAGE", fake_hub, register.contacts[0].uri, register.headers.get_all("Path"), b"hi")
    await hub.send(message)

    got = await unit.receive()
    assert isinstance(got, Request) and got.method == "MESSAGE"
    assert (got.call_id, got.body, str(got.uri)) == (message.call_id, b"hi", str(message.uri))
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
    await hub.send(hub_request("MESSAGE", fake_hub, register.contacts[0].uri, register.headers.get_all("Path")))
    async with asyncio.timeout(QUICK):
        answer = await hub.final_response()
    assert answer.status_code in (404, 480), answer.start_line()


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

    # the unit's in-dialog requests reach the hub, flow added; the ACK too
    await unit.send(unit_dialog.create_ack(invite.cseq.number, unit_via))
    assert (await fake_hub.next()).request.method == "ACK"
    await unit.send(unit_dialog.create_request("INFO", unit_via, body=b"dtmf"))
    info = await fake_hub.next()
    assert (info.request.method, info.request.body) == ("INFO", b"dtmf")
    flow_of(unit, info.request)
    await info.answer(200)
    assert (await unit.final_response()).status_code == 200

    # the hub hangs up: its BYE goes by the Record-Route to the unit's WebSocket
    hub_dialog = Dialog.from_uas(at_hub, "hubtag", hub_contact)
    hub = await fake_hub.connect(edge)
    await hub.send(hub_dialog.create_request("BYE", Via.parse(f"SIP/2.0/TCP {fake_hub.address}")))
    bye = await unit.receive()
    assert isinstance(bye, Request) and (bye.method, bye.call_id) == ("BYE", invite.call_id)
    await unit.send(make_response(bye, 200))
    assert (await hub.final_response()).status_code == 200


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
