"""Keys and choices on real calls: ``sendKeys``, ``onKeypressGoto``, ``onKeypressVar``, ``conditions``
and ``hangup``; what the caller gets tells which steps ran."""

from __future__ import annotations

from aiortc.mediastreams import AudioStreamTrack

from intercom.sdk import CallStatus

from .flows import call_log, door, store, until_answered, until_over


async def test_send_keys_reaches_the_caller_as_digits(hub, make_unit):
    await store(hub, [{"action": "sendKeys", "options": {"keys": "12#*"}}, {"action": "hangup"}])
    unit = await door(make_unit, AudioStreamTrack)
    unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    assert unit.events.of("call.digits") == ["1", "2", "#", "*"]


async def test_a_key_during_a_step_jumps_to_its_on_keypress_goto(hub, make_unit):
    await store(
        hub,
        [
            {"id": "menu", "action": "pause", "options": {"length": 20}, "onKeypressGoto": "staff"},
            {"id": "visitor", "action": "sendKeys", "options": {"keys": "1"}},
            {"id": "end", "action": "hangup"},
            {"id": "staff", "action": "sendKeys", "options": {"keys": "2"}},
        ],
    )
    unit = await door(make_unit, AudioStreamTrack)
    call = unit.start_call()
    await until_answered(unit)
    call.send_digits("9")
    assert await until_over(unit) is CallStatus.ENDED  # the flow ran out after "staff"
    assert unit.events.of("call.digits") == ["2"]


async def test_no_key_lets_the_step_run_out_and_the_flow_go_on(hub, make_unit):
    await store(
        hub,
        [
            {"id": "menu", "action": "pause", "options": {"length": 0.5}, "onKeypressGoto": "staff"},
            {"id": "visitor", "action": "sendKeys", "options": {"keys": "1"}},
            {"id": "end", "action": "hangup"},
            {"id": "staff", "action": "sendKeys", "options": {"keys": "2"}},
        ],
    )
    unit = await door(make_unit, AudioStreamTrack)
    unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    assert unit.events.of("call.digits") == ["1"]


async def test_keys_are_stored_in_on_keypress_var_and_conditions_read_them(hub, make_unit):
    def keys_if(operator: str, keys: str) -> dict:
        condition = {"variable": "code", "operator": operator, "value": "42"}
        return {"action": "sendKeys", "options": {"keys": keys}, "conditions": [condition]}

    await store(
        hub,
        [
            {"id": "code", "action": "pause", "options": {"length": 2.5}, "onKeypressVar": "code"},
            keys_if("==", "1"),
            keys_if("!=", "0"),
            {"action": "hangup"},
        ],
    )
    unit = await door(make_unit, AudioStreamTrack)
    call = unit.start_call()
    await until_answered(unit)
    call.send_digits("42")
    assert await until_over(unit) is CallStatus.ENDED
    assert unit.events.of("call.digits") == ["1"]


async def test_conditions_skip_steps_on_the_calls_variables(hub, make_unit):
    def only_if(operator: str, value: object, keys: str) -> dict:
        condition = {"variable": "floor", "operator": operator, "value": value}
        return {"action": "sendKeys", "options": {"keys": keys}, "conditions": [condition]}

    await store(
        hub,
        [
            only_if("==", 2, "1"),
            only_if("!=", 2, "2"),
            only_if(">", 10, "3"),  # numbers compare as numbers: 2 > 10 is false
            only_if("<", 10, "4"),
            only_if("==", "two", "5"),
            {"action": "sendKeys", "options": {"keys": "6"}, "conditions": [
                {"variable": "floor", "operator": ">", "value": 1},
                {"variable": "wing", "operator": "==", "value": "B"},
            ]},  # every condition must hold, and wing is not set
            {"action": "hangup"},
        ],
    )  # fmt: skip
    unit = await door(make_unit, AudioStreamTrack)
    unit.start_call(floor="2")
    assert await until_over(unit) is CallStatus.ENDED
    assert unit.events.of("call.digits") == ["1", "4"]


async def test_hangup_before_any_answer_refuses_the_caller(hub, make_unit):
    await store(hub, [{"action": "hangup"}, {"action": "sendKeys", "options": {"keys": "1"}}])
    unit = await door(make_unit, AudioStreamTrack)
    unit.start_call()
    assert await until_over(unit) is CallStatus.FAILED
    record, legs, _ = await call_log(hub)
    assert record.status == "ended" and legs[0].status == "no_answer" and legs[0].answered_at is None
