"""Calls through the Voice API on a real hub: POST /v1/calls rings a client and runs the flow once
it answers, DELETE hangs up, and the webhooks hear every status change, signed; a webhook that is
dead or never answers holds up no call."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from aiortc.mediastreams import AudioStreamTrack

from intercom.hub import HubConfig, Storage, running_hub
from intercom.hub.call_log_text import call_list
from intercom.hub.records import CallRecord, LegRecord
from intercom.hub.webhooks import SIGNATURE_HEADER
from intercom.sdk import CallStatus

from ..hub.api.conftest import errors
from ..units import STEP, Unit
from .audio import sound_span
from .flows import caller_audio, door, store, until_over
from .receiver import Posted, Receiver, receiver

HOOK_TOKEN = "hook-token-of-thirty-two-bytes-00"
SAY = {"action": "say", "options": {"payload": "A parcel is at the door"}}


@pytest.fixture
async def api(hub) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"AccessKey {hub.key.secret}"}
    async with httpx.AsyncClient(base_url=f"http://{hub.address}", headers=headers, timeout=STEP) as client:
        yield client


async def desk(make_unit) -> Unit:
    return await make_unit("desk", caller_audio(AudioStreamTrack))


def verified(posted: Posted, url: str, token: str) -> dict:
    """The webhook body, once its signature checks out as a receiver would check it."""
    claims = jwt.decode(posted.headers[SIGNATURE_HEADER], token, algorithms=["HS256"], issuer="MessageBird")
    assert claims["url_hash"] == hashlib.sha256(url.encode()).hexdigest()
    assert claims["payload_hash"] == hashlib.sha256(posted.body).hexdigest()
    return json.loads(posted.body)


def to_desk(steps: list[dict], webhook_url: str, token: str, source: str = "hub") -> dict:
    """A POST /v1/calls body: ring client:desk, run ``steps``, tell the webhook at ``webhook_url``."""
    return {
        "source": source,
        "destination": "client:desk",
        "callFlow": {"steps": steps},
        "webhook": {"url": webhook_url, "token": token},
    }


async def events_until_ended(service: Receiver, url: str, token: str) -> list[tuple[str, str, str]]:
    """(type, event, status) of each item the webhook got, until the call's end arrived."""
    seen: list[tuple[str, str, str]] = []
    while ("call", "callUpdated", "ended") not in seen:
        for item in verified(await service.next(), url, token)["items"]:
            seen.append((item["type"], item["event"], item["payload"].get("status", "")))
    return seen


@pytest.mark.loopback_requests
async def test_a_call_made_through_the_api_rings_the_client_and_runs_its_flow(hub, api, make_unit):
    unit = await desk(make_unit)
    with receiver() as service:
        url = service.url("/events")
        body = to_desk([SAY, {"action": "hangup"}], url, "call-token-of-thirty-two-bytes-00", source="front-door")
        created = await api.post("/v1/calls", json=body)
        assert created.status_code == 201, created.text
        (call,) = created.json()["data"]
        assert (call["status"], call["source"], call["destination"]) == ("queued", "front-door", "client:desk")
        incoming = await unit.next_incoming()
        assert incoming.display_name == "front-door"
        answered = await unit.accept(incoming)
        assert await until_over(unit) is CallStatus.ENDED  # the flow said its sentence and hung up
        events = await events_until_ended(service, url, "call-token-of-thirty-two-bytes-00")
    assert sound_span(answered.sink.recent(30)) > 1.0
    # each event is a delivery of its own, sent at once: on a busy machine two may arrive swapped
    assert ("call", "callCreated", "queued") in events and ("call", "callUpdated", "ongoing") in events
    assert ("leg", "legUpdated", "ringing") in events and ("leg", "legUpdated", "ongoing") in events
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
    (logged,) = (await api.get(f"/v1/calls/{call['id']}")).json()["data"]
    assert logged["status"] == "ended" and logged["endedAt"] is not None
    (leg,) = (await api.get(f"/v1/calls/{call['id']}/legs")).json()["data"]
    assert (leg["direction"], leg["destination"], leg["status"]) == ("outgoing", "client:desk", "hangup")
    assert leg["answeredAt"] is not None and leg["duration"] >= 1


async def test_delete_hangs_up_a_call_in_its_flow(hub, api, make_unit):
    unit = await desk(make_unit)
    body = {"source": "hub", "destination": "client:desk", "callFlow": {"steps": [
        {"action": "pause", "options": {"length": 60}}, {"action": "sendKeys", "options": {"keys": "1"}},
    ]}}  # fmt: skip
    (call,) = (await api.post("/v1/calls", json=body)).json()["data"]
    await unit.accept(await unit.next_incoming())
    await unit.events.until(lambda: CallStatus.CONFIRMED in unit.events.of("call.status"))
    assert (await api.delete(f"/v1/calls/{call['id']}")).status_code == 204
    assert await until_over(unit) is CallStatus.ENDED
    assert unit.events.of("call.digits") == []
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
    (logged,) = (await api.get(f"/v1/calls/{call['id']}")).json()["data"]
    assert (logged["status"], logged["reason"]) == ("ended", "hung up through the Voice API")
    assert (await api.delete(f"/v1/calls/{call['id']}")).status_code == 204  # ended stays ended


async def test_delete_while_ringing_stops_the_ringing(hub, api, make_unit):
    unit = await desk(make_unit)
    body = {"source": "hub", "destination": "client:desk", "callFlow": {"steps": [SAY]}}
    (call,) = (await api.post("/v1/calls", json=body)).json()["data"]
    incoming = await unit.next_incoming()
    assert (await api.delete(f"/v1/calls/{call['id']}")).status_code == 204
    await unit.events.until(lambda: unit.events.canceled == [incoming])
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
    (leg,) = (await api.get(f"/v1/calls/{call['id']}/legs")).json()["data"]
    assert leg["status"] == "hangup" and leg["answeredAt"] is None


