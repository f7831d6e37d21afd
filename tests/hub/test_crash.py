"""A hub killed with SIGKILL mid-voicemail: at its next start the voicemail is repaired, listed
(Voice API and ``intercom calls``) and plays, and the call ends when the hub was last known alive."""

from __future__ import annotations

import asyncio
import io
import signal
import time
import wave

import httpx
import numpy as np
import pytest

from intercom.auth import ADMIN, OutgoingCapability, mint_token
from intercom.cli import main
from intercom.hub import Storage
from intercom.hub.callflows import CallFlow
from intercom.hub.records import CallRecord, LegRecord, RecordingRecord
from intercom.media import ToneSource
from intercom.media.recorder import WAV_HEADER_BYTES
from intercom.sdk import CallStatus, Client, ClientStatus

from ..cli.test_cli import free_port, start_hub_process
from ..flows.audio import dominant_hz, sound_span
from ..flows.flows import caller_audio
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
    async with asyncio.timeout(STEP):
        while not condition():
            await asyncio.sleep(0.05)  # polling files another process writes, with a deadline
    assert condition(), what


async def test_a_hub_killed_mid_voicemail_lists_it_at_its_next_start_and_it_plays(tmp_path, capsys):
    storage = Storage(tmp_path)
    key = storage.create_key("tests", ADMIN)
    storage.create_call_flow(
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

        def the_recording() -> RecordingRecord | None:
            found, _ = storage.page(RecordingRecord)
            return found[0] if found else None

        await until(lambda: the_recording() is not None, "the recording's row is written as it starts")
        started = the_recording()
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

        kept = storage.get(RecordingRecord, started.id)
        assert kept is not None and kept.duration == pytest.approx(len(samples) / 48000, abs=0.001)
        ended = storage.get(CallRecord, started.call_id)
        (leg,) = storage.page(LegRecord, parent=started.call_id)[0]
        assert (ended.status, ended.reason, leg.id, leg.status) == (
            "ended", "the hub stopped during the call", started.leg_id, "hangup"
        )  # fmt: skip
        # The end is when the hub was last known alive, a moment before the kill, not the restart.
        assert killed_at - 1.0 <= ended.ended_at <= killed_at < restarted_at
        assert leg.ended_at == ended.ended_at

        assert main(["calls", "show", "--data-dir", str(tmp_path), started.call_id]) == 0
        shown = capsys.readouterr().out
        assert f"  {started.id}  ivr       0:0{round(kept.duration)}  leg {leg.id}  {path}" in shown.splitlines()
    finally:
        async with asyncio.timeout(STEP):
            await door.destroy()
        for process in (hub, restarted):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=STEP)
        storage.close()
