"""The hub behind a SIP proxy (docs/proxy.md), with a fake edge in the test: a TCP peer that sends
what Kamailio (deploy/kamailio/) sends a hub, and listens where its Path says it does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from intercom.auth import ADMIN
from intercom.hub import HubConfig
from intercom.hub.callflows import CallFlow
from intercom.hub.edge_flows import EdgeFlow
from intercom.hub.records import Registration
from intercom.hub.registrar import MAX_CONTACTS_PER_IDENTITY
from intercom.sip import Address, Request, Response, make_response, parse_message
from intercom.sip.ids import new_branch
from intercom.transport.stream import StreamFramer

from ..conftest import Hub, replay
from ..units import STEP, store_flow

EDGE = "127.0.0.1"


@pytest.fixture
def hub_config(hub_config: HubConfig) -> HubConfig:
    return replace(hub_config, sip_proxy_listen=f"{EDGE}:0", sip_proxies=(EDGE,))


class FakeEdge:
    """Relays units' requests to the hub over one TCP connection, adding what Kamailio adds (its
    Via on top, Record-Route, Path on REGISTER, P-Intercom-Flow), and takes the hub's own requests
    on a listening socket of its own, the address its Path and Record-Route name."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[Request | Response, asyncio.StreamWriter]] = asyncio.Queue()
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None
        self.to_hub: asyncio.StreamWriter | None = None

    async def start(self, hub_listen: str, source: str = EDGE) -> None:
        self._server = await asyncio.start_server(self._read, EDGE, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        host, _, port = hub_listen.rpartition(":")
        reader, self.to_hub = await asyncio.open_connection(host, int(port), local_addr=(source, 0))
        self.writers.append(self.to_hub)
        self._tasks.append(asyncio.create_task(self._feed(reader, self.to_hub)))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        await self._feed(reader, writer)

    async def _feed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = StreamFramer()
        while data := await reader.read(65536):
            for message in framer.feed(data):
                await self.received.put((parse_message(message), writer))

    async def close(self) -> None:
        for writer in self.writers:
            writer.close()
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task

    @property
    def route(self) -> str:
        return f"<sip:{EDGE}:{self.port};transport=tcp;lr;r2=on>"

    def relayed(self, text: str, flow: str | None, *, path: bool = False, record_route: bool = False) -> str:
        """A unit's request as the edge relays it: its Via on top, and the headers it adds."""
        request = parse_message(text)
        assert isinstance(request, Request)
        top = f"SIP/2.0/TCP {EDGE}:{self.port};branch={new_branch()}"
        request.headers = type(request.headers)([("Via", top), *request.headers])
        if record_route:
            request.headers.add("Record-Route", f"{self.route}, <sip:{EDGE}:{self.port + 1};transport=ws;lr;r2=on>")
        if path:
            request.headers.add("Path", f"<sip:{EDGE}:{self.port};transport=tcp;lr;received=sip:127.0.0.1:40000>")
        if flow is not None:
            request.headers.add("P-Intercom-Flow", flow)
        return request.text()

    async def send(self, text: str, writer: asyncio.StreamWriter | None = None) -> None:
        writer = writer or self.to_hub
        assert writer is not None
        writer.write(text.encode())
        await writer.drain()

    async def next(self, wanted: type[Request] | type[Response], method: str | None = None) -> Request | Response:
        """The next message of that kind (and method, for a request, or final, for a response)."""
        async with asyncio.timeout(STEP):
            while True:
                message, self.last_writer = await self.received.get()
                if not isinstance(message, wanted):
                    continue
                if isinstance(message, Response) and message.status_code < 200:
                    continue
                if method is None or message.cseq.method == method:
                    return message


@pytest.fixture
async def edge(hub: Hub) -> AsyncIterator[FakeEdge]:
    fake = FakeEdge()
    async with asyncio.timeout(STEP):
        await fake.start(hub.running.app.state.edge.flows.address.host)
    yield fake
    async with asyncio.timeout(STEP):
        await fake.close()


async def register(hub: Hub, edge: FakeEdge, flow: str, identity: str = "desk") -> Response:
    await edge.send(edge.relayed(replay("register-first.sip", hub.address, hub.token(identity)), flow, path=True))
    response = await edge.next(Response, "REGISTER")
    assert isinstance(response, Response)
    return response


async def test_published_register_through_the_edge_binds_the_flow(hub: Hub, edge: FakeEdge) -> None:
    response = await register(hub, edge, "edge1;127.0.0.1:40000;7")

    assert response.status_code == 200
    assert len(response.headers.get_all("Via")) == 2  # the edge's and the unit's, both kept
    [binding] = await hub.running.registrar.find("desk")
    assert isinstance(binding.connection, EdgeFlow)
    assert binding.connection.key == (EDGE, "edge1;127.0.0.1:40000;7")
    assert binding.path == (f"<sip:{EDGE}:{edge.port};transport=tcp;lr;received=sip:127.0.0.1:40000>",)


async def test_a_refresh_from_the_same_flow_keeps_one_binding_a_new_flow_adds_one(hub: Hub, edge: FakeEdge) -> None:
    assert (await register(hub, edge, "edge1;a;1")).status_code == 200
    assert (await register(hub, edge, "edge1;a;1")).status_code == 200
    assert len(await hub.running.registrar.find("desk")) == 1
    assert (await register(hub, edge, "edge1;b;2")).status_code == 200
    flows = {binding.connection.key[1] for binding in await hub.running.registrar.find("desk")}  # type: ignore[attr-defined]
    assert flows == {"edge1;a;1", "edge1;b;2"}


async def test_a_request_from_the_edge_without_a_flow_is_refused(hub: Hub, edge: FakeEdge) -> None:
    await edge.send(edge.relayed(replay("register-first.sip", hub.address, hub.token()), None, path=True))
    response = await edge.next(Response, "REGISTER")

    assert isinstance(response, Response) and response.status_code == 400
    assert "P-Intercom-Flow" in response.reason
    assert await hub.running.registrar.find("desk") == []


async def test_a_register_whose_path_is_not_an_edge_is_refused(hub: Hub, edge: FakeEdge) -> None:
    text = edge.relayed(replay("register-first.sip", hub.address, hub.token()), "edge1;a;1")
    text = text.replace("Content-Length:", "Path: <sip:192.0.2.1:5060;transport=tcp;lr>\r\nContent-Length:")
    await edge.send(text)
    response = await edge.next(Response, "REGISTER")

    assert isinstance(response, Response) and response.status_code == 400
    assert "192.0.2.1:5060 is not a SIP proxy" in response.reason
    assert await hub.running.registrar.find("desk") == []


async def test_the_edge_probing_with_options_gets_200(hub: Hub, edge: FakeEdge) -> None:
    options = (
        f"OPTIONS sip:{edge.to_hub.get_extra_info('peername')[0]} SIP/2.0\r\n"  # type: ignore[union-attr]
        f"Via: SIP/2.0/TCP {EDGE}:{edge.port};branch={new_branch()}\r\n"
        "From: <sip:edge@intercom-edge.invalid>;tag=1\r\nTo: <sip:hub@127.0.0.1>\r\nCall-ID: probe1\r\n"
        "CSeq: 10 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    await edge.send(options)
    response = await edge.next(Response, "OPTIONS")
    assert isinstance(response, Response) and response.status_code == 200


async def test_a_flow_forged_over_a_websocket_is_not_believed(hub: Hub, raw_sip) -> None:
    sip = await raw_sip()
    text = replay("register-first.sip", hub.address, hub.token())
    forged = text.replace(
        "Content-Length:",
        f"P-Intercom-Flow: edge1;127.0.0.1:40000;7\r\nPath: <sip:{EDGE}:5060;transport=tcp;lr>\r\nContent-Length:",
    )
    response = await sip.exchange(forged)

    assert response.status_code == 200
    [binding] = await hub.running.registrar.find("desk")
    assert not isinstance(binding.connection, EdgeFlow)
    assert binding.path == ()


async def test_a_connection_from_an_address_that_is_not_a_proxy_is_refused(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    host, _, port = hub.running.app.state.edge.flows.address.host.rpartition(":")
    with caplog.at_level(logging.WARNING, "intercom.transport.stream"):
        async with asyncio.timeout(STEP):
            reader, writer = await asyncio.open_connection(host, int(port), local_addr=("127.0.0.2", 0))
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""  # closed at once, before a byte
        writer.close()
    refusals = [record for record in caplog.records if "not a SIP proxy of this hub" in record.getMessage()]
    assert len(refusals) == 1 and "127.0.0.2" in refusals[0].getMessage()


async def test_an_oversized_message_closes_the_connection_with_one_line(
    hub: Hub, edge: FakeEdge, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "intercom.transport.stream"):
        await edge.send("OPTIONS sip:hub SIP/2.0\r\nContent-Length: 100000\r\n\r\n")
        async with asyncio.timeout(STEP):
            while not edge.to_hub.is_closing():  # type: ignore[union-attr]
                if edge._tasks[0].done():
                    break
                await asyncio.sleep(0.01)
    lines = [record.getMessage() for record in caplog.records if "closed the SIP/TCP connection" in record.getMessage()]
    assert len(lines) == 1 and "over the limit of 65536" in lines[0]


async def door_flow(hub: Hub, flow_id: str = "door") -> None:
    async with asyncio.timeout(STEP):
        await store_flow(hub, flow_id, "client:desk")


async def invite(hub: Hub, edge: FakeEdge, flow: str, call_flow: str = "door") -> Request:
    token = hub.token("door", incoming=False, outgoing=call_flow)
    text = edge.relayed(replay("invite.sip", hub.address, token), flow, record_route=True)
    await edge.send(text)
    sent = parse_message(text)
    assert isinstance(sent, Request)
    return sent


async def test_a_door_call_rings_the_desk_through_its_path(hub: Hub, edge: FakeEdge) -> None:
    await door_flow(hub)
    assert (await register(hub, edge, "edge1;desk;1")).status_code == 200
    await invite(hub, edge, "edge1;door;2")

    to_desk = await edge.next(Request, "INVITE")
    assert isinstance(to_desk, Request)
    assert str(to_desk.uri) == "sip:2esjnui5@lu88cps5llju.invalid;transport=ws"  # the desk's Contact
    assert to_desk.headers.get_all("Route") == [
        f"<sip:{EDGE}:{edge.port};transport=tcp;lr;received=sip:127.0.0.1:40000>"
    ]
    listen = hub.running.app.state.edge.flows.address.host
    assert str(to_desk.top_via).startswith(f"SIP/2.0/TCP {listen};branch=")
    assert Address.parse(to_desk.headers.get("Contact") or "").uri.params.get("transport") == "tcp"
    assert edge.last_writer is not edge.to_hub  # on the hub's own connection to the edge's address

    await edge.send(make_response(to_desk, 486, to_tag="desk1").text(), edge.last_writer)
    answer = await edge.next(Response, "INVITE")
    assert isinstance(answer, Response) and answer.status_code == 486
    assert len(answer.headers.get_all("Via")) == 2  # the door's answer, back on the edge's connection


async def test_a_bye_from_another_flow_is_refused_and_the_hub_routes_its_own_bye_by_record_route(
    hub: Hub, edge: FakeEdge
) -> None:
    await hub.storage.create_call_flow(
        CallFlow.model_validate(
            {"id": "wait", "title": "wait", "steps": [{"id": "w", "action": "pause", "options": {"length": 30}}]}
        )
    )
    sent = await invite(hub, edge, "edge1;door;2", call_flow="wait")
    ok = await edge.next(Response, "INVITE")
    assert isinstance(ok, Response) and ok.status_code == 200
    assert ok.headers.get_all("Record-Route") == sent.headers.get_all("Record-Route")

    def in_dialog(method: str, cseq: int, flow: str) -> str:
        return edge.relayed(
            f"{method} {ok.contacts[0].uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/WSS setdn3a1sf12.invalid;branch={new_branch()}\r\n"
            f"Route: {edge.route}\r\nMax-Forwards: 69\r\n"
            f"To: {ok.headers.get('To')}\r\nFrom: {sent.headers.get('From')}\r\nCall-ID: {sent.call_id}\r\n"
            f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            flow,
        )

    await edge.send(in_dialog("ACK", 3046, "edge1;door;2"))
    await edge.send(in_dialog("BYE", 3047, "edge1;thief;9"))
    refused = await edge.next(Response, "BYE")
    assert isinstance(refused, Response) and refused.status_code == 403
    assert len(hub.running.app.state.calls.calls) == 1

    [call] = hub.running.app.state.calls.calls.values()
    hanging_up = asyncio.create_task(hub.running.app.state.calls.hang_up(call.record.id))
    bye = await edge.next(Request, "BYE")
    assert isinstance(bye, Request)
    assert str(bye.uri) == "sip:meo2iuvm@setdn3a1sf12.invalid;transport=ws;ob"  # the door's Contact
    assert bye.headers.get_all("Route") == sent.headers.get_all("Record-Route")  # the UAS's route set, in order
    await edge.send(make_response(bye, 200).text(), edge.last_writer)
    async with asyncio.timeout(STEP):
        assert await hanging_up


async def test_a_desk_whose_edge_cannot_be_reached_is_not_answered(hub: Hub, edge: FakeEdge) -> None:
    await door_flow(hub)
    assert (await register(hub, edge, "edge1;desk;1")).status_code == 200
    assert edge._server is not None
    edge._server.close()  # the desk's Path names this listener: nothing takes the hub's connection now
    async with asyncio.timeout(STEP):
        await edge._server.wait_closed()
    await invite(hub, edge, "edge1;door;2")

    answer = await edge.next(Response, "INVITE")
    assert isinstance(answer, Response) and answer.status_code == 480


def flow_closed(edge: FakeEdge, flow: str, event: str = "intercom-flow-closed") -> str:
    """The edge's NOTIFY when a unit's WebSocket closed (deploy/kamailio/kamailio.cfg)."""
    return (
        f"NOTIFY sip:hub@{EDGE} SIP/2.0\r\nVia: SIP/2.0/TCP {EDGE}:{edge.port};branch={new_branch()}\r\n"
        f"From: <sip:edge@intercom-edge.invalid>;tag=n1\r\nTo: <sip:hub@{EDGE}>\r\nCall-ID: {new_branch()}\r\n"
        f"CSeq: 1 NOTIFY\r\nMax-Forwards: 70\r\nEvent: {event}\r\nSubscription-State: terminated\r\n"
        f"P-Intercom-Flow: {flow}\r\nContent-Length: 0\r\n\r\n"
    )


async def test_the_edge_telling_a_websocket_closed_drops_its_bindings_and_ends_its_calls(
    hub: Hub, edge: FakeEdge
) -> None:
    await door_flow(hub)
    assert (await register(hub, edge, "edge1;desk;1")).status_code == 200
    assert (await register(hub, edge, "edge1;laptop;3")).status_code == 200
    await invite(hub, edge, "edge1;door;2")
    ringing = [await edge.next(Request, "INVITE") for _ in range(2)]  # the desk and the laptop ring
    assert len(hub.running.app.state.calls.calls) == 1

    await edge.send(flow_closed(edge, "edge1;desk;1", event="presence"))
    refused = await edge.next(Response, "NOTIFY")
    assert isinstance(refused, Response) and refused.status_code == 489  # not an event of ours
    assert len(await hub.running.registrar.find("desk")) == 2

    await edge.send(flow_closed(edge, "edge1;desk;1"))
    told = await edge.next(Response, "NOTIFY")
    assert isinstance(told, Response) and told.status_code == 200
    [left] = await hub.running.registrar.find("desk")
    assert left.connection.key[1] == "edge1;laptop;3"  # type: ignore[attr-defined]

    await edge.send(flow_closed(edge, "edge1;door;2"))  # the caller's WebSocket: its call ends
    assert isinstance(await edge.next(Response, "NOTIFY"), Response)
    cancel = await edge.next(Request, "CANCEL")  # the laptop's leg (the desk's ended with its flow)
    assert isinstance(cancel, Request)
    await edge.send(make_response(cancel, 200).text(), edge.last_writer)
    [leg] = [sent for sent in ringing if sent.top_via.branch == cancel.top_via.branch]  # type: ignore[union-attr]
    await edge.send(make_response(leg, 487, to_tag="gone").text(), edge.last_writer)
    async with asyncio.timeout(STEP):
        while hub.running.app.state.calls.calls:
            await asyncio.sleep(0.01)  # polling the hub's calls, with the deadline above


# -- the location the hubs share (intercom/hub/shared_location.py) ------------------------------


def row_of(hub: Hub, flow: str, uri: str, identity: str = "desk", **fields: object) -> Registration:
    """A binding as another hub behind the same edge stores it."""
    values: dict[str, object] = {
        "edge": EDGE, "flow": flow, "uri": uri, "contact": f"<{uri}>;+sip.ice",
        "path": f"<sip:{EDGE}:5060;transport=tcp;lr>", "identity": identity, "key_group": None,
        "access_key_id": hub.key.id, "incoming": True, "expires_at": time.time() + 60,
        "user_agent": None, "hub": "hub-b",
    }  # fmt: skip
    return Registration(**{**values, **fields})  # type: ignore[arg-type]


async def test_a_binding_is_its_row_whichever_hub_wrote_it(hub: Hub, edge: FakeEdge) -> None:
    storage = hub.running.app.state.storage
    assert (await register(hub, edge, "edge1;a;1")).status_code == 200
    [row] = await storage.registrations("desk", time.time())
    assert (row.edge, row.flow, row.hub, row.incoming) == (EDGE, "edge1;a;1", storage.hub_id, True)

    # another hub took the flow's next REGISTER: this hub believes the row, not what it saw
    moved = replace(row, path=f"<sip:{EDGE}:{edge.port};transport=tcp;lr;received=elsewhere>", hub="hub-b")
    await storage.save_flow_registrations(EDGE, "edge1;a;1", [moved])
    [binding] = await hub.running.registrar.find("desk")
    assert binding.path == (moved.path,)
    # and a flow only another hub saw rings too
    await storage.save_flow_registrations(EDGE, "edge1;b;2", [row_of(hub, "edge1;b;2", "sip:b@y.invalid")])
    assert {binding.key for binding in await hub.running.registrar.find("desk")} == {row.uri, "sip:b@y.invalid"}
    # an un-REGISTER through another hub: gone here too
    await storage.save_flow_registrations(EDGE, "edge1;a;1", [])
    [left] = await hub.running.registrar.find("desk")
    assert left.key == "sip:b@y.invalid"


async def test_a_refresh_only_updates_its_rows(hub: Hub, edge: FakeEdge, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = hub.running.app.state.storage
    assert (await register(hub, edge, "edge1;a;1")).status_code == 200
    [first] = await storage.registrations("desk", time.time())

    async def rewritten(*args: object) -> None:
        raise AssertionError("a refresh rewrote the flow's rows")

    monkeypatch.setattr(storage, "save_flow_registrations", rewritten)
    assert (await register(hub, edge, "edge1;a;1")).status_code == 200  # the same Contact, a new token
    [again] = await storage.registrations("desk", time.time())
    assert again.expires_at > first.expires_at and again.contact == first.contact


async def test_the_identity_limit_counts_the_bindings_every_hub_took(hub: Hub, edge: FakeEdge) -> None:
    storage = hub.running.app.state.storage
    for n in range(MAX_CONTACTS_PER_IDENTITY):
        await storage.save_flow_registrations(EDGE, f"edge1;o;{n}", [row_of(hub, f"edge1;o;{n}", f"sip:{n}@o.invalid")])
    refused = await register(hub, edge, "edge1;new;1")
    assert refused.status_code == 403
    assert f"at most {MAX_CONTACTS_PER_IDENTITY} contacts for identity desk" in refused.reason
    assert await storage.flow_registrations(EDGE, "edge1;new;1", time.time()) == []  # nothing stored
    await storage.delete_flow_registrations(EDGE, "edge1;o;0")
    assert (await register(hub, edge, "edge1;new;1")).status_code == 200


async def test_a_revoked_keys_rows_go_whichever_hub_wrote_them(hub: Hub, edge: FakeEdge) -> None:
    storage = hub.running.app.state.storage
    phone = await storage.create_key("phone", ADMIN)
    await storage.save_flow_registrations(
        EDGE, "edge1;p;1", [row_of(hub, "edge1;p;1", "sip:p@p.invalid", access_key_id=phone.id)]
    )
    assert (await register(hub, edge, "edge1;a;1")).status_code == 200
    await storage.revoke_key(phone.id)
    async with asyncio.timeout(STEP):
        while await storage.flow_registrations(EDGE, "edge1;p;1", time.time()):
            await asyncio.sleep(0.05)  # polling the table for the sweeper's work, with the deadline above
    assert [binding.key for binding in await hub.running.registrar.find("desk")] != []  # the other key's stays


async def test_a_database_that_fails_a_register_gets_500_and_the_unit_tries_again(
    hub: Hub, edge: FakeEdge, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    storage = hub.running.app.state.storage

    async def down(*args: object) -> None:
        raise OSError("connection to the database lost")

    monkeypatch.setattr(storage, "save_flow_registrations", down)
    failed = await register(hub, edge, "edge1;a;1")
    assert failed.status_code == 500 and "database" in failed.reason
    assert "REGISTER not stored: connection to the database lost" in caplog.text
    monkeypatch.undo()
    assert await storage.registrations("desk", time.time()) == []
    assert (await register(hub, edge, "edge1;a;1")).status_code == 200
    assert len(await hub.running.registrar.find("desk")) == 1
