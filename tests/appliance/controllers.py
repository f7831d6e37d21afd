"""Controllers on real SDK clients of the test's hub, with a board that records what they showed and pulsed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from intercom.appliance.controller import Controller
from intercom.appliance.lights import CALL_STATUS_PATTERN
from intercom.sdk import CallStatus

from ..units import STEP

CODE = "4711#"


class Board:
    """Stands in for the panel: what the controller showed on each light, and the relay's pulses."""

    def __init__(self) -> None:
        self.lights: dict[str, str] = {}
        self.shown: list[tuple[str, str]] = []
        self.pulses: list[float] = []
        self._changed = asyncio.Event()

    def show(self, led: str, pattern: str) -> None:
        self.lights[led] = pattern
        self.shown.append((led, pattern))
        self._changed.set()

    def pulse(self, seconds: float) -> None:
        self.pulses.append(seconds)
        self._changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(STEP):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


async def unit(make_unit, role: str, identity: str, hz: float, flow: str, **options) -> tuple[Controller, Board]:
    made = await make_unit(identity, hz, outgoing=flow)
    board = Board()
    controller = Controller(role, made.client, board.show, board.pulse, unlock_code=CODE, relay_pulse_s=2.5, **options)
    return controller, board


def call_light(board: Board, status: CallStatus) -> Callable[[], bool]:
    return lambda: board.lights.get("call") == CALL_STATUS_PATTERN[status]


async def door_calls_and_desk_answers(door_and_desk) -> None:
    (door, _), _ = door_and_desk
    door.press("call")
    await desk_answers_when_ringing(door_and_desk)


async def desk_answers_when_ringing(door_and_desk) -> None:
    (_, door_board), (desk, desk_board) = door_and_desk
    await desk_board.until(call_light(desk_board, CallStatus.RINGING))
    desk.press("answer")
    await desk_board.until(call_light(desk_board, CallStatus.CONFIRMED))
    await door_board.until(call_light(door_board, CallStatus.CONFIRMED))
