"""Connected SDK units for call tests: a call flow stored, events recorded, tones sent and heard."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack

from intercom.appliance.settings import DEFAULT_CALL_FLOW
from intercom.auth import unit_scope
from intercom.hub import Storage
from intercom.hub.callflows import CallFlow
from intercom.media import RecordingSink
from intercom.media.tones import EU, TonePlan, ToneTrack, WavTrack
from intercom.sdk import Call, Client, IncomingCall
from intercom.sdk.registration import RegistrationState
from intercom.sip import Request

STEP = 10.0  # seconds any single await in a test may take
LOOPBACK = ("127.0.0.1",)
KEEP_SECONDS = 10.0  # what a RecordingSink keeps by default


async def store_flow(hub, flow_id: str, destination: str, timeout: int = 30, then_hangup: bool = False) -> None:
    steps: list[dict[str, Any]] = [
        {"id": "ring", "action": "transfer", "options": {"destination": destination, "timeout": timeout}}
    ]
    if then_hangup:
        steps.append({"id": "bye", "action": "hangup"})
    await hub.storage.create_call_flow(CallFlow.model_validate({"id": flow_id, "title": flow_id, "steps": steps}))


async def unit_key(hub_dir: Path, role: str, identity: str) -> dict[str, str]:
    """A unit's own key in the hub's database at ``hub_dir``, as ``intercom units add`` makes it: the
    settings ``access_key_id`` and ``access_key`` of that unit."""
    storage = Storage(hub_dir)
    try:
        key = await storage.create_key(f"unit {identity}", unit_scope(role, identity, DEFAULT_CALL_FLOW[role]))
    finally:
        storage.close()
    return {"access_key_id": key.id, "access_key": key.secret}


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
    await store_flow(hub, "door", "client:desk", timeout=timeout)
    desk = await make_unit("desk", DESK_HZ)
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    return door, desk


TONE_NAMES = ("ringback", "busy", "congestion", "ring")


class Speaker:
    """A unit's speaker as tests hear it: each sink its calls open is a :class:`RecordingSink` named
    after what it plays (a tone of ``plan``, ``"ring file"`` or ``"far end"``), and each start and
    stop is logged among ``events`` as ``("sink.start", name)`` or ``("sink.stop", name)``."""

    def __init__(self, plan: TonePlan = EU) -> None:
        self.plan = plan
        self.events = Events()
        self.sinks: list[tuple[str, RecordingSink]] = []

    def sink(self, track: MediaStreamTrack) -> RecordingSink:
        """The ``CallAudio.sink`` factory."""
        sink = _LoggedSink(track, self.name_of(track), self.events)
        self.sinks.append((sink.name, sink))
        return sink

    def name_of(self, track: MediaStreamTrack) -> str:
        if isinstance(track, WavTrack):
            return "ring file"
        if not isinstance(track, ToneTrack):
            return "far end"
        for name in TONE_NAMES:
            tone = getattr(self.plan, name)
            # A failure tone plays its cadence a few times over, then stops.
            if track.tone.frequencies == tone.frequencies and track.tone.cadence[: len(tone.cadence)] == tone.cadence:
                return name
        raise AssertionError(f"{track.tone} is none of the {self.plan.region} plan's tones")

    def log(self) -> list[tuple[str, str]]:
        """Every sink started and stopped, in order."""
        return [(event, name) for event, name in self.events.log if event in ("sink.start", "sink.stop")]

    def open(self) -> list[str]:
        """The sinks started and not yet stopped."""
        return [name for name, sink in self.sinks if sink.running]

    async def started(self, name: str) -> RecordingSink:
        """The first sink named ``name``, once it has started."""
        await self.events.until(lambda: ("sink.start", name) in self.log())
        return next(sink for sink_name, sink in self.sinks if sink_name == name)


class _LoggedSink(RecordingSink):
    def __init__(self, track: MediaStreamTrack, name: str, events: Events) -> None:
        super().__init__(track)
        self.name = name
        self._events = events
        self.running = False

    def start(self) -> None:
        super().start()
        if not self.running:
            self.running = True
            self._events.record("sink.start")(self.name)

    async def stop(self) -> None:
        await super().stop()
        if self.running:
            self.running = False
            self._events.record("sink.stop")(self.name)


async def recorded(sink: RecordingSink, seconds: float) -> np.ndarray:
    """The first ``seconds`` that ``sink`` heard, once it has heard them (float samples)."""
    wanted = round(seconds * sink.sample_rate)
    await sink.wait_until(lambda: len(sink.recent(KEEP_SECONDS)) >= wanted, STEP)
    return sink.recent(KEEP_SECONDS)[:wanted]


async def registered_raw_desk(hub, raw_sip):
    """A bare SIP peer registered as ``desk``: the test answers its INVITEs by hand."""
    sip = await raw_sip()
    response = await sip.exchange(RegistrationState(hub.address).build(hub.token("desk")))
    assert response.status_code == 200
    return sip


async def next_request(sip, method: str) -> Request:
    async with asyncio.timeout(STEP):
        while True:
            message = await sip.receive()
            if isinstance(message, Request) and message.method == method:
                return message
