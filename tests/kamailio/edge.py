"""Kamailio as the intercom edge on loopback ports, and fake hubs behind it.

:class:`Edge` (:mod:`bench.kamailio`, which bench/cluster.py starts too) runs
deploy/kamailio/kamailio.cfg exactly as it ships, its settings given with ``-A NAME=VALUE``
(free ports, the test's certificate, a dispatcher list naming the hubs).
:class:`FakeHub` is a hub as the edge sees it: SIP over TCP (design decision 1), framed by the
hub's own :class:`~intercom.transport.stream.StreamFramer`, parsed and written by
:mod:`intercom.sip`. Real hubs go behind the same :class:`Edge`: give it their ``host:port``
SIP/TCP addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from dataclasses import dataclass

# kamailio_program and Edge re-exported: the tests here and tests/hub import them from this module
from bench.kamailio import HOST, Edge, free_port
from bench.kamailio import kamailio_program as kamailio_program
from intercom.sip import MAX_MESSAGE_SIZE, Request, Response, SipUri, make_response, parse_message
from intercom.transport.stream import StreamFramer

from ..conftest import RawSip, replay
from ..units import STEP

# probes every second, one failed probe takes a hub out, one answered takes it back; a hub has
# 300 ms to answer
PROBING = {"DS_PING_INTERVAL": 1, "DS_PROBING_THRESHOLD": 1, "DS_INACTIVE_THRESHOLD": 1, "HUB_TIMEOUT": 300}


class SipStream(RawSip):
    """SIP messages over one TCP connection, framed by their Content-Length (RFC 3261 18.3); the
    rest (``final_response``, ``exchange``) as over a WebSocket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = StreamFramer()
        self.framed: deque[bytes] = deque()

    @classmethod
    async def open(cls, port: int, source: str = HOST) -> SipStream:
        async with asyncio.timeout(STEP):
            return cls(*await asyncio.open_connection(HOST, port, local_addr=(source, 0)))

    async def send(self, message: Request | Response | str | bytes) -> None:
        self.writer.write(message.encode() if isinstance(message, str) else bytes(message))
        await self.writer.drain()

    async def receive(self) -> Request | Response:
        while not self.framed:
            data = await self.reader.read(MAX_MESSAGE_SIZE)
            if not data:
                raise ConnectionResetError("the connection closed")
            self.framed.extend(self.framer.feed(data))
        return parse_message(self.framed.popleft())

    def close(self) -> None:
        self.writer.close()


@dataclass
class Arrival:
    """A request a fake hub got, and the connection to answer it on."""

    request: Request
    stream: SipStream

    async def answer(
        self, status: int, reason: str | None = None, *, headers: list[tuple[str, str]] | None = None, body: bytes = b""
    ) -> Response:
        response = make_response(self.request, status, reason, to_tag="hubtag", headers=headers, body=body)
        await self.stream.send(response)
        return response


def fresh_register(edge: Edge) -> str:
    """The published protocol's REGISTER aimed at ``edge``, with a branch of its own (else the
    edge takes a second one for a resend of the first)."""
    return replay("register-first.sip", edge.host).replace("z9hG4bK3793391", f"z9hG4bK{secrets.token_hex(8)}")


def register_answer(request: Request, hub: str) -> Response:
    """What a hub answers a REGISTER: 200, the Contact, a JSON body naming the hub."""
    body = json.dumps({"zone": "Europe/Amsterdam", "hub": hub}).encode()
    fields = [("Contact", value) for value in request.headers.get_lines("Contact")]
    return make_response(request, 200, to_tag="reg", headers=[*fields, ("Content-Type", "application/json")], body=body)


def hub_request(
    method: str, hub: FakeHub, target: SipUri | str, route: list[str], body: bytes = b"", sent_by: str | None = None
) -> Request:
    """A new request of a hub's to a unit: to its Contact, by its Path. Its Via names the hub's
    listening address, as a hub's does (``sent_by`` another one)."""
    request = Request(method=method, uri=target, body=body)
    request.headers.add("Via", f"SIP/2.0/TCP {sent_by or hub.address};branch=z9hG4bK{secrets.token_hex(8)}")
    for value in route:
        request.headers.add("Route", value)
    request.headers.add("Max-Forwards", "70")
    request.headers.add("From", f"<sip:door@{hub.address}>;tag={secrets.token_hex(4)}")
    request.headers.add("To", f"<{target}>")
    request.headers.add("Call-ID", secrets.token_hex(8))
    request.headers.add("CSeq", f"1 {method}")
    request.headers.add("Contact", f"<sip:hub@{hub.address};transport=tcp>")
    return request


def by_path(method: str, hub: FakeHub, register: Request, body: bytes = b"") -> Request:
    """A new request of a hub's to the unit that sent ``register``: to its Contact, by its Path."""
    return hub_request(method, hub, register.contacts[0].uri, register.headers.get_all("Path"), body)


class FakeHub:
    """SIP over TCP on ``HOST:port``: answers OPTIONS (the edge's probes) and REGISTER itself while
    ``answering``; every other request, and every REGISTER, is kept in ``arrivals``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.answering = True
        self.probes = 0
        self.arrivals: asyncio.Queue[Arrival] = asyncio.Queue()
        self.streams: list[SipStream] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accepted, HOST, self.port)

    async def stop(self) -> None:
        """Gone as a dead machine: listener closed, connections dropped."""
        if self._server is not None:
            self._server.close()
            for stream in self.streams:
                stream.close()
            for task in list(self._tasks):
                task.cancel()
            async with asyncio.timeout(STEP):
                await self._server.wait_closed()
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._server = None
        self.streams.clear()

    async def next(self, method: str | None = None) -> Arrival:
        """The next request kept (of ``method``, if given; others before it are skipped)."""
        async with asyncio.timeout(STEP):
            while True:
                arrival = await self.arrivals.get()
                if method is None or arrival.request.method == method:
                    return arrival

    async def wait_probes(self, count: int) -> None:
        """Until the edge has sent ``count`` more OPTIONS probes than it had."""
        target = self.probes + count
        async with asyncio.timeout(STEP):
            while self.probes < target:
                await asyncio.sleep(0.02)  # polling the count, with the deadline above

    async def connect(self, edge: Edge, source: str = HOST) -> SipStream:
        """A connection of this hub's own to the edge, as a hub opens one to send a request."""
        stream = await SipStream.open(edge.hub_port, source)
        self.streams.append(stream)
        return stream

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(SipStream(reader, writer)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, stream: SipStream) -> None:
        self.streams.append(stream)
        with contextlib.suppress(ConnectionError):
            while True:
                message = await stream.receive()
                if not isinstance(message, Request):
                    continue
                if message.method == "OPTIONS":
                    self.probes += 1
                    if self.answering:
                        await stream.send(make_response(message, 200))
                    continue
                self.arrivals.put_nowait(Arrival(message, stream))
                if message.method == "REGISTER" and self.answering:
                    await stream.send(register_answer(message, self.address))
        stream.close()


async def next_at_any(hubs: list[FakeHub], method: str) -> tuple[FakeHub, Arrival]:
    """The next ``method`` request that reaches one of ``hubs``, and which hub it reached."""
    waits = {asyncio.ensure_future(hub.next(method)): hub for hub in hubs}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    first, *also = done
    for task in also:  # two came at once: the others' stay for their next()
        waits[task].arrivals.put_nowait(task.result())
    return waits[first], first.result()
