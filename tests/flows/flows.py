"""A door unit calling into a flow the test writes, and what the hub logged about the call."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack

from intercom.hub.callflows import CallFlow
from intercom.hub.records import CallRecord, LegRecord, RecordingRecord
from intercom.media import RecordingSink
from intercom.sdk import CallAudio, CallStatus

from ..conftest import ENDPOINT_LOOPBACK
from ..units import STEP, Unit

HEARD_SECONDS = 30.0
FINAL = (CallStatus.ENDED, CallStatus.FAILED)


async def store(hub, steps: list[dict[str, Any]], flow_id: str = "door", record: bool = False) -> None:
    flow = CallFlow.model_validate({"id": flow_id, "title": flow_id, "record": record, "steps": steps})
    await hub.storage.create_call_flow(flow)


def caller_audio(source: Callable[[], MediaStreamTrack]) -> CallAudio:
    """A door that sends ``source`` and keeps the last 30 s it heard; no tones of its own, so
    everything its sink holds came from the hub."""
    return CallAudio(
        source=source,
        sink=lambda track: RecordingSink(track, keep_seconds=HEARD_SECONDS),
        policy=ENDPOINT_LOOPBACK,
        tones=None,
    )


async def door(make_unit, source: Callable[[], MediaStreamTrack], identity: str = "door", flow: str = "door") -> Unit:
    return await make_unit(identity, caller_audio(source), outgoing=flow, incoming=False)


async def until_over(unit: Unit, timeout: float = STEP) -> CallStatus:
    await unit.events.until(lambda: any(status in FINAL for status in unit.events.of("call.status")), timeout)
    return next(status for status in unit.events.of("call.status") if status in FINAL)


async def until_answered(unit: Unit) -> None:
    await unit.events.until(lambda: CallStatus.CONFIRMED in unit.events.of("call.status"))


def heard(call) -> np.ndarray:
    """Everything the caller heard (up to 30 s), as float samples."""
    return call.sink.recent(HEARD_SECONDS)


async def call_log(hub) -> tuple[CallRecord, list[LegRecord], list[RecordingRecord]]:
    """The last call, once the hub has finished it: its row, legs and recordings."""
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
    calls, _ = await hub.storage.page(CallRecord, newest_first=True)
    legs, _ = await hub.storage.page(LegRecord, parent=calls[0].id)
    recordings = [rec for leg in legs for rec in (await hub.storage.page(RecordingRecord, parent=leg.id))[0]]
    return calls[0], legs, recordings


def read_wav(hub, recording: RecordingRecord) -> tuple[np.ndarray, int, int]:
    """Samples (frames x channels), rate and channel count of a kept recording."""
    path = Path(hub.storage.data_dir) / recording.path
    with wave.open(str(path)) as file:
        channels, rate = file.getnchannels(), file.getframerate()
        samples = np.frombuffer(file.readframes(file.getnframes()), dtype=np.int16)
    return samples.reshape(-1, channels), rate, channels
