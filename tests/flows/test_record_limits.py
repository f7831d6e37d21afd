"""A recording's limits on real calls: it stops at its maximum length, and none starts below the
free-space floor; either way the call goes on to the flow's next step."""

from __future__ import annotations

from dataclasses import replace

import pytest

from intercom.hub.retention import StorageLimits
from intercom.hub.storage_fault import RECORDINGS
from intercom.media import ToneSource
from intercom.sdk import CallStatus

from .flows import call_log, door, store, until_over

VISITOR_HZ = 440.0


@pytest.fixture
def hub_config(hub_config, request):
    return replace(hub_config, storage_limits=request.param)


async def record_then_hang_up(hub, max_length: int = 30) -> None:
    options = {"maxLength": max_length, "timeout": 0, "finishOnKey": "none"}
    await store(
        hub,
        [
            {"id": "message", "action": "record", "options": options},
            {"id": "bye", "action": "hangup"},
        ],
    )


@pytest.mark.parametrize("hub_config", [StorageLimits(recording_max_seconds=1.0)], indirect=True)
@pytest.mark.parametrize("max_length", [30, 0])  # 0: MessageBird's "no limit", the hub's still holds
async def test_a_recording_stops_at_its_maximum_length_and_the_flow_goes_on(hub, make_unit, caplog, max_length):
    await record_then_hang_up(hub, max_length)
    unit = await door(make_unit, lambda: ToneSource(VISITOR_HZ))
    unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED  # the hangup step ended it, not the step's 30 s
    call, _, recordings = await call_log(hub)
    assert call.status == "ended"
    assert len(recordings) == 1 and recordings[0].duration == pytest.approx(1.0, abs=0.1)
    assert "maximum length of 1 s (recording_max_seconds)" in recordings[0].cut
    assert hub.running.app.state.calls.services.recordings_cut == {"max_length": 1}
    assert [r.message for r in caplog.records if "stopped at" in r.message] == [
        f"call {call.id}: ivr recording {recordings[0].id} stopped at 1.0 s: {recordings[0].cut}"
    ]


@pytest.mark.parametrize("hub_config", [StorageLimits(min_free_bytes=1 << 62)], indirect=True)
async def test_below_the_free_space_floor_no_recording_starts_and_the_call_goes_on(hub, make_unit):
    await store(
        hub,
        [
            {"id": "message", "action": "record", "options": {"maxLength": 30, "timeout": 0, "finishOnKey": "none"}},
            {"id": "then", "action": "pause", "options": {"length": 1}},
            {"id": "bye", "action": "hangup"},
        ],
        record=True,  # a whole-call recording too
    )
    unit = await door(make_unit, lambda: ToneSource(VISITOR_HZ))
    unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    call, legs, recordings = await call_log(hub)
    assert call.status == "ended" and legs[0].status == "hangup" and legs[0].answered_at is not None
    assert recordings == []
    assert hub.running.app.state.calls.services.recordings_cut == {"free_space": 2}  # the message, the whole call
    assert "below the floor" in hub.storage.fault.parts[RECORDINGS]
    assert not list((hub.storage.data_dir / "recordings").glob("*"))
    metrics = hub.running.app.state.retention.metrics(hub.running.app.state.calls.services.recordings_cut)
    assert 'intercom_recordings_cut_total{why="free_space"} 2' in metrics
    assert 'intercom_storage_fault{part="recordings"} 1' in metrics
