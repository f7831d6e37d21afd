"""The controller's tables through real calls on a loopback hub: presses become SDK actions, events lights."""

from __future__ import annotations

from intercom.appliance.lights import CALL_STATUS_PATTERN, CLIENT_STATUS_PATTERN, MUTED_PATTERN
from intercom.sdk import CallStatus, ClientStatus

from ..listening import peaks
from ..units import DESK_HZ, DOOR_HZ, STEP, store_flow
from .controllers import CODE, call_light, desk_answers_when_ringing, door_calls_and_desk_answers, unit


async def test_status_light_shows_connected(door_and_desk):
    (_, door_board), _ = door_and_desk
    assert door_board.lights["status"] == CLIENT_STATUS_PATTERN[ClientStatus.CONNECTED]
    assert door_board.lights["call"] == CALL_STATUS_PATTERN[CallStatus.ENDED]


async def test_the_door_calls_the_desk_rings_and_answer_connects_them(door_and_desk):
    (door, door_board), (desk, desk_board) = door_and_desk
    door.press("call")
    await desk_board.until(call_light(desk_board, CallStatus.RINGING))
    await door_board.until(call_light(door_board, CallStatus.RINGING))
    door.press("call")  # a second press while the call is up does nothing
    desk.press("answer")
    await desk_board.until(call_light(desk_board, CallStatus.CONFIRMED))
    await door_board.until(call_light(door_board, CallStatus.CONFIRMED))
    assert door.call is not None and desk.call is not None
    desk.press("reject")  # hangs up a call in progress
    await door_board.until(call_light(door_board, CallStatus.ENDED))
    await desk_board.until(call_light(desk_board, CallStatus.ENDED))
    assert door.call is None and desk.call is None


async def test_reject_turns_the_call_away_and_the_door_shows_it_failed(door_and_desk):
    (door, door_board), (desk, desk_board) = door_and_desk
    door.press("call")
    await desk_board.until(call_light(desk_board, CallStatus.RINGING))
    desk.press("reject")
    await door_board.until(call_light(door_board, CallStatus.FAILED))
    assert desk_board.lights["call"] == CALL_STATUS_PATTERN[CallStatus.ENDED] and desk.offered is None


async def test_unlock_opens_the_door_once_per_right_code_and_never_on_a_wrong_one(door_and_desk):
    (door, door_board), (desk, _) = door_and_desk
    await door_calls_and_desk_answers(door_and_desk)
    desk.press("unlock")
    await door_board.until(lambda: door_board.pulses)
    assert door_board.pulses == [2.5]
    sink = door.call.sink  # the door's speaker beeps over the desk's tone: the door is open
    await sink.wait_until(lambda: sorted(round(hz, -1) for hz in peaks(sink.recent(0.1), 2)) == [880, 1320], STEP)
    for key in "99#":  # a wrong code from the desk's keypad
        desk.press(key)
    for key in CODE:  # then the right one again
        desk.press(key)
    await door_board.until(lambda: len(door_board.pulses) == 2)
    assert door_board.pulses == [2.5, 2.5]


async def test_mute_toggles_the_call_and_its_light(door_and_desk):
    _, (desk, desk_board) = door_and_desk
    await door_calls_and_desk_answers(door_and_desk)
    desk.press("mute")
    await desk_board.until(lambda: desk_board.lights["mute"] == MUTED_PATTERN[True])
    assert desk.call is not None and desk.call.is_muted
    desk.press("mute")
    await desk_board.until(lambda: desk_board.lights["mute"] == MUTED_PATTERN[False])


async def test_a_door_that_auto_answers_lets_the_desk_listen(hub, make_unit):
    await store_flow(hub, "desk", "client:door")
    door, door_board = await unit(make_unit, "door", "door", DOOR_HZ, "door", auto_answer=True)
    desk, desk_board = await unit(make_unit, "desk", "desk", DESK_HZ, "desk")
    desk.press("call")
    await door_board.until(call_light(door_board, CallStatus.CONFIRMED))
    await desk_board.until(call_light(desk_board, CallStatus.CONFIRMED))
    assert door.offered is None and door.call is not None


async def test_the_doors_own_keypad_opens_it_without_a_call(door_and_desk):
    (door, door_board), _ = door_and_desk
    for key in CODE:
        door.press(key)
    assert door_board.pulses == [2.5]
    door.press("answer")  # a button the door does not have does nothing
    assert door_board.pulses == [2.5]


async def test_a_call_nobody_answers_is_turned_away_after_the_ring_timeout(hub, make_unit):
    await store_flow(hub, "door", "client:desk")
    desk, desk_board = await unit(make_unit, "desk", "desk", DESK_HZ, "desk", ring_timeout_s=0.3)
    door, door_board = await unit(make_unit, "door", "door", DOOR_HZ, "door")
    door.press("call")
    await desk_board.until(call_light(desk_board, CallStatus.RINGING))
    await door_board.until(call_light(door_board, CallStatus.FAILED))  # the desk said 480 for itself
    assert desk.offered is None and desk_board.lights["call"] == CALL_STATUS_PATTERN[CallStatus.ENDED]


async def test_holding_call_ends_the_call_that_was_up_but_never_the_one_it_started(door_and_desk):
    (door, door_board), (_, desk_board) = door_and_desk
    door.press("call")
    await door_board.until(call_light(door_board, CallStatus.RINGING))
    door.long_press("call")  # held on after starting the call: the visitor is not hanging up
    await desk_answers_when_ringing(door_and_desk)
    door.press("call")  # a short press in a call does nothing (call_button_hangs_up is off)
    assert door.call is not None and door.call.status in (CallStatus.ACCEPTED, CallStatus.CONFIRMED)
    door.long_press("call")  # held through the call: hang up
    await desk_board.until(call_light(desk_board, CallStatus.ENDED))
    await door_board.until(call_light(door_board, CallStatus.ENDED))


async def test_a_closed_controller_lets_go_of_the_client(door_and_desk):
    (door, door_board), (desk, desk_board) = door_and_desk
    desk.close()
    shown = len(desk_board.shown)
    door.press("call")
    await door_board.until(call_light(door_board, CallStatus.RINGING))  # the desk's client was offered it
    assert len(desk_board.shown) == shown and desk.offered is None  # but the closed controller did not ring
    await desk.client.destroy()
    assert desk.client.status is ClientStatus.OFFLINE and len(desk_board.shown) == shown
