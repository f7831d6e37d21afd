"""``intercom demo``: a hub, a door unit and a desk unit on loopback, every status change printed.

What it shows grows with the product. Today: a hub starts with a call flow that rings
``client:desk``; the desk and door units connect (a client whose token names an invalid
identity is refused with 406); the door calls, the desk rings and answers, each side hears the
other's test tone through the hub, the desk sends the unlock digits, and the door hangs up.
GPIO buttons and lights arrive with the appliance.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from .auth import AccessKey, IncomingCapability, OutgoingCapability, mint_token
from .hub import HubConfig, Storage, running_hub
from .hub.callflows import CallFlow
from .media import MediaPolicy, RecordingSink, ToneSource
from .sdk import Call, CallAudio, CallStatus, Client, ClientError, IncomingCall

STEP_TIMEOUT = 15.0
LOOPBACK = MediaPolicy(host_addresses=("127.0.0.1",))
DOOR_TONE, DESK_TONE = 440.0, 880.0
UNLOCK_DIGITS = "1#"


def _say(who: str, what: object) -> None:
    print(f"[{who:>5}] {what}", flush=True)


async def _unit(host: str, key: AccessKey, name: str, tone: float, capabilities: list) -> Client:
    """A unit's client, connected (or refused: the error is printed)."""

    def token() -> str:
        return mint_token(key, capabilities)

    audio = CallAudio(source=lambda: ToneSource(tone), sink=RecordingSink, policy=LOOPBACK)
    client = Client(host=host, refresh_token=token, secure=False, audio=audio)
    client.on("status", lambda status: _say(name, f"status {status}"))
    client.on("error", lambda error: _say(name, f"error {error.code}: {error.message}"))
    with contextlib.suppress(ClientError):
        await asyncio.wait_for(client.setup(jwt=token()), STEP_TIMEOUT)
    return client


def _follow(name: str, call: Call) -> dict[CallStatus, asyncio.Event]:
    reached = {status: asyncio.Event() for status in CallStatus}
    call.on("status", lambda status: (_say(name, f"call {status}"), reached[status].set()))
    call.on("digits", lambda digit: _say(name, f"digit {digit} received"))
    call.on("error", lambda error: _say(name, f"call error: {error.message.splitlines()[0]}"))
    return reached


async def _hears(name: str, call: Call, expected: float) -> None:
    sink = call.sink
    assert isinstance(sink, RecordingSink)
    await sink.wait_until(lambda: abs((sink.dominant_frequency(0.3) or 0) - expected) < 15, STEP_TIMEOUT)
    _say(name, f"hears {sink.dominant_frequency(0.3):.0f} Hz (the other unit's {expected:.0f} Hz tone)")


async def run_demo(data_dir: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="intercom-demo-") as scratch:
        data_dir = data_dir or Path(scratch)
        storage = Storage(data_dir)
        hub_media = MediaPolicy(host_addresses=("127.0.0.1",), jitter_frames=0)
        config = HubConfig(data_dir=data_dir, host="127.0.0.1", port=0, media=hub_media)
        async with running_hub(config, storage) as hub:
            host = hub.address
            _say("hub", f"listening on ws://{host}/ (data in {data_dir})")
            key = storage.create_key("demo")
            _say("hub", f"access key {key.id} created")
            ring_desk = {"id": "door", "title": "Front door", "steps": [
                {"action": "transfer", "options": {"destination": "client:desk", "timeout": 30}},
            ]}  # fmt: skip
            storage.create_call_flow(CallFlow.model_validate(ring_desk))
            _say("hub", "call flow 'door' rings client:desk")

            desk = await _unit(host, key, "desk", DESK_TONE, [IncomingCapability("desk")])
            door = await _unit(host, key, "door", DOOR_TONE, [OutgoingCapability("door", "door")])
            await _unit(host, key, "bad", 0.0, [IncomingCapability("front door!")])  # refused: 406

            offered: asyncio.Future[IncomingCall] = asyncio.get_running_loop().create_future()
            desk.on("incoming", lambda incoming: offered.done() or offered.set_result(incoming))
            _say("door", "button pressed: calling")
            call = door.start_call(button="front")
            door_reached = _follow("door", call)
            incoming = await asyncio.wait_for(offered, STEP_TIMEOUT)
            _say("desk", f"ringing: {incoming.display_name} is at the door")
            await asyncio.wait_for(door_reached[CallStatus.RINGING].wait(), STEP_TIMEOUT)
            _say("desk", "answer pressed")
            answered = incoming.accept()
            desk_reached = _follow("desk", answered)
            await asyncio.wait_for(door_reached[CallStatus.CONFIRMED].wait(), STEP_TIMEOUT)
            await asyncio.wait_for(_hears("door", call, DESK_TONE), STEP_TIMEOUT)
            await asyncio.wait_for(_hears("desk", answered, DOOR_TONE), STEP_TIMEOUT)

            digits: asyncio.Queue[str] = asyncio.Queue()
            call.on("digits", digits.put_nowait)
            _say("desk", f"unlock pressed: sending {UNLOCK_DIGITS}")
            answered.send_digits(UNLOCK_DIGITS)
            received = "".join([await asyncio.wait_for(digits.get(), STEP_TIMEOUT) for _ in UNLOCK_DIGITS])
            _say("door", f"unlock code {received} received: the door would open here")

            _say("door", "hanging up")
            await asyncio.wait_for(call.disconnect(), STEP_TIMEOUT)
            await asyncio.wait_for(desk_reached[CallStatus.ENDED].wait(), STEP_TIMEOUT)
            for client in (door, desk):
                await asyncio.wait_for(client.destroy(), STEP_TIMEOUT)
            _say("hub", "demo finished")
