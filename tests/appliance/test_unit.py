"""Door and desk units whole, on mock GPIO pins and a loopback hub: a press at the door rings the desk."""

from __future__ import annotations

import asyncio
import socket

import pytest
from gpiozero.pins.mock import MockFactory
from pydantic import SecretStr

from intercom.appliance.settings import Settings
from intercom.appliance.unit import Unit, hub_address, panel_pins
from intercom.auth import ADMIN
from intercom.hub import Storage, running_hub
from intercom.media import RecordingSink, ToneSource
from intercom.sdk import CallAudio, ClientError, ClientStatus, ForbiddenError

from ..conftest import ENDPOINT_LOOPBACK
from ..units import DESK_HZ, DOOR_HZ, STEP, store_flow
from .boards import SignallingPin, blinking, confirmed, last_on_seconds, lit, press, until

CODE = "4711#"


def settings_for(hub, role: str, **values) -> Settings:
    return Settings(
        role=role, identity=role, hub_url=f"ws://{hub.address}", access_key_id=hub.key.id,
        access_key=hub.key.secret, unlock_code=CODE, call_flow="door" if role == "door" else "desk",
        relay_pulse_s=0.3, **values,
    )  # fmt: skip


@pytest.fixture
async def units(hub, boards):
    """A door and a desk on the test's hub, each on a board of its own."""
    await store_flow(hub, "door", "client:desk")
    await store_flow(hub, "desk", "client:door")

    async def make(role: str, hz: float, **values) -> tuple[Unit, MockFactory]:
        return await boards.start(settings_for(hub, role, **values), hz)

    return make


def test_the_settings_become_the_panel_and_the_hub_address():
    settings = Settings(
        role="door", identity="door", hub_url="wss://desk.local", access_key_id="k", access_key="s",
        unlock_code="1234#", button_answer_pin="", keypad_pins="1:12", leds_active_low=True,
    )  # fmt: skip
    pins = panel_pins(settings)
    assert pins.buttons == {"call": 17, "reject": 22, "mute": 23, "unlock": 24}
    assert pins.leds == {"status": 5, "call": 6, "mute": 13} and pins.relay == 26 and pins.keypad == {"1": 12}
    assert pins.leds_active_low and pins.buttons_active_low
    assert hub_address("wss://desk.local") == ("desk.local:443", True)
    assert hub_address("ws://192.168.1.20:8443") == ("192.168.1.20:8443", False)


async def test_a_press_at_the_door_rings_the_desk_whose_answer_unlock_and_hang_up_work(units):
    desk, desk_pins = await units("desk", DESK_HZ)
    door, door_pins = await units("door", DOOR_HZ)
    status, call_led, mute_led, relay = 5, 6, 13, 26
    await until(lambda: blinking(door_pins, status) or lit(door_pins, status))  # connected: the heartbeat
    assert door.client.status is ClientStatus.CONNECTED

    await press(door_pins, 17)  # CALL
    await until(lambda: blinking(desk_pins, call_led))  # the desk rings
    assert desk.controller.offered is not None
    await press(desk_pins, 27)  # ANSWER
    await until(lambda: confirmed(desk, desk_pins, call_led) and confirmed(door, door_pins, call_led))

    await press(desk_pins, 23)  # MUTE
    await until(lambda: lit(desk_pins, mute_led))
    await press(desk_pins, 24)  # UNLOCK: an unlock request, no code typed; the door's relay pulses once
    await until(lambda: sum(1 for s in door_pins.pin(relay).states if s.state) == 1)
    await until(lambda: not lit(door_pins, relay))
    states = door_pins.pin(relay).states  # each state's timestamp: seconds since the one before
    on = next(index for index, state in enumerate(states) if state.state)
    assert states[on + 1].timestamp == pytest.approx(0.3, abs=0.1)

    await press(desk_pins, 22)  # REJECT hangs up the call in progress
    await until(lambda: not lit(door_pins, call_led) and not lit(desk_pins, call_led) and not lit(desk_pins, mute_led))
    assert sum(1 for s in door_pins.pin(relay).states if s.state) == 1  # never again


