"""SipConnection over an in-memory socket: what a confused or broken peer cannot do to it."""

from __future__ import annotations

import asyncio

import pytest

from intercom.sip import Request, make_response, parse_message
from intercom.sip.ids import new_branch, new_call_id, new_tag
from intercom.transport import ConnectionClosed, SipConnection

from ..conftest import STEP


class MemoryWriter:
    """Frames out into a list; ``close`` only records that it was asked for."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.sent_changed = asyncio.Event()
        self.close_requested: tuple[int, str] | None = None

    def send_text(self, text: str) -> None:
        self.sent.append(text)
        self.sent_changed.set()

    async def until_sent(self, count: int) -> None:
        async with asyncio.timeout(STEP):
            while len(self.sent) < count:
                self.sent_changed.clear()
                await self.sent_changed.wait()

    def close(self, code: int, reason: str) -> None:
        self.close_requested = (code, reason)


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
    writer = MemoryWriter()
    events = []
    connection = SipConnection(writer, lambda conn, event: events.append(event), name="memory")
    request = invite()
    pending = asyncio.create_task(connection.request(request))
    await writer.until_sent(1)
    ok = make_response(request, 200, to_tag="callee", headers=[("Contact", "<sip:desk@x.invalid>")])
    connection.receive(ok.text())
    async with asyncio.timeout(STEP):
        assert (await pending).status_code == 200
    late = make_response(request, 180, to_tag="callee")
    connection.receive(late.text())  # not allowed after a 200: logged and dropped
    options = invite()
    options.method = "OPTIONS"
    options.headers.set("CSeq", "2 OPTIONS")
    connection.receive(options.text())
    assert [event.request.method for event in events] == ["OPTIONS"]
    assert not connection.closed
    connection.close(1000, "done")
    assert writer.close_requested == (1000, "done")


async def test_waiting_requests_fail_when_the_socket_closes():
    writer = MemoryWriter()
    connection = SipConnection(writer, lambda conn, event: None, name="memory")
    pending = asyncio.create_task(connection.request(invite()))
    await writer.until_sent(1)
    connection.lost()
    async with asyncio.timeout(STEP):
        with pytest.raises(ConnectionClosed):
            await pending
    with pytest.raises(ConnectionClosed):
        await connection.request(invite())


async def test_garbage_frames_are_answered_or_dropped():
    writer = MemoryWriter()
    connection = SipConnection(writer, lambda conn, event: None, name="memory")
    connection.receive("INVITE sip:x@y SIP/2.0\r\nVia: nonsense\r\n\r\n")
    connection.receive(b"\xff\xfe not even text")
    assert len(writer.sent) == 1
    assert writer.sent[0].startswith("SIP/2.0 400 Bad Request (missing from header)\r\nVia: nonsense\r\n")


async def test_a_failing_handler_gets_the_request_a_500_and_later_frames_still_arrive():
    writer = MemoryWriter()
    seen = []

    def handler(connection: SipConnection, event: object) -> None:
        seen.append(event.request.method)
        if event.request.method == "INVITE":
            raise RuntimeError("handler bug")

    connection = SipConnection(writer, handler, name="memory")
    connection.receive(invite().text())
    options = invite()
    options.method = "OPTIONS"
    options.headers.set("CSeq", "2 OPTIONS")
    connection.receive(options.text())
    assert seen == ["INVITE", "OPTIONS"]
    assert writer.sent[0].startswith("SIP/2.0 500 ")


async def test_a_coroutine_handler_runs_as_a_task_and_a_failure_answers_500():
    writer = MemoryWriter()
    started = asyncio.Event()
    release = asyncio.Event()

    async def handler(connection: SipConnection, event: object) -> None:
        started.set()
        await release.wait()
        raise RuntimeError("slow handler bug")

    connection = SipConnection(writer, handler, name="memory")
    connection.receive(invite().text())  # returns at once: the handler waits in its own task
    async with asyncio.timeout(STEP):
        await started.wait()
    assert writer.sent == []
    release.set()
    await writer.until_sent(1)
    assert writer.sent[0].startswith("SIP/2.0 500 ")


def _answered_with(responses: list[tuple[int, str | None]]) -> tuple[MemoryWriter, Request]:
    """A connection whose handler answers an INVITE with ``(status, to_tag)`` each in turn."""
    writer = MemoryWriter()
    request = invite()

    def handler(connection: SipConnection, event: object) -> None:
        for status, tag in responses:
            connection.send_response(event.transaction, make_response(event.request, status, to_tag=tag))

    connection = SipConnection(writer, handler, name="memory")
    connection.receive(request.text())
    return writer, request


def _to_tags(writer: MemoryWriter) -> list[str | None]:
    return [parse_message(text).to.tag for text in writer.sent]


async def test_responses_outside_a_dialog_share_one_to_tag_made_by_the_transaction():
    writer, _ = _answered_with([(100, None), (180, None), (486, None)])
    trying, ringing, busy = _to_tags(writer)
    assert trying is None  # RFC 3261 8.2.6.2: 100 may go without
    assert ringing and busy == ringing


async def test_a_tag_the_handler_chose_is_the_one_every_later_response_carries():
    writer, _ = _answered_with([(180, "legtag"), (486, None)])
    assert _to_tags(writer) == ["legtag", "legtag"]


async def test_a_request_inside_a_dialog_keeps_its_own_to_tag_alone():
    writer = MemoryWriter()
    request = invite()
    request.headers.set("To", "<sip:desk@hub.invalid>;tag=dialog1")
    request.method = "INFO"
    request.headers.set("CSeq", "2 INFO")
    connection = SipConnection(
        writer, lambda conn, event: conn.send_response(event.transaction, make_response(event.request, 200))
    )
    connection.receive(request.text())
    (sent,) = writer.sent
    assert parse_message(sent).headers.get_lines("To") == ["<sip:desk@hub.invalid>;tag=dialog1"]


async def test_a_malformed_request_gets_the_status_of_its_error_with_a_to_tag():
    writer = MemoryWriter()
    connection = SipConnection(writer, lambda conn, event: None, name="memory")
    broken = invite().text().replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS")
    connection.receive(broken)
    (sent,) = writer.sent
    response = parse_message(sent)
    assert (response.status_code, response.reason) == (400, "Bad Request (CSeq method OPTIONS does not match INVITE)")
    assert response.to.tag
