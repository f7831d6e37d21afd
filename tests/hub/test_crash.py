"""A hub killed with SIGKILL mid-voicemail: at its next start the voicemail is repaired, listed
(Voice API and ``intercom calls``) and plays, and the call ends when the hub was last known alive."""

from __future__ import annotations

import asyncio
import inspect
import io
import signal
import time
import wave
from dataclasses import replace

import httpx
import numpy as np
import pytest

from intercom.auth import ADMIN, OutgoingCapability, mint_token
from intercom.cli import main
from intercom.hub import Storage
from intercom.hub.call_log import CallLog
from intercom.hub.callflows import CallFlow
from intercom.hub.recordings import recover_recordings
from intercom.hub.records import CallRecord, LegRecord, RecordingRecord
from intercom.hub.storage import DATABASE_NAME
from intercom.media import ToneSource, WavRecorder
from intercom.media.recorder import WAV_HEADER_BYTES
from intercom.sdk import CallStatus, Client, ClientStatus

from ..cli.test_cli import free_port, start_hub_process
from ..flows.audio import dominant_hz, sound_span
from ..flows.flows import caller_audio, door, store, until_answered
from ..units import STEP

VISITOR_HZ = 440.0
SPOKEN_SECONDS = 2.0
SYNC_SECONDS = 0.2  # the hub's --recording-sync-seconds and --heartbeat-seconds here


def recorded_seconds(path) -> float:
    """What the header of a recording being written counts, in seconds (0 before its first sync)."""
    try:
        with wave.open(str(path)) as file:
            return file.getnframes() / file.getframerate()
    except (FileNotFoundError, EOFError, wave.Error):
        return 0.0


async def until(condition, what: str) -> None:
    """Until ``condition()`` (or what it gives, awaited: a question to the database) holds."""

    async def holds() -> bool:
        answer = condition()
        return await answer if inspect.isawaitable(answer) else answer

    async with asyncio.timeout(STEP):
        while not await holds():
            await asyncio.sleep(0.05)  # polling files another process writes, with a deadline
    assert await holds(), what


