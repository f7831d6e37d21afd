"""``intercom demo``: a desk unit hosting the hub and a door unit, on mock GPIO pins, a real call, a timeline.

The desk runs the hub embedded (``INTERCOM_HUB_EMBEDDED``), the usual two-unit install: on its
first start the hub adopts the units' access key and makes the call flows ``ring_desks`` (the
door's CALL rings ``client:desk``) and ``ring_door``. A client whose identity is invalid is refused
with 406. Then the door connects to the desk's hub, and the script presses the units' buttons as a
visitor and a resident would: CALL at the door, the desk rings, ANSWER, each side hears the
other's test tone through the hub, UNLOCK asks the door to open (no code typed: the door opens for
the desk because the hub asserts that the request comes from the desk) and the door's relay
pulses, REJECT hangs up. Then the visitor rings again and nobody answers: the flow's message is spoken to the door and
the visitor's message recorded, and the call log is printed as ``intercom calls list`` shows it.
Every light pattern, relay pulse and status change is printed as it happens, with the time since
the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from gpiozero.pins.mock import MockFactory

from .appliance.enrolment import HubSide, add_unit
from .appliance.settings import Settings
from .appliance.unit import Unit
from .auth import AccessKey, IncomingCapability, mint_token
from .auth.keys import new_key_id, new_key_secret
from .hub import Storage
from .hub.call_log_text import call_list
from .hub.tls import certificate_fingerprint
from .media import MediaPolicy, RecordingSink, ToneSource
from .sdk import Call, CallAudio, CallStatus, Client, ClientError

STEP_TIMEOUT = 15.0
LOOPBACK = MediaPolicy(host_addresses=("127.0.0.1",))
DOOR_TONE, DESK_TONE = 440.0, 880.0
UNLOCK_CODE = "583920#"  # the keypad's; the desk's UNLOCK types no code
RELAY_PULSE_S = 1.0
RING_TIMEOUT_S = 5  # the demo's desk does not keep the visitor waiting long before the voicemail
VOICEMAIL_S = 2.0
CALLS_SHOWN = 20  # as many as `intercom calls list` shows by default
PINS = {"call": 17, "answer": 27, "reject": 22, "unlock": 24}  # the defaults of deploy/intercom.env.example


class Timeline:
    def __init__(self) -> None:
        self._started = time.monotonic()

    def say(self, who: str, what: object) -> None:
        print(f"{time.monotonic() - self._started:6.2f}s [{who:>5}] {what}", flush=True)

    def watcher(self, who: str) -> Callable[[str, str, object], None]:
        def watch(kind: str, name: str, value: object) -> None:
            if kind == "light":
                self.say(who, f"light {name}: {value}")
            else:
                self.say(who, f"relay: {name} energised for {value} s")

        return watch


async def _refused_client(host: str, key: AccessKey, pin: str, timeline: Timeline) -> None:
    token = mint_token(key, [IncomingCapability("front door!")])
    client = Client(host=host, refresh_token=lambda: token, tls_fingerprint=pin)
    client.on("error", lambda error: timeline.say("bad", f"error {error.code}: {error.message}"))
    with contextlib.suppress(ClientError):
        await asyncio.wait_for(client.setup(jwt=token), STEP_TIMEOUT)


async def _unit(settings: Settings, tone: float, timeline: Timeline) -> tuple[Unit, MockFactory]:
    audio = CallAudio(source=lambda: ToneSource(tone), sink=RecordingSink, policy=LOOPBACK, tones=None)
    board = MockFactory()  # each unit is a board of its own
    unit = Unit(settings, audio, pin_factory=board)
    role = settings.role
    unit.watchers.append(timeline.watcher(role))
    unit.client.on("status", lambda status: timeline.say(role, f"status {status}"))
    await unit.start()
    return unit, board


def _press(who: str, board: MockFactory, button: str, timeline: Timeline) -> None:
    timeline.say(who, f"{button.upper()} pressed")
    pin = board.pin(PINS[button])
    pin.drive_low()
    pin.drive_high()


async def _reached(unit: Unit, status: CallStatus | None) -> Call | None:
    """The unit's call once it reached ``status`` (``None``: once the unit has no call any more)."""
    reached = asyncio.Event()

    def there() -> bool:
        call = unit.controller.call
        return call is None if status is None else call is not None and call.status is status

    async def wait() -> Call | None:
        while not there():
            reached.clear()
            await reached.wait()
        return unit.controller.call

    def changed(*_: object) -> None:
        reached.set()

    unit.watchers.append(changed)  # every status change shows on the call light
    try:
        return await asyncio.wait_for(wait(), STEP_TIMEOUT)
    finally:
        unit.watchers.remove(changed)


async def _hears(who: str, call: Call, expected: float, timeline: Timeline) -> None:
    sink = call.sink
    assert isinstance(sink, RecordingSink)
    await sink.wait_until(lambda: abs((sink.dominant_frequency(0.3) or 0) - expected) < 15, STEP_TIMEOUT)
    timeline.say(who, f"hears {sink.dominant_frequency(0.3):.0f} Hz (the other unit's {expected:.0f} Hz tone)")


