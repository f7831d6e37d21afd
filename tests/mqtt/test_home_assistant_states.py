"""The call log's rows as Home Assistant's doorbell events and unit states (no broker: the rows
the call log publishes, in the order a door's call makes them)."""

from __future__ import annotations

import json

from intercom.hub.mqtt.home_assistant import REMEMBERED_CALLS, HomeAssistantStates, Message
from intercom.hub.mqtt.topics import Topics
from intercom.hub.records import CallRecord, LegRecord, RecordingRecord, UnlockEvent

AT = 1_800_000_000.0


def states() -> HomeAssistantStates:
    return HomeAssistantStates(Topics(prefix="intercom"), doors={"door"}, clock=lambda: AT)


def events(messages: list[Message]) -> list[tuple[str, dict]]:
    return [(m.topic, json.loads(m.payload)) for m in messages if m.topic.endswith("/doorbell")]


def plain(messages: list[Message]) -> dict[str, tuple[str, bool]]:
    return {m.topic: (m.payload.decode(), m.retain) for m in messages if not m.topic.endswith("/doorbell")}


def door_call(ha: HomeAssistantStates) -> tuple[CallRecord, list[Message]]:
    call = CallRecord(source="client:door", destination="00000")
    return call, ha.messages(call, created=True)


def test_a_ring_is_an_event_the_last_ring_and_a_call_up() -> None:
    ha = states()
    call, rung = door_call(ha)
    assert events(rung) == [("intercom/door/doorbell", {"callId": call.id, "event_type": "ring"})]
    assert all(not m.retain for m in rung if m.topic.endswith("/doorbell"))  # an event is not a state
    assert plain(rung) == {
        "intercom/door/last_ring": ("2027-01-15T08:00:00+00:00", True),
        "intercom/door/call": ("ON", True),
    }


def test_an_answered_call_then_its_end() -> None:
    ha = states()
    call, _ = door_call(ha)
    leg = LegRecord(call_id=call.id, source="client:door", destination="client:desk", direction="outgoing")
    assert plain(ha.messages(leg, created=True)) == {"intercom/desk/last_caller": ("door", True)}
    leg.status, leg.answered_at = "ongoing", AT
    answered = ha.messages(leg, created=False)
    assert events(answered) == [
        ("intercom/door/doorbell", {"callId": call.id, "answeredBy": "desk", "event_type": "answered"})
    ]
    assert plain(answered) == {"intercom/desk/call": ("ON", True)}
    assert events(ha.messages(leg, created=False)) == []  # answered once, told once
    leg.status = "hangup"
    assert plain(ha.messages(leg, created=False)) == {"intercom/desk/call": ("OFF", True)}
    call.status = "ended"
    ended = ha.messages(call, created=False)
    assert events(ended) == []  # not missed
    assert plain(ended) == {"intercom/door/call": ("OFF", True)}


def test_a_call_nobody_answered_is_missed_and_its_voicemail_told() -> None:
    ha = states()
    call, _ = door_call(ha)
    recording = RecordingRecord(call_id=call.id, leg_id="leg", kind="ivr", path="r.wav", status="recording")
    assert ha.messages(recording, created=True) == []  # still recording
    recording.status, recording.duration = "done", 4.5
    (voicemail,) = events(ha.messages(recording, created=False))
    assert voicemail[1] == {
        "callId": call.id,
        "recordingId": recording.id,
        "duration": 4.5,
        "url": f"/desk/api/voicemails/{recording.id}.wav",
        "event_type": "voicemail",
    }
    call.status, call.reason = "ended", "no answer"
    assert events(ha.messages(call, created=False)) == [
        ("intercom/door/doorbell", {"callId": call.id, "reason": "no answer", "event_type": "missed"})
    ]


def test_a_transfers_recording_and_a_call_not_from_a_door_tell_nothing() -> None:
    ha = states()
    call, _ = door_call(ha)
    transfer = RecordingRecord(call_id=call.id, leg_id="leg", kind="transfer", path="t.wav")
    assert ha.messages(transfer, created=False) == []
    desk_call = CallRecord(source="client:desk", destination="00000")
    assert ha.messages(desk_call, created=True) == []


def test_the_doors_lock_events() -> None:
    ha = states()
    opened = UnlockEvent(door="door", event="open", source="remote", who="home assistant", at=AT)
    assert events(ha.messages(opened, created=True)) == [
        (
            "intercom/door/doorbell",
            {"source": "remote", "who": "home assistant", "callId": None, "event_type": "unlocked"},
        )
    ]
    wrong = UnlockEvent(door="door", event="wrong", source="keypad", who="keypad", at=AT)
    assert events(ha.messages(wrong, created=True))[0][1]["event_type"] == "wrong_code"
    locked = UnlockEvent(door="door", event="lockout", source="keypad", who="keypad", at=AT)
    assert events(ha.messages(locked, created=True))[0][1]["event_type"] == "lockout"
    refused = UnlockEvent(door="door", event="refused", source="remote", who="x", at=AT)
    assert ha.messages(refused, created=True) == []


def test_only_so_many_calls_are_remembered() -> None:
    ha = states()
    first, _ = door_call(ha)
    for _ in range(REMEMBERED_CALLS):
        door_call(ha)
    first.status = "ended"
    assert events(ha.messages(first, created=False)) == []  # forgotten: no missed event guessed
