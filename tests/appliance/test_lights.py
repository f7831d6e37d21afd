"""Every LED pattern, read back from the mock pin's state history."""

from __future__ import annotations

import asyncio

import pytest
from gpiozero.pins.mock import MockFactory

from intercom.appliance import CALL_STATUS_PATTERN, CLIENT_STATUS_PATTERN, MUTED_PATTERN, PATTERNS, Lights, PanelPins
from intercom.appliance.lights import Blink, Pattern, Steady
from intercom.sdk import CallStatus, ClientStatus

from .conftest import MakePanel
from .helpers import WatchedPin, WatchedPWMPin, assert_history, history

LED_PIN = 25
PWM = pytest.mark.parametrize("factory", [WatchedPWMPin], ids=["pwm"], indirect=True)
BOTH = pytest.mark.parametrize("factory", [WatchedPin, WatchedPWMPin], ids=["plain", "pwm"], indirect=True)


def lights_on(make_panel: MakePanel, factory: MockFactory, **pins: object) -> tuple[Lights, WatchedPin]:
    pwm = factory.pin_class is WatchedPWMPin
    lights = Lights(make_panel(PanelPins(leds={"status": LED_PIN}, pwm_leds=pwm, **pins)))  # type: ignore[arg-type]
    pin: WatchedPin = factory.pin(LED_PIN)
    return lights, pin


# Seconds since the change before, and the LED's state, from the moment the pattern is shown.
BLINKS = {
    "slow_blink": [(0.0, 0), (0.0, 1), (0.5, 0), (0.5, 1), (0.5, 0)],
    "fast_blink": [(0.0, 0), (0.0, 1), (0.1, 0), (0.1, 1), (0.1, 0), (0.1, 1)],
    "ring_blink": [(0.0, 0), (0.0, 1), (0.25, 0), (0.25, 1), (0.25, 0)],
    "three_flashes": [(0.0, 0), (0.0, 1), (0.2, 0), (0.2, 1), (0.2, 0), (0.2, 1), (0.2, 0)],
}


@BOTH
@pytest.mark.parametrize("name", list(BLINKS))
async def test_blinks(make_panel: MakePanel, factory: MockFactory, name: str) -> None:
    lights, pin = lights_on(make_panel, factory)
    pin.clear_states()
    lights.show("status", name)
    assert_history(await history(pin, len(BLINKS[name])), BLINKS[name])


@BOTH
async def test_three_flashes_then_stays_off(make_panel: MakePanel, factory: MockFactory) -> None:
    lights, pin = lights_on(make_panel, factory)
    pin.clear_states()
    lights.show("status", "three_flashes")
    await history(pin, 7)
    # A fourth flash would start 0.2 s after the third ended; waiting three times that returns at once if it does.
    async with asyncio.timeout(5):
        assert not await asyncio.to_thread(pin.wait_for_states, 8, 0.6)
    assert not pin.state


@BOTH
@pytest.mark.parametrize(("before", "name", "level"), [("off", "on", 1), ("on", "off", 0)])
async def test_steady(make_panel: MakePanel, factory: MockFactory, before: str, name: str, level: int) -> None:
    lights, pin = lights_on(make_panel, factory)
    lights.show("status", before)
    pin.clear_states()
    lights.show("status", name)
    assert [s.state for s in pin.states] == [1 - level, level]


async def test_plain_heartbeat_is_a_short_blink_every_two_seconds(make_panel: MakePanel, factory: MockFactory) -> None:
    lights, pin = lights_on(make_panel, factory)
    pin.clear_states()
    lights.show("status", "heartbeat")
    assert_history(await history(pin, 5), [(0.0, 0), (0.0, 1), (0.1, 0), (1.9, 1), (0.1, 0)])


@PWM
async def test_pwm_heartbeat_is_a_soft_pulse_every_two_seconds(make_panel: MakePanel, factory: MockFactory) -> None:
    lights, pin = lights_on(make_panel, factory)
    pin.clear_states()
    lights.show("status", "heartbeat")
    # gpiozero fades in 25 steps a second: 0.2 s up through 0.2 .. 1.0, 0.2 s down to 0, 1.6 s dark.
    states = await history(pin, 12)
    levels = [round(s.state, 3) for s in states]
    assert levels == [0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.8, 0.6, 0.4, 0.2, 0, 0.2]
    pulse = sum(s.timestamp for s in states[2:11])
    assert abs(pulse - 0.36) <= 0.1, states
    assert abs(states[11].timestamp - 1.64) <= 0.2, states


@BOTH
async def test_a_new_pattern_replaces_a_running_blink(make_panel: MakePanel, factory: MockFactory) -> None:
    lights, pin = lights_on(make_panel, factory)
    pin.clear_states()
    lights.show("status", "fast_blink")
    await history(pin, 3)
    lights.show("status", "on")
    count = len(pin.states)
    # fast_blink would change the pin every 0.1 s; waiting three times that returns at once if it does.
    async with asyncio.timeout(5):
        assert not await asyncio.to_thread(pin.wait_for_states, count + 1, 0.3)
    assert pin.state


async def test_an_active_low_led_is_on_when_its_pin_is_low(make_panel: MakePanel, factory: MockFactory) -> None:
    lights, pin = lights_on(make_panel, factory, leds_active_low=True)
    assert pin.state
    lights.show("status", "on")
    assert not pin.state


async def test_an_unknown_pattern_is_a_clear_key_error(make_panel: MakePanel, factory: MockFactory) -> None:
    lights, _ = lights_on(make_panel, factory)
    with pytest.raises(KeyError, match="no LED pattern 'disco'"):
        lights.show("status", "disco")


def test_the_status_tables_cover_the_sdk_statuses_and_name_known_patterns() -> None:
    assert set(CLIENT_STATUS_PATTERN) == {status.value for status in ClientStatus}
    assert set(CALL_STATUS_PATTERN) == {status.value for status in CallStatus}
    assert CLIENT_STATUS_PATTERN[ClientStatus.CONNECTED] == "heartbeat"
    assert CALL_STATUS_PATTERN[CallStatus.RINGING] == "ring_blink"
    assert MUTED_PATTERN == {True: "on", False: "off"}
    tables = [*CLIENT_STATUS_PATTERN.values(), *CALL_STATUS_PATTERN.values(), *MUTED_PATTERN.values()]
    assert set(tables) <= set(PATTERNS)


def test_a_plain_fallback_cannot_fade() -> None:
    with pytest.raises(ValueError, match="a plain LED cannot fade"):
        Pattern(pwm=Steady(1.0), plain=Blink(on_time=0.1, off_time=0.1, fade_in_time=0.1))
