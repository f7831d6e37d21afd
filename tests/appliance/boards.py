"""Whole units on boards of mock pins: built from settings, pressed from another thread, their
lights read from the pins, and every change of any pin waking the test instead of a sleep."""

from __future__ import annotations

import asyncio
import ssl

from gpiozero.pins.mock import MockFactory

from intercom.appliance.settings import Settings
from intercom.appliance.unit import Unit
from intercom.media import RecordingSink, ToneSource
from intercom.sdk import CallAudio, CallStatus

from ..conftest import ENDPOINT_LOOPBACK
from ..units import STEP
from .helpers import WatchedPin

Tls = ssl.SSLContext | None


class SignallingPin(WatchedPin):
    """Also wakes the test's loop on every change: the lights and the relay are all the test reads."""

    changed_event: asyncio.Event
    loop: asyncio.AbstractEventLoop

    def _change_state(self, value: object) -> bool:
        changed = super()._change_state(value)
        self.loop.call_soon_threadsafe(self.changed_event.set)
        return changed


class Boards:
    """Units the test makes, each on a mock pin factory of its own (one board each), stopped at the end."""

    def __init__(self) -> None:
        self.made: list[tuple[Unit, MockFactory]] = []
        SignallingPin.changed_event, SignallingPin.loop = asyncio.Event(), asyncio.get_running_loop()

    def build(
        self, settings: Settings, hz: float, ssl_context: ssl.SSLContext | None = None
    ) -> tuple[Unit, MockFactory]:
        factory = MockFactory(pin_class=SignallingPin)
        audio = CallAudio(source=lambda: ToneSource(hz), sink=RecordingSink, policy=ENDPOINT_LOOPBACK)
        try:
            unit = Unit(settings, audio, pin_factory=factory, ssl_context=ssl_context)
        except BaseException:
            factory.close()
            raise
        self.made.append((unit, factory))
        return unit, factory

    async def start(
        self, settings: Settings, hz: float, ssl_context: ssl.SSLContext | None = None
    ) -> tuple[Unit, MockFactory]:
        unit, factory = self.build(settings, hz, ssl_context)
        await unit.start()
        return unit, factory

    async def stop_all(self) -> None:
        for unit, factory in reversed(self.made):  # a unit hosting the hub stops last
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


def last_on_seconds(factory: MockFactory, pin: int) -> float | None:
    """How long the light was on the last time it went off (each state's timestamp: time since the one before)."""
    states = factory.pin(pin).states
    for before, after in zip(reversed(states[:-1]), reversed(states[1:]), strict=True):
        if before.state and not after.state:
            return after.timestamp
    return None
