"""MessageBird's own SDKs, as they ship, against a real hub serving https on 127.0.0.1.

The SDKs verify TLS; each is told to trust the tests' certificate the way its users would
(REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS) and has only its host changed to the hub's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack

from intercom.hub import HubConfig
from intercom.hub.records import RecordingRecord
from intercom.sdk import CallStatus

from ...flows.flows import caller_audio, until_over
from ...flows.receiver import Posted
from ...units import STEP, Unit

SAY = {"action": "say", "options": {"payload": "A parcel is at the door", "language": "en-gb"}}
HANGUP = {"action": "hangup"}
CALL_TOKEN = "call-token-of-thirty-two-bytes-00"  # signs the deliveries of a call's own webhook
# One second recorded of whoever answers, then a pause the test ends with a DELETE of the call.
RECORD_THEN_WAIT = {
    "steps": [
        {"id": "message", "action": "record", "options": {"maxLength": 1, "timeout": 0, "finishOnKey": "none"}},
        {"id": "wait", "action": "pause", "options": {"length": 60}},
    ]
}


@pytest.fixture
def hub_config(hub_config: HubConfig, tls_files: tuple[Path, Path]) -> HubConfig:
    """The hub of tests/conftest.py, serving https as a hub does beyond loopback."""
    cert, key = tls_files
    return dataclasses.replace(hub_config, cert_file=cert, key_file=key)


@pytest.fixture
async def desk(make_unit) -> Unit:
    """``client:desk``, registered with the hub, to answer the calls the SDKs make."""
    return await make_unit("desk", caller_audio(AudioStreamTrack))


async def answer(desk: Unit) -> None:
    """The desk takes the call ringing it, and the hub confirms it."""
    await desk.accept(await desk.next_incoming())
    await desk.events.until(lambda: CallStatus.CONFIRMED in desk.events.of("call.status"))


async def hung_up(desk: Unit, hub: Any) -> None:
    """The desk's call has ended and the hub has logged all of it."""
    assert await until_over(desk) is CallStatus.ENDED
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()


async def recording_file(hub: Any, recording_id: str) -> Path:
    """Where the hub keeps a recording's WAV."""
    recording = await hub.storage.get(RecordingRecord, recording_id)
    assert recording is not None, recording_id
    return Path(hub.storage.data_dir) / recording.path


async def recording_done(hub: Any, leg_id: str) -> RecordingRecord:
    """The leg's recording once its record step has closed the file. Polled, with a deadline: the
    hub tells nobody when a step ends."""
    async with asyncio.timeout(STEP):
        while True:
            recordings, _ = await hub.storage.page(RecordingRecord, parent=leg_id)
            if recordings and recordings[0].status == "done":
                return recordings[0]
            await asyncio.sleep(0.05)


def told_of(posted: Posted) -> set[str]:
    """The ids of the calls a webhook delivery is about (its items' calls, and its legs' calls)."""
    items = json.loads(posted.body)["items"]
    return {item["payload"]["id" if item["type"] == "call" else "callID"] for item in items}
