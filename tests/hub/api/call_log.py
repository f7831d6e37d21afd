"""A call log to read back: rows put in storage as the call service would leave them, and a
stand-in for the call service's ``originate`` and ``hang_up``."""

from __future__ import annotations

import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

from intercom.hub import Storage
from intercom.hub.callflows import CallFlow
from intercom.hub.records import CallRecord, LegRecord, RecordingRecord, Webhook

T0 = 1795600800.0  # 2026-11-25T10:00:00Z


@dataclass
class DoorCall:
    """The door rang the desk and the kitchen; the desk answered and talked 42 s, recorded."""

    call: CallRecord
    caller: LegRecord
    desk: LegRecord
    kitchen: LegRecord
    recording: RecordingRecord
    wav: bytes


def write_wav(path: Path, seconds: float = 0.25, rate: int = 8000) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x01" * int(seconds * rate))
    return path.read_bytes()


async def door_call(storage: Storage, start: float = T0) -> DoorCall:
    call = await storage.put(
        CallRecord(
            source="door",
            destination="client:desk,client:kitchen",
            status="ended",
            call_flow_id="door",
            created_at=start,
            ended_at=start + 50,
            reason="caller hung up",
        )
    )
    caller = await storage.put(
        LegRecord(
            call_id=call.id, source="door", destination="hub", status="hangup", direction="incoming",
            created_at=start, answered_at=start + 1, ended_at=start + 50,
        )
    )  # fmt: skip
    desk = await storage.put(
        LegRecord(
            call_id=call.id, source="door", destination="client:desk", status="hangup", direction="outgoing",
            created_at=start + 1, answered_at=start + 8, ended_at=start + 50,
        )
    )  # fmt: skip
    kitchen = await storage.put(
        LegRecord(
            call_id=call.id, source="door", destination="client:kitchen", status="no_answer",
            direction="outgoing", created_at=start + 2, ended_at=start + 8,
        )
    )  # fmt: skip
    relative = f"recordings/{call.id}/{desk.id}.wav"
    wav = write_wav(storage.data_dir / relative)
    recording = await storage.put(
        RecordingRecord(
            call_id=call.id, leg_id=desk.id, kind="transfer", duration=42.4, path=relative, created_at=start + 50
        )
    )
    return DoorCall(call, caller, desk, kitchen, recording, wav)


@dataclass
class StandInCalls:
    """The two methods the Voice API calls on ``app.state.calls``, as records only: ``originate``
    queues a call, ``hang_up`` ends one that has not ended."""

    storage: Storage
    originated: list[tuple[CallRecord, CallFlow, Webhook | None]] = field(default_factory=list)

    async def originate(self, *, source: str, identity: str, flow: CallFlow, webhook: Webhook | None) -> CallRecord:
        call = await self.storage.put(
            CallRecord(source=source, destination=f"client:{identity}", status="queued", call_flow_id=flow.id)
        )
        self.originated.append((call, flow, webhook))
        return call

    async def hang_up(self, call_id: str) -> bool:
        call = await self.storage.get(CallRecord, call_id)
        if call is None or call.status == "ended":
            return False
        call.status, call.ended_at, call.reason = "ended", time.time(), "hung up through the API"
        await self.storage.put(call)
        return True
