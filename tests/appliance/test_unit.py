"""Door and desk units whole, on mock GPIO pins and a loopback hub: a press at the door rings the desk."""

from __future__ import annotations

import asyncio
import socket

import pytest
from gpiozero.pins.mock import MockFactory

from intercom.appliance.settings import Settings
from intercom.appliance.unit import Unit, hub_address, panel_pins
from intercom.hub import Storage, running_hub
from intercom.media import RecordingSink, ToneSource
from intercom.sdk import CallAudio, CallStatus, ClientStatus

from ..conftest import ENDPOINT_LOOPBACK
from ..units import DESK_HZ, DOOR_HZ, STEP, store_flow
from .helpers import WatchedPin

CODE = "4711#"


def settings_for(hub, role: str, **values) -> Settings:
    return Settings(
        role=role, identity=role, hub_url=f"ws://{hub.address}", access_key_id=hub.key.id,
        access_key=hub.key.secret, unlock_code=CODE, call_flow="door" if role == "door" else "desk",
        relay_pulse_s=0.3, **values,
    )  # fmt: skip


@pytest.fixture
async def units(hub):
    """A door and a desk, each on a mock pin factory of its own (one board each)."""
    store_flow(hub, "door", "client:desk")
    store_flow(hub, "desk", "client:door")
    made: list[tuple[Unit, MockFactory]] = []
    SignallingPin.changed_event, SignallingPin.loop = asyncio.Event(), asyncio.get_running_loop()

    async def make(role: str, hz: float, **values) -> tuple[Unit, MockFactory]:
        factory = MockFactory(pin_class=SignallingPin)
        audio = CallAudio(source=lambda: ToneSource(hz), sink=RecordingSink, policy=ENDPOINT_LOOPBACK)
        unit = Unit(settings_for(hub, role, **values), audio, pin_factory=factory)
        made.append((unit, factory))
        await unit.start()
        return unit, factory

    yield make
    for unit, factory in made:
        async with asyncio.timeout(STEP):
            await unit.stop()
        factory.reset()
        factory.close()


async def press(factory: MockFactory, pin: int) -> None:
    """Press and release a button wired to ground, from another thread as a real edge would come."""
    button = factory.pin(pin)
    async with asyncio.timeout(STEP):
        await asyncio.to_thread(button.drive_low)
        await asyncio.to_thread(button.drive_high)


class SignallingPin(WatchedPin):
    """Also wakes the test's loop on every change: the lights and the relay are all the test reads."""

    changed_event: asyncio.Event
    loop: asyncio.AbstractEventLoop

    def _change_state(self, value: object) -> bool:
        changed = super()._change_state(value)
        self.loop.call_soon_threadsafe(self.changed_event.set)
        return changed


async def until(condition, timeout: float = STEP) -> None:
    """Wait for ``condition`` on the pins, checked after each change of any pin."""
    async with asyncio.timeout(timeout):
        while not condition():
            SignallingPin.changed_event.clear()
            await SignallingPin.changed_event.wait()


def lit(factory: MockFactory, pin: int) -> bool:
    return bool(factory.pin(pin).state)


def confirmed(unit: Unit, factory: MockFactory, call_led: int) -> bool:
    """In a call, its light on: the light is switched on as the call is confirmed."""
    call = unit.controller.call
    return call is not None and call.status is CallStatus.CONFIRMED and lit(factory, call_led)


def blinking(factory: MockFactory, pin: int) -> bool:
    states = factory.pin(pin).states
    return sum(1 for state in states[-6:] if state.state) >= 2 and sum(1 for s in states[-6:] if not s.state) >= 2


def test_the_settings_become_the_panel_and_the_hub_address():
    settings = Settings(
        role="door", identity="door", hub_url="wss://desk.local", access_key_id="k", access_key="s",
        unlock_code="1#", button_answer_pin="", keypad_pins="1:12", leds_active_low=True,
    )  # fmt: skip
    pins = panel_pins(settings)
    assert pins.buttons == {"call": 17, "reject": 22, "mute": 23, "unlock": 24}
    assert pins.leds == {"status": 5, "call": 6, "mute": 13} and pins.relay == 26 and pins.keypad == {"1": 12}
    assert pins.leds_active_low and pins.buttons_active_low
    assert hub_address(settings) == ("desk.local:443", True)
    embedded = settings.model_copy(update={"hub_url": None, "hub_port": 9000})
    assert hub_address(embedded) == ("127.0.0.1:9000", False)


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
    await press(desk_pins, 24)  # UNLOCK: the code as DTMF; the door's relay pulses once
    await until(lambda: sum(1 for s in door_pins.pin(relay).states if s.state) == 1)
    await until(lambda: not lit(door_pins, relay))
    states = door_pins.pin(relay).states  # each state's timestamp: seconds since the one before
    on = next(index for index, state in enumerate(states) if state.state)
    assert states[on + 1].timestamp == pytest.approx(0.3, abs=0.1)

    await press(desk_pins, 22)  # REJECT hangs up the call in progress
    await until(lambda: not lit(door_pins, call_led) and not lit(desk_pins, call_led) and not lit(desk_pins, mute_led))
    assert sum(1 for s in door_pins.pin(relay).states if s.state) == 1  # never again


def last_on_seconds(factory: MockFactory, pin: int) -> float | None:
    """How long the light was on the last time it went off (each state's timestamp: time since the one before)."""
    states = factory.pin(pin).states
    for before, after in zip(reversed(states[:-1]), reversed(states[1:]), strict=True):
        if before.state and not after.state:
            return after.timestamp
    return None


async def test_a_hub_restart_shows_connecting_then_connected_on_the_status_light(hub_config, tmp_path):
    storage = Storage(hub_config.data_dir)
    key = storage.create_key("units")
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