async def test_a_client_nobody_registered_as_ends_the_call_with_the_reason(hub, api):
    body = {"source": "hub", "destination": "client:attic", "callFlow": {"steps": [SAY]}}
    (call,) = (await api.post("/v1/calls", json=body)).json()["data"]
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
    (logged,) = (await api.get(f"/v1/calls/{call['id']}")).json()["data"]
    assert (logged["status"], logged["reason"]) == ("ended", "nobody registered as attic")
    assert (await api.get(f"/v1/calls/{call['id']}/legs")).json()["data"] == []


@pytest.mark.loopback_requests
async def test_a_dead_or_silent_webhook_holds_up_no_call(hub, api, make_unit):
    black_hole = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/gone"  # nobody listens there
    try:
        silent = f"http://127.0.0.1:{black_hole.getsockname()[1]}/silent"
        with receiver() as service:
            for url in (dead, silent, service.url("/events")):
                assert (await api.post("/v1/webhooks", json={"url": url, "token": HOOK_TOKEN})).status_code == 201
            await store(hub, [{"action": "transfer", "options": {"destination": "client:desk"}}])
            unit = await desk(make_unit)
            caller = await door(make_unit, AudioStreamTrack)
            started = time.monotonic()
            caller.start_call()
            incoming = await unit.next_incoming()
            rang_after = time.monotonic() - started
            await unit.accept(incoming)
            await caller.events.until(lambda: CallStatus.CONFIRMED in caller.events.of("call.status"))
            answered_after = time.monotonic() - started
            events = await _first_events(service, 3)
    finally:
        black_hole.close()
    # Each webhook call to the silent one waits 5 s for an answer; none of that reaches the call.
    assert rang_after < 1.0 and answered_after < 2.0
    assert events[0] == ("call", "callCreated", "starting")


async def _first_events(service: Receiver, count: int) -> list[tuple[str, str, str]]:
    seen: list[tuple[str, str, str]] = []
    while len(seen) < count:
        for item in verified(await service.next(), service.url("/events"), HOOK_TOKEN)["items"]:
            seen.append((item["type"], item["event"], item["payload"].get("status", "")))
    return seen


async def test_calls_a_stopped_hub_left_open_are_ended_at_its_next_start(tmp_path):
    storage = Storage(tmp_path)
    call = await storage.put(CallRecord(source="client:door", destination="ring_desks", status="ongoing"))
    rang = await storage.put(LegRecord(call_id=call.id, source="client:door", destination="client:desk",
                                 direction="outgoing", status="ringing"))  # fmt: skip
    talked = await storage.put(LegRecord(call_id=call.id, source="client:door", destination="ring_desks",
                                   direction="incoming", status="ongoing", answered_at=call.created_at))  # fmt: skip
    async with asyncio.timeout(STEP), running_hub(HubConfig(data_dir=tmp_path, port=0), storage):
        ended = await storage.get(CallRecord, call.id)
        assert (ended.status, ended.reason) == ("ended", "the hub stopped during the call")
        assert ended.ended_at is not None
        assert (await storage.get(LegRecord, rang.id)).status == "failed"
        assert (await storage.get(LegRecord, talked.id)).status == "hangup"
    storage.close()


async def test_a_call_over_a_limit_is_refused_in_the_apis_error_format(hub, api, make_unit):
    unit = await desk(make_unit)
    body = {"source": "hub", "destination": "client:desk", "callFlow": {"steps": [SAY]}}
    hub.running.config.max_calls_per_identity = 1
    assert (await api.post("/v1/calls", json=body)).status_code == 201
    await unit.next_incoming()  # the desk is rung: that is its one call
    busy = await api.post("/v1/calls", json=body)
    (error,) = errors(busy, 429)
    assert error["message"] == "client:desk is in 1 calls, the limit max_calls_per_identity"
    assert busy.headers["Retry-After"] == "60"
    hub.running.config.max_calls = 1
    full = await api.post("/v1/calls", json={**body, "destination": "client:kitchen"})
    (error,) = errors(full, 503)
    assert error["message"] == "the hub is in 1 calls, the limit max_calls"
    assert full.headers["Retry-After"] == "60"
    assert len(hub.running.app.state.calls.calls) == 1


@pytest.mark.loopback_requests
async def test_a_call_at_its_maximum_duration_ends_with_the_reason_in_the_log_and_the_webhook(hub, api, make_unit):
    hub.running.config.media_timeout = 1.0  # the hub looks five times a timeout: every 0.2 s
    unit = await desk(make_unit)
    with receiver() as service:
        url = service.url("/events")
        body = to_desk([{"action": "pause", "options": {"length": 60}}], url, HOOK_TOKEN)
        (call,) = (await api.post("/v1/calls", json=body)).json()["data"]
        await unit.accept(await unit.next_incoming())
        await unit.events.until(lambda: CallStatus.CONFIRMED in unit.events.of("call.status"))
        hub.running.config.max_call_duration = 1.0  # already over: the next look ends it
        assert await until_over(unit) is CallStatus.ENDED
        events = await events_until_ended(service, url, HOOK_TOKEN)
    assert events[-1] == ("call", "callUpdated", "ended")
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
    (logged,) = (await api.get(f"/v1/calls/{call['id']}")).json()["data"]
    assert (logged["status"], logged["reason"]) == ("ended", "the call lasted 1 s, the limit max_call_duration")
    assert f"({logged['reason']})" in (await call_list(hub.storage, 1))[0]  # as `intercom calls list` shows it
