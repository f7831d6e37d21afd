"""SipConnection over an in-memory socket: what a confused or broken peer cannot do to it."""

from __future__ import annotations

import asyncio

import pytest

from intercom.sip import Request, make_response
from intercom.sip.ids import new_branch, new_call_id, new_tag
from intercom.transport import ConnectionClosed, SipConnection

from ..conftest import STEP


class MemorySocket:
    """Frames in through a queue, frames out into a list; ``None`` in the queue closes it."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.sent: list[str] = []
        self.sent_changed = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.sent.append(text)
        self.sent_changed.set()

    async def receive_frame(self) -> str | bytes | None:
        return await self.incoming.get()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.incoming.put_nowait(None)

    async def until_sent(self, count: int) -> None:
        async with asyncio.timeout(STEP):
            while len(self.sent) < count:
                self.sent_changed.clear()
                await self.sent_changed.wait()


def invite() -> Request:
    request = Request(method="INVITE", uri="sip:desk@hub.invalid")
    for name, value in (
        ("Via", f"SIP/2.0/WSS hub.invalid;branch={new_branch()}"),
        ("From", f"<sip:door@hub.invalid>;tag={new_tag()}"),
        ("To", "<sip:desk@hub.invalid>"),
        ("Call-ID", new_call_id()),
        ("CSeq", "1 INVITE"),
        ("Contact", "<sip:door@hub.invalid;transport=ws>"),
    ):
        request.headers.add(name, value)
    return request


async def test_a_provisional_after_the_final_answer_is_ignored_and_the_connection_lives():
    socket = MemorySocket()
    events = []
    delivered = asyncio.Event()

    def handler(connection: SipConnection, event: object) -> None:
        events.append(event)
        delivered.set()

    connection = SipConnection(socket, handler, name="memory")
    reader = asyncio.create_task(connection.run())
    request = invite()
    pending = asyncio.create_task(connection.request(request))
    await socket.until_sent(1)
    ok = make_response(request, 200, to_tag="callee", headers=[("Contact", "<sip:desk@x.invalid>")])
    socket.incoming.put_nowait(ok.text())
    async with asyncio.timeout(STEP):
        assert (await pending).status_code == 200
    late = make_response(request, 180, to_tag="callee")
    socket.incoming.put_nowait(late.text())  # not allowed after a 200: logged and dropped
    options = invite()
    options.method = "OPTIONS"
    options.headers.set("CSeq", "2 OPTIONS")
    socket.incoming.put_nowait(options.text())
    async with asyncio.timeout(STEP):
        await delivered.wait()
    assert [event.request.method for event in events] == ["OPTIONS"]
    assert not connection.closed
    await connection.close()
    async with asyncio.timeout(STEP):
        await reader


async def test_waiting_requests_fail_when_the_socket_closes():
    socket = MemorySocket()
    connection = SipConnection(socket, lambda conn, event: None, name="memory")
    reader = asyncio.create_task(connection.run())
    pending = asyncio.create_task(connection.request(invite()))
    await socket.until_sent(1)
    socket.incoming.put_nowait(None)
    async with asyncio.timeout(STEP):
        await reader
        with pytest.raises(ConnectionClosed):
            await pending


async def test_garbage_frames_are_answered_or_dropped():
    socket = MemorySocket()
    connection = SipConnection(socket, lambda conn, event: None, name="memory")
    reader = asyncio.create_task(connection.run())
    socket.incoming.put_nowait("INVITE sip:x@y SIP/2.0\r\nVia: nonsense\r\n\r\n")
    socket.incoming.put_nowait(b"\xff\xfe not even text")
    await socket.until_sent(1)
    assert socket.sent[0].startswith("SIP/2.0 400 Bad Request (missing from header)\r\nVia: nonsense\r\n")
    socket.incoming.put_nowait(None)
    async with asyncio.timeout(STEP):
        await reader
    assert len(socket.sent) == 1