async def test_a_hub_killed_mid_voicemail_lists_it_at_its_next_start_and_it_plays(tmp_path, capsys):
    storage = Storage(tmp_path)
    key = await storage.create_key("tests", ADMIN)
    await storage.create_call_flow(
        CallFlow.model_validate(
            {"id": "door", "steps": [{"action": "record", "options": {"maxLength": 60, "timeout": 0}}]}
        )
    )
    port = free_port()
    options = (
        "--data-dir", str(tmp_path), "--port", str(port), "--ice-host", "127.0.0.1",
        "--recording-sync-seconds", str(SYNC_SECONDS), "--heartbeat-seconds", str(SYNC_SECONDS),
    )  # fmt: skip
    hub, _ = await start_hub_process(*options)
    token = mint_token(key, [OutgoingCapability("door", "door")])
    door = Client(
        host=f"127.0.0.1:{port}",
        refresh_token=lambda: token,
        secure=False,
        audio=caller_audio(lambda: ToneSource(VISITOR_HZ)),
    )
    restarted = None
    try:
        async with asyncio.timeout(STEP):
            await door.setup(jwt=token)
        assert door.status is ClientStatus.CONNECTED
        call = door.start_call()
        confirmed = asyncio.Event()
        call.on("status", lambda status: status is CallStatus.CONFIRMED and confirmed.set())
        async with asyncio.timeout(STEP):
            await confirmed.wait()

        async def the_recording() -> RecordingRecord | None:
            found, _ = await storage.page(RecordingRecord)
            return found[0] if found else None

        async def recording_started() -> bool:
            return await the_recording() is not None

        await until(recording_started, "the recording's row is written as it starts")
        started = await the_recording()
        assert started is not None and started.status == "recording"
        path = tmp_path / started.path
        await until(lambda: recorded_seconds(path) >= SPOKEN_SECONDS, "the visitor speaks for 2 s")
        hub.send_signal(signal.SIGKILL)
        killed_at = time.time()
        hub.wait(timeout=STEP)

        restarted_at = time.time()
        restarted, log = await start_hub_process(*options)
        assert any(
            f"recording {started.id} of call {started.call_id}: the hub stopped while it ran" in line for line in log
        ), log

        headers = {"Authorization": f"AccessKey {key.secret}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=STEP) as api:
            (listed,) = (await api.get(f"/v1/calls/{started.call_id}/legs/{started.leg_id}/recordings")).json()["data"]
            assert (listed["id"], listed["status"]) == (started.id, "done")
            assert listed["duration"] >= SPOKEN_SECONDS
            wav = await api.get(listed["_links"]["file"])
            assert wav.status_code == 200
        with wave.open(io.BytesIO(wav.content)) as file:
            assert (file.getframerate(), file.getnchannels()) == (48000, 1)
            samples = np.frombuffer(file.readframes(file.getnframes()), dtype=np.int16)
        assert len(wav.content) == WAV_HEADER_BYTES + 2 * len(samples)  # the header counts every frame
        assert len(samples) / 48000 >= SPOKEN_SECONDS
        assert sound_span(samples) >= SPOKEN_SECONDS - 0.5  # the voice, not silence
        assert dominant_hz(samples[48000 // 2 :]) == pytest.approx(VISITOR_HZ, abs=5)

        kept = await storage.get(RecordingRecord, started.id)
        assert kept is not None and kept.duration == pytest.approx(len(samples) / 48000, abs=0.001)
        ended = await storage.get(CallRecord, started.call_id)
        (leg,) = (await storage.page(LegRecord, parent=started.call_id))[0]
        assert (ended.status, ended.reason, leg.id, leg.status) == (
            "ended", "the hub stopped during the call", started.leg_id, "hangup"
        )  # fmt: skip
        # The end is when the hub was last known alive, a moment before the kill, not the restart.
        assert killed_at - 1.0 <= ended.ended_at <= killed_at < restarted_at
        assert leg.ended_at == ended.ended_at

        assert main(["calls", "show", "--data-dir", str(tmp_path), started.call_id]) == 0
        shown = capsys.readouterr().out
        assert f"  {started.id}  ivr       0:0{round(kept.duration)}  leg {leg.id}  {path}" in shown.splitlines()

        restarted.terminate()
        restarted.wait(timeout=STEP)
        assert (tmp_path / f"{DATABASE_NAME}-wal").stat().st_size == 0  # a clean stop: no check next time
    finally:
        async with asyncio.timeout(STEP):
            await door.destroy()
        for process in (hub, restarted):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=STEP)
        storage.close()


async def logged_call(storage: Storage) -> tuple[CallRecord, LegRecord]:
    """A call and its answered caller leg, as a hub writes them before it dies."""
    call = await storage.put(CallRecord(source="client:door", destination="door", status="ongoing"))
    leg = await storage.put(
        LegRecord(call_id=call.id, source=call.source, destination="door", direction="incoming", status="ongoing")
    )
    leg.answered_at = call.created_at
    return call, await storage.put(leg)


async def started_recording(storage: Storage, leg: LegRecord, **fields) -> RecordingRecord:
    recording = RecordingRecord(call_id=leg.call_id, leg_id=leg.id, kind="ivr", path="", status="recording", **fields)
    recording.path = f"recordings/{recording.id}.wav"
    return await storage.put(recording)


class Told:
    """A stand-in for the webhook dispatcher: what the call log tells it."""

    def __init__(self, told: list[tuple[object, bool]]) -> None:
        self.told = told

    async def publish(self, row, created: bool, extra=None) -> None:
        self.told.append((row, created))


async def test_recordings_left_running_are_repaired_kept_or_dropped(tmp_path):
    storage = Storage(tmp_path)
    _, leg = await logged_call(storage)
    (tmp_path / "recordings").mkdir()
    torn = await started_recording(storage, leg)
    recorder = WavRecorder(tmp_path / torn.path)
    spoken = (8000 * np.sin(2 * np.pi * VISITOR_HZ * np.arange(4800) / 48000)).astype(np.int16)
    recorder.add(spoken)
    recorder.close()
    with open(tmp_path / torn.path, "r+b") as file:
        file.truncate(WAV_HEADER_BYTES + 2 * 3001 + 1)  # cut mid-sample
    no_file = await started_recording(storage, leg)
    header_only = await started_recording(storage, leg)
    (tmp_path / header_only.path).write_bytes(b"RIFF\x00")
    done = await storage.put(
        RecordingRecord(call_id=leg.call_id, leg_id=leg.id, kind="ivr", duration=1.0, path="x.wav")
    )

    told: list[tuple[object, bool]] = []
    call_log = CallLog(storage, Told(told))
    assert await recover_recordings(call_log, tmp_path) == 1

    repaired = await storage.get(RecordingRecord, torn.id)
    assert repaired is not None and (repaired.status, repaired.duration) == ("done", round(3001 / 48000, 3))
    assert repaired.created_at == torn.created_at and (repaired.call_id, repaired.leg_id) == (leg.call_id, leg.id)
    with wave.open(str(tmp_path / torn.path)) as file:
        assert np.array_equal(np.frombuffer(file.readframes(file.getnframes()), dtype=np.int16), spoken[:3001])
    assert (
        await storage.get(RecordingRecord, no_file.id) is None
        and await storage.get(RecordingRecord, header_only.id) is None
    )
    assert not (tmp_path / header_only.path).exists()
    assert await storage.get(RecordingRecord, done.id) == done
    assert told == [(repaired, True)]  # the webhooks hear of the voicemail kept, once


@pytest.mark.parametrize("latest", ["heartbeat", "leg row", "recording's audio"])
async def test_a_call_left_open_ends_when_the_hub_was_last_known_alive(tmp_path, latest):
    storage = Storage(tmp_path)
    call, leg = await logged_call(storage)
    rung = await storage.put(
        LegRecord(
            call_id=call.id, source=call.source, destination="client:desk", direction="outgoing", status="ringing"
        )
    )
    signs = {"heartbeat": leg.updated_at - 600.0, "leg row": rung.updated_at, "recording's audio": rung.updated_at}
    if latest == "heartbeat":
        signs["heartbeat"] = rung.updated_at + 30.0
    await storage.mark_alive(signs["heartbeat"])
    if latest == "recording's audio":
        await storage.put(
            RecordingRecord(
                call_id=call.id, leg_id=leg.id, kind="ivr", duration=12.5, path="r.wav", created_at=rung.updated_at
            )
        )
        signs[latest] = rung.updated_at + 12.5

    assert await CallLog(storage).close_unfinished() == 1

    ended = await storage.get(CallRecord, call.id)
    assert (ended.status, ended.reason, ended.ended_at) == ("ended", "the hub stopped during the call", signs[latest])
    assert (await storage.get(LegRecord, leg.id)).status == "hangup" and (
        await storage.get(LegRecord, rung.id)
    ).status == "failed"
    assert {(await storage.get(LegRecord, row.id)).ended_at for row in (leg, rung)} == {signs[latest]}


@pytest.fixture
def hub_config(hub_config):
    return replace(hub_config, heartbeat_seconds=0.1)


async def test_the_hub_notes_it_is_alive_while_calls_run_and_only_then(hub, make_unit):
    await store(hub, [{"action": "record", "options": {"maxLength": 30, "timeout": 0}}])
    idle_until = time.monotonic() + 0.5  # five heartbeats' time with no call: an observation window
    while time.monotonic() < idle_until:
        assert await hub.storage.last_alive() is None
        await asyncio.sleep(0.05)
    unit = await door(make_unit, lambda: ToneSource(VISITOR_HZ))
    call = unit.start_call()
    await until_answered(unit)

    async def alive_after(moment: float) -> bool:
        return (await hub.storage.last_alive() or 0.0) > moment

    await until(lambda: alive_after(0.0), "a heartbeat while the call runs")
    first = await hub.storage.last_alive()
    await until(lambda: alive_after(first), "the next heartbeat")
    async with asyncio.timeout(STEP):
        await call.disconnect()
        await hub.running.app.state.calls.wait_idle()
    assert time.time() - await hub.storage.last_alive() < 1.0


async def test_a_recording_still_running_is_never_pruned(tmp_path):
    storage = Storage(tmp_path)
    _, leg = await logged_call(storage)
    await started_recording(storage, leg, created_at=1000.0)  # older: the first to go, were it done
    done = await storage.put(
        RecordingRecord(call_id=leg.call_id, leg_id=leg.id, kind="ivr", path="d.wav", created_at=2000.0)
    )
    assert [recording.id for recording in await storage.kept_recordings("ivr", 10)] == [done.id]