async def run_demo(data_dir: Path | None = None) -> None:
    timeline = Timeline()
    with tempfile.TemporaryDirectory(prefix="intercom-demo-") as scratch:
        data_dir = data_dir or Path(scratch)
        key = AccessKey(new_key_id(), new_key_secret(), "demo", created_at=time.time())  # `intercom config new-key`
        timing = {"relay_pulse_s": RELAY_PULSE_S, "ring_timeout_s": RING_TIMEOUT_S}
        # On a LAN the desk listens on 0.0.0.0 and TLS comes by itself; here, on loopback, it is asked for.
        desk_settings = Settings(
            role="desk", identity="desk", hub_embedded=True, hub_listen="127.0.0.1", hub_port=0, hub_tls="on",
            hub_data_dir=data_dir, access_key_id=key.id, access_key=key.secret, **timing,
        )  # fmt: skip
        desk, desk_board = await _unit(desk_settings, DESK_TONE, timeline)
        units = [desk]
        try:
            assert desk.hub is not None
            host = desk.hub.local_address
            pin = certificate_fingerprint(data_dir)
            timeline.say(
                "hub", f"embedded in the desk, serving wss://{host}/ with its own certificate (data in {data_dir})"
            )
            timeline.say(
                "hub",
                f"call flow 'ring_desks' rings client:desk for {RING_TIMEOUT_S} s, then a message and a voicemail; "
                "'ring_door' rings client:door",
            )
            await _refused_client(host, key, pin, timeline)
            lines = add_unit(HubSide.of_embedded(desk_settings, url=f"wss://{host}"), "door", "door")
            door_env = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
            timeline.say(
                "demo",
                f"`intercom units add --role door --identity door` on the desk: the door's env file gets the hub's "
                f"URL, its own key ({door_env['INTERCOM_ACCESS_KEY_ID'][:8]}…) and the pin SHA-256 {pin[:11]}…",
            )
            door_state = data_dir / "door"  # the door's unlock log and lockouts (INTERCOM_STATE_DIR)
            door_state.mkdir(mode=0o700, exist_ok=True)
            door_settings = Settings(
                **{name.removeprefix("INTERCOM_").lower(): value for name, value in door_env.items()},
                unlock_code=UNLOCK_CODE, state_dir=door_state, **timing,
            )  # fmt: skip
            door, door_board = await _unit(door_settings, DOOR_TONE, timeline)
            units.insert(0, door)

            _press("door", door_board, "call", timeline)
            await _reached(door, CallStatus.RINGING)
            _press("desk", desk_board, "answer", timeline)
            door_call = await _reached(door, CallStatus.CONFIRMED)
            desk_call = await _reached(desk, CallStatus.CONFIRMED)
            assert door_call is not None and desk_call is not None
            await asyncio.wait_for(_hears("door", door_call, DESK_TONE, timeline), STEP_TIMEOUT)
            await asyncio.wait_for(_hears("desk", desk_call, DOOR_TONE, timeline), STEP_TIMEOUT)
            relay = door_board.pin(door.settings.relay_pin)
            _press("desk", desk_board, "unlock", timeline)
            await asyncio.wait_for(_relay_pulsed(relay), STEP_TIMEOUT)
            timeline.say("door", "relay released: the door is shut again")
            _press("desk", desk_board, "reject", timeline)
            await _reached(door, None)
            await _nobody_home(door, door_board, desk, timeline)
        finally:
            for unit in units:  # the desk, and its hub, last
                await asyncio.wait_for(unit.stop(), STEP_TIMEOUT)
        timeline.say("hub", "the call log, as `intercom calls list` shows it over SSH:")
        storage = Storage(data_dir)
        try:
            for line in await call_list(storage, CALLS_SHOWN):
                timeline.say("hub", f"  {line}")
        finally:
            storage.close()
        timeline.say("hub", "demo finished")


async def _nobody_home(door: Unit, door_board: MockFactory, desk: Unit, timeline: Timeline) -> None:
    """The visitor rings again and nobody answers: the hub's flow says its message, and records
    what the visitor says until the visitor hangs up (CALL held)."""
    timeline.say("demo", f"the visitor rings again; this time nobody answers for {RING_TIMEOUT_S} s")
    _press("door", door_board, "call", timeline)
    await _reached(door, CallStatus.RINGING)
    door_call = await asyncio.wait_for(_reached(door, CallStatus.CONFIRMED), RING_TIMEOUT_S + STEP_TIMEOUT)
    assert door_call is not None
    timeline.say("hub", "no answer: the hub answers the door itself and speaks")
    sink = door_call.sink
    assert isinstance(sink, RecordingSink)
    await sink.wait_until(lambda: sink.first_audio_at is not None and sink.is_silent(0.6), STEP_TIMEOUT)
    spoken = time.monotonic() - 0.6 - cast(float, sink.first_audio_at)
    timeline.say("door", f"heard the hub's message ({spoken:.1f} s of speech); the visitor speaks (440 Hz)")
    await asyncio.sleep(VOICEMAIL_S)  # the visitor's message
    hold_s = door.settings.long_press_ms / 1000 + 0.2
    timeline.say("door", f"CALL held {hold_s:.1f} s: the visitor hangs up")
    pin = door_board.pin(PINS["call"])
    pin.drive_low()
    await asyncio.sleep(hold_s)
    pin.drive_high()
    await _reached(door, None)
    assert desk.hub is not None and desk.hub.running is not None
    await asyncio.wait_for(desk.hub.running.app.state.calls.wait_idle(), STEP_TIMEOUT)


async def _relay_pulsed(relay: object) -> None:
    """Until the relay pin has gone on and off again (gpiozero's own thread times the pulse)."""
    while not (len(relay.states) >= 3 and not relay.state):  # type: ignore[attr-defined]
        await asyncio.sleep(0.02)  # a demo's progress display, not a test: polling the mock pin is fine
