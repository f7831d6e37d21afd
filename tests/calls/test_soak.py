"""200 calls in a row (answered, rejected, cancelled), tones and all: nothing of them may stay behind."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

from aiortc import MediaStreamTrack, RTCPeerConnection

from intercom.media import RecordingSink, ToneSource
from intercom.sdk import CallAudio, CallStatus, progress_tones

from ..conftest import ENDPOINT_LOOPBACK, STEP
from ..units import store_flow

CALLS = 200
WARM_UP = 30  # one-time growth first: the executor pool, codec state, the bounded parse caches
RSS_GROWTH_LIMIT_MB = 15.0


def peer_connections() -> int:
    gc.collect()
    return sum(isinstance(thing, RTCPeerConnection) for thing in gc.get_objects())


def threads() -> int:
    """Threads but the workers of the loop's default executor, a pool that keeps its threads."""
    return sum(not thread.name.startswith("asyncio_") for thread in threading.enumerate())


class OpenSinks:
    """The ``CallAudio.sink`` factory of a unit, counting the sinks its calls and tones hold open."""

    def __init__(self) -> None:
        self.count = 0

    def sink(self, track: MediaStreamTrack) -> RecordingSink:
        return _CountedSink(track, self)

    def audio(self, hz: float) -> CallAudio:
        return CallAudio(source=lambda: ToneSource(hz), sink=self.sink, policy=ENDPOINT_LOOPBACK)


class _CountedSink(RecordingSink):
    def __init__(self, track: MediaStreamTrack, sinks: OpenSinks) -> None:
        super().__init__(track, keep_seconds=0.5)
        self._sinks = sinks

    def start(self) -> None:
        super().start()
        self._sinks.count += 1

    async def stop(self) -> None:
        await super().stop()
        self._sinks.count -= 1


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def settled(measure, expected: int, timeout: float = STEP) -> int:
    """``measure()`` once it is back at ``expected`` (aiortc finishes closing in the background)."""
    async with asyncio.timeout(timeout):
        while (value := measure()) > expected:
            await asyncio.sleep(0.05)
    return value


EXPECTED = {
    "answered": [
        CallStatus.CONNECTING,
        CallStatus.RINGING,
        CallStatus.ACCEPTED,
        CallStatus.CONFIRMED,
        CallStatus.ENDED,
    ],
    "rejected": [CallStatus.CONNECTING, CallStatus.RINGING, CallStatus.FAILED],
    "cancelled": [CallStatus.CONNECTING, CallStatus.RINGING, CallStatus.ENDED],
}


async def one_call(door, desk, kind: str) -> None:
    call = door.start_call()
    ended = asyncio.Event()
    statuses: list[CallStatus] = []
    call.on("status", statuses.append)
    call.on("status", lambda status: status in (CallStatus.ENDED, CallStatus.FAILED) and ended.set())
    ringing = asyncio.Event()
    call.on("status", lambda status: status is CallStatus.RINGING and ringing.set())
    offered: asyncio.Future = asyncio.get_running_loop().create_future()
    desk.client.on("incoming", handler := lambda incoming: offered.done() or offered.set_result(incoming))
    try:
        async with asyncio.timeout(STEP):
            incoming = await offered
            await ringing.wait()
            if kind == "answered":
                answered = incoming.accept()
                confirmed = asyncio.Event()
                call.on("status", lambda status: status is CallStatus.CONFIRMED and confirmed.set())
                if call.status is not CallStatus.CONFIRMED:
                    await confirmed.wait()
                await call.sink.wait_for_audio(STEP)  # media really flowed before the hang-up
                await answered.disconnect()
            elif kind == "rejected":
                incoming.reject()
            else:
                await call.disconnect()
            await ended.wait()
    finally:
        desk.client.off("incoming", handler)
    assert statuses == EXPECTED[kind]


async def test_two_hundred_calls_leave_nothing_behind(hub, make_unit, monkeypatch):
    monkeypatch.setattr(progress_tones, "FAILURE_TONE_SECONDS", 0.25)  # congestion for one round, 0.5 s
    await store_flow(hub, "door", "client:desk")
    sinks = OpenSinks()  # both units': ringback, ring, congestion and the far end
    desk = await make_unit("desk", sinks.audio(880.0), record=False)  # a recorder would keep every call alive
    door = await make_unit("door", sinks.audio(440.0), outgoing="door", incoming=False, record=False)
    kinds = ["answered", "rejected", "cancelled"]
    calls = hub.running.app.state.calls
    for index in range(WARM_UP):
        await one_call(door, desk, kinds[index % 3])
    async with asyncio.timeout(STEP):
        await calls.wait_idle()
    baseline = {
        "open sinks": await settled(lambda: sinks.count, 0),  # the last congestion tone has ended
        "peer connections": await settled(peer_connections, 0),
        "tasks": len(asyncio.all_tasks()),
        "threads": threads(),
        "fds": open_fds(),
    }
    rss_before = rss_mb()
    for index in range(CALLS):
        await one_call(door, desk, kinds[index % 3])
    async with asyncio.timeout(STEP):
        await calls.wait_idle()
    after = {
        "open sinks": await settled(lambda: sinks.count, 0),
        "peer connections": await settled(peer_connections, baseline["peer connections"]),
        "tasks": await settled(lambda: len(asyncio.all_tasks()), baseline["tasks"]),
        "threads": await settled(threads, baseline["threads"]),
        "fds": await settled(open_fds, baseline["fds"]),
    }
    assert after == baseline
    growth = rss_mb() - rss_before
    assert growth < RSS_GROWTH_LIMIT_MB, f"RSS grew {growth:.1f} MB over {CALLS} calls"