async def test_a_hub_restart_shows_connecting_then_connected_on_the_status_light(hub_config, tmp_path):
    storage = Storage(hub_config.data_dir)
    key = await storage.create_key("units", ADMIN)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        hub_config.port = free.getsockname()[1]
    factory = MockFactory(pin_class=SignallingPin)
    SignallingPin.changed_event, SignallingPin.loop = asyncio.Event(), asyncio.get_running_loop()
    status = 5

    def connecting() -> bool:  # the slow blink: 0.5 s on
        return last_on_seconds(factory, status) == pytest.approx(0.5, abs=0.15)

    def connected() -> bool:  # the heartbeat: 0.1 s on every 2 s
        return last_on_seconds(factory, status) == pytest.approx(0.1, abs=0.06)

    settings = Settings(
        role="door", identity="door", hub_url=f"ws://127.0.0.1:{hub_config.port}", access_key_id=key.id,
        access_key=key.secret, unlock_code=CODE,
    )  # fmt: skip
    audio = CallAudio(source=lambda: ToneSource(DOOR_HZ), sink=RecordingSink, policy=ENDPOINT_LOOPBACK)
    try:
        async with running_hub(hub_config, storage):
            unit = Unit(settings, audio, pin_factory=factory)
            unit.client.reconnect_delay_min = 0.2
            await unit.start()
            await until(connected)
        await until(connecting)  # the hub went away
        assert unit.client.status is ClientStatus.CONNECTING
        async with running_hub(hub_config, storage):
            await until(connected, timeout=STEP * 2)
            assert unit.client.status is ClientStatus.CONNECTED
            async with asyncio.timeout(STEP):
                await unit.stop()
    finally:
        storage.close()
        factory.reset()
        factory.close()


async def test_call_held_down_at_the_door_hangs_up(units):
    desk, desk_pins = await units("desk", DESK_HZ)
    door, door_pins = await units("door", DOOR_HZ, long_press_ms=200)
    call_led = 6
    await press(door_pins, 17)
    await until(lambda: blinking(desk_pins, call_led))
    await press(desk_pins, 27)
    await until(lambda: confirmed(desk, desk_pins, call_led) and confirmed(door, door_pins, call_led))
    button = door_pins.pin(17)
    await asyncio.to_thread(button.drive_low)  # held: after 0.2 s the call ends, the button still down
    await until(lambda: not lit(door_pins, call_led) and not lit(desk_pins, call_led))
    assert door.controller.call is None and desk.controller.call is None
    await asyncio.to_thread(button.drive_high)


async def test_a_refused_unit_shows_error_until_the_hub_takes_its_key_then_connects(hub, boards):
    secret = "a-key-the-hub-does-not-have-yet-0123456789"
    settings = settings_for(hub, "door").model_copy(update={"access_key_id": "later", "access_key": SecretStr(secret)})
    door, pins = boards.build(settings, DOOR_HZ)
    door.client.forbidden_retry_delay = 0.01  # the seed SDK's 5 s between its 5 tries, shortened
    door.retry_after_error_s = 1.0
    refusals: list[ClientError] = []
    door.client.on("error", refusals.append)
    status = 5

    def fast_blink() -> bool:  # 0.1 s on, 0.1 s off (the heartbeat is 0.1 s on, 1.9 s off)
        states = pins.pin(status).states
        return len(states) >= 6 and all(state.timestamp == pytest.approx(0.1, abs=0.05) for state in states[-4:])

    door.connect()
    await until(lambda: len(refusals) >= 2 and fast_blink())  # refused, tried again, refused again
    assert isinstance(refusals[0], ForbiddenError) and door.client.status is ClientStatus.OFFLINE
    await hub.storage.put_key("later", secret, "the installer adds the door's key", ADMIN)
    await until(lambda: door.client.status is ClientStatus.CONNECTED and not fast_blink() and lit(pins, status))
