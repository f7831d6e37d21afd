"""``fetchCallFlow`` within the hub's outbound bounds: a target on the hub's own machine is refused
unless the hub allows it, and an answer larger than ``max_flow_bytes`` is refused as it streams in.
Either way the call ends with the reason, naming the setting, in the call log."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from aiortc.mediastreams import AudioStreamTrack

from intercom.sdk import CallStatus

from .flows import call_log, door, store, until_over
from .receiver import receiver

NEXT_FLOW = {"title": "from the service", "steps": [{"action": "sendKeys", "options": {"keys": "3"}}]}


async def test_a_service_on_the_hubs_own_machine_is_refused_without_the_setting(hub, make_unit):
    assert not hub.running.config.outbound.allow_loopback  # the default
    with receiver(lambda posted: (200, json.dumps(NEXT_FLOW).encode())) as service:
        await store(hub, [{"action": "fetchCallFlow", "options": {"url": service.url("/next")}}])
        unit = await door(make_unit, AudioStreamTrack)
        unit.start_call()
        assert await until_over(unit) is CallStatus.FAILED
        assert service.posted.empty()  # never reached
    record, _, _ = await call_log(hub)
    assert record.reason == (
        f"fetchCallFlow {service.url('/next')} failed: 127.0.0.1 is a loopback address: refused "
        "(allow_loopback: intercom hub --allow-loopback-requests)"
    )
    assert unit.events.of("call.digits") == []


@pytest.fixture
def hub_config(hub_config):
    """The tests' hub, reading at most 4 kB of a fetchCallFlow answer."""
    return replace(hub_config, outbound=replace(hub_config.outbound, max_flow_bytes=4096))


@pytest.mark.loopback_requests
async def test_an_answer_over_the_limit_ends_the_call_with_the_limit_named(hub, make_unit):
    padded = {**NEXT_FLOW, "title": "x" * 5000}  # valid, and too large
    with receiver(lambda posted: (200, json.dumps(padded).encode())) as service:
        await store(hub, [{"action": "fetchCallFlow", "options": {"url": service.url("/big")}}])
        unit = await door(make_unit, AudioStreamTrack)
        unit.start_call()
        assert await until_over(unit) is CallStatus.FAILED
        await service.next()  # it was asked
    record, _, _ = await call_log(hub)
    assert record.reason.endswith("more than 4096 (max_flow_bytes: intercom hub --max-flow-bytes)")
    assert unit.events.of("call.digits") == []
