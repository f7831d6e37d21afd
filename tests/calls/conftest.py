"""A hub on loopback with the door flow stored, and connected units with tone sources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from intercom.hub import HubConfig
from intercom.hub.callflows import CallFlow
from intercom.media import MediaPolicy, RecordingSink, ToneSource
from intercom.sdk import Call, CallAudio, Client, ClientStatus, IncomingCall

from ..conftest import STEP

LOOPBACK = ("127.0.0.1",)


@pytest.fixture
def hub_config(tmp_path: Path) -> HubConfig:
    return HubConfig(
        data_dir=tmp_path / "hub", host="127.0.0.1", port=0, media=MediaPolicy(host_addresses=LOOPBACK, jitter_frames=0)
    )


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


@pytest.fixture
async def make_unit(hub) -> AsyncIterator[Callable[..., Any]]:
    """Connected clients, each sending a tone of its own; destroyed at teardown."""
    units: list[Unit] = []

    async def make(
        identity: str, frequency: float, outgoing: str | None = None, incoming: bool = True, record: bool = True
    ) -> Unit:
        token = hub.token(identity, incoming=incoming, outgoing=outgoing)
        audio = CallAudio(
            source=lambda: ToneSource(frequency), sink=RecordingSink, policy=MediaPolicy(host_addresses=LOOPBACK)
        )
        client = Client(host=hub.address, refresh_token=lambda: token, secure=False, audio=audio)
        events = Events()
        for name in ("status", "incoming", "canceled", "error") if record else ():
            client.on(name, events.record(name))
        async with asyncio.timeout(STEP):
            await client.setup(jwt=token)
        assert client.status is ClientStatus.CONNECTED
        unit = Unit(client, events)
        units.append(unit)
        return unit

    yield make
    for unit in units:
        async with asyncio.timeout(STEP):
            await unit.client.destroy()
