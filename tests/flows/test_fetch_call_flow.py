"""``fetchCallFlow`` against a web service on 127.0.0.1: it gets the call and its variables, and the
flow it answers runs in place of the steps left; a failure ends the call with the reason logged."""

from __future__ import annotations

import json
import threading

import pytest
from aiortc.mediastreams import AudioStreamTrack

from intercom.hub import steps
from intercom.sdk import CallStatus

from ..units import STEP
from .flows import call_log, door, store, until_answered, until_over
from .receiver import Posted, receiver

pytestmark = pytest.mark.loopback_requests  # the web service is on 127.0.0.1

NEXT_FLOW = {
    "title": "from the service",
    "steps": [{"action": "sendKeys", "options": {"keys": "3"}}, {"action": "hangup"}],
}


async def test_the_service_gets_the_variables_and_its_flow_runs(hub, make_unit):
    with receiver(lambda posted: (200, json.dumps(NEXT_FLOW).encode())) as service:
        await store(
            hub,
            [
                {"id": "code", "action": "pause", "options": {"length": 2}, "onKeypressVar": "code"},
                {"id": "ask", "action": "fetchCallFlow", "options": {"url": service.url("/next")}},
                {"id": "never", "action": "sendKeys", "options": {"keys": "9"}},
            ],
        )
        unit = await door(make_unit, AudioStreamTrack)
        call = unit.start_call(floor="2")
        await until_answered(unit)
        call.send_digits("7")
        assert await until_over(unit) is CallStatus.ENDED
        posted = await service.next()
    record, _, _ = await call_log(hub)
    sent = json.loads(posted.body)
    assert posted.content_type == "application/json"
    assert sent == {
        "callID": record.id,
        "source": "client:door",
        "destination": record.destination,
        "variables": {"floor": "2", "code": "7"},
    }
    assert unit.events.of("call.digits") == ["3"]  # the fetched steps, not "never"


def _fails(status: int, body: bytes):
    def answer(posted: Posted) -> tuple[int, bytes]:
        return status, body

    return answer


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b"{}", "500 Internal Server Error"),
        (200, b"<html>not json</html>", "Invalid JSON"),
        (200, b'{"steps": [{"action": "dance"}]}', "steps.0.action"),
    ],
)
async def test_a_failed_fetch_ends_the_call_with_the_reason(hub, make_unit, status, body, reason):
    with receiver(_fails(status, body)) as service:
        await store(
            hub,
            [
                {"action": "say", "options": {"payload": "One moment"}},
                {"action": "fetchCallFlow", "options": {"url": service.url("/next")}},
                {"action": "sendKeys", "options": {"keys": "9"}},
            ],
        )
        unit = await door(make_unit, AudioStreamTrack)
        unit.start_call()
        assert await until_over(unit) is CallStatus.ENDED
    record, _, _ = await call_log(hub)
    assert record.reason is not None and "fetchCallFlow" in record.reason and reason in record.reason
    assert unit.events.of("call.digits") == []


async def test_a_service_that_is_not_there_ends_the_call_before_it_is_answered(hub, make_unit):
    with receiver() as service:
        url = service.url("/gone")
    await store(
        hub, [{"action": "fetchCallFlow", "options": {"url": url}}, {"action": "sendKeys", "options": {"keys": "9"}}]
    )
    unit = await door(make_unit, AudioStreamTrack)
    unit.start_call()
    assert await until_over(unit) is CallStatus.FAILED
    record, _, _ = await call_log(hub)
    assert "fetchCallFlow" in record.reason


async def test_a_service_slower_than_the_timeout_ends_the_call(hub, make_unit, monkeypatch):
    monkeypatch.setattr(steps, "FETCH_TIMEOUT", 0.5)  # the real 5 s, shortened
    answered = threading.Event()

    def slow(posted: Posted) -> tuple[int, bytes]:
        answered.wait(STEP)  # never answers before the hub has given up
        return 200, json.dumps(NEXT_FLOW).encode()

    with receiver(slow) as service:
        await store(hub, [{"action": "fetchCallFlow", "options": {"url": service.url("/slow")}}])
        unit = await door(make_unit, AudioStreamTrack)
        unit.start_call()
        try:
            assert await until_over(unit) is CallStatus.FAILED
        finally:
            answered.set()
    record, _, _ = await call_log(hub)
    assert record.reason.endswith("failed: no answer within 0.5 s")
