"""Connected SDK units for call tests: a call flow stored, events recorded, tones sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from intercom.hub.callflows import CallFlow
from intercom.sdk import Call, Client, IncomingCall

STEP = 10.0  # seconds any single await in a test may take
LOOPBACK = ("127.0.0.1",)


def store_flow(hub, flow_id: str, destination: str, timeout: int = 30, then_hangup: bool = False) -> None:
    steps: list[dict[str, Any]] = [
        {"id": "ring", "action": "transfer", "options": {"destination": destination, "timeout": timeout}}
    ]
    if then_hangup:
        steps.append({"id": "bye", "action": "hangup"})
    hub.storage.create_call_flow(CallFlow.model_validate({"id": flow_id, "title": flow_id, "steps": steps}))


class Events:
    """Every event of a client and of its calls, in order; waits for a condition without polling."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.incoming: list[IncomingCall] = []
        self.canceled: list[IncomingCall] = []
        self._changed = asyncio.Event()

    def record(self, name: str) -> Callable[[Any], None]:
        def handler(value: Any = None) -> None:
            self.log.append((name, value))
            if name == "incoming":
                self.incoming.append(value)
            elif name == "canceled":
                self.canceled.append(value)
            self._changed.set()

        return handler

    def follow(self, call: Call) -> Call:
        for name in ("status", "error", "muted", "digits"):
            call.on(name, self.record(f"call.{name}"))
        return call

    def of(self, name: str) -> list[Any]:
        return [value for event, value in self.log if event == name]

    async def until(self, condition: Callable[[], bool], timeout: float = STEP) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


class Unit:
    def __init__(self, client: Client, events: Events) -> None:
        self.client = client
        self.events = events

    def start_call(self, **params: object) -> Call:
        return self.events.follow(self.client.start_call(**params))

    async def next_incoming(self, count: int = 1) -> IncomingCall:
        await self.events.until(lambda: len(self.events.incoming) >= count)
        return self.events.incoming[count - 1]

    async def accept(self, incoming: IncomingCall) -> Call:
        async with asyncio.timeout(STEP):
            return self.events.follow(incoming.accept())


DOOR_HZ, DESK_HZ = 440.0, 880.0


async def door_and_desk(hub, make_unit: Callable[..., Any], timeout: int = 30) -> tuple[Unit, Unit]:
    """The usual pair: a door whose flow ``door`` rings ``client:desk``, and that desk, each with its tone."""
    store_flow(hub, "door", "client:desk", timeout=timeout)
    desk = await make_unit("desk", DESK_HZ)
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    return door, desk
