"""Mock pins that can be waited on, a clock that moves when told, and pressing buttons from a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpiozero.pins.mock import MockPin, MockPWMPin, PinState

# Blink threads on a shared 2-core machine wake late now and then: generous, but still far tighter
# than the gaps between patterns (0.1, 0.2, 0.25, 0.5 s).
ABS_TOLERANCE = 0.06
REL_TOLERANCE = 0.1


class _Watched(MockPin):
    """Notifies waiters of every state change, so that tests wait for changes instead of sleeping."""

    def __init__(self, factory: Any, info: Any) -> None:
        self.changed = threading.Condition()
        super().__init__(factory, info)

    def _change_state(self, value: Any) -> bool:
        with self.changed:
            changed: bool = super()._change_state(value)
            self.changed.notify_all()
        return changed

    def wait_for_states(self, count: int, timeout: float) -> bool:
        """Wait until the history holds ``count`` states; False if it does not within ``timeout`` s."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.states) >= count, timeout)


class WatchedPin(_Watched):
    """A plain mock pin (buttons, LEDs, the relay) that can be waited on."""


class WatchedPWMPin(_Watched, MockPWMPin):
    """A PWM mock pin (PWM LEDs) that can be waited on."""


async def history(pin: _Watched, count: int, timeout: float = 5.0) -> list[PinState]:
    """The pin's first ``count`` states, once it has been through that many."""
    async with asyncio.timeout(timeout + 1):
        reached = await asyncio.to_thread(pin.wait_for_states, count, timeout)
    assert reached, f"only {len(pin.states)} states within {timeout} s: {pin.states}"
    return list(pin.states[:count])


def assert_history(states: list[PinState], expected: list[tuple[float, float]]) -> None:
    """States and the seconds since the change before each, within the tolerances above."""
    assert [s.state for s in states] == [state for _, state in expected], states
    for actual, (seconds, _) in zip(states, expected, strict=True):
        assert abs(actual.timestamp - seconds) <= ABS_TOLERANCE + REL_TOLERANCE * seconds, states


async def drive(pin: MockPin, high: bool) -> None:
    """Drive an input from another thread, as gpiozero's own threads report real edges.

    When this returns the loop has already handled the edge: the edge's ``call_soon_threadsafe``
    callback is queued before the thread's completion, and the loop runs its callbacks in order.
    """
    async with asyncio.timeout(5):
        await asyncio.to_thread(pin.drive_high if high else pin.drive_low)


async def press(pin: MockPin) -> None:
    """Press a button wired to ground (active low)."""
    await drive(pin, high=False)


async def release(pin: MockPin) -> None:
    await drive(pin, high=True)


@dataclass
class _Timer:
    when: float
    callback: Callable[..., object]
    args: tuple[Any, ...]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClock:
    """A :class:`~intercom.appliance.panel.Clock` that moves only in :meth:`advance`."""

    now: float = 0.0
    timers: list[_Timer] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> _Timer:
        timer = _Timer(self.now + delay, callback, args)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move on ``seconds`` and run the timers that fall due, in order."""
        self.now += seconds
        due = sorted((t for t in self.timers if t.when <= self.now and not t.cancelled), key=lambda t: t.when)
        self.timers = [t for t in self.timers if t.when > self.now and not t.cancelled]
        for timer in due:
            timer.callback(*timer.args)


@dataclass
class Presses:
    """What a panel reported, and on which threads."""

    events: list[tuple[str, str]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def on_press(self, name: str) -> None:
        self.events.append(("press", name))
        self.threads.append(threading.current_thread())

    def on_long_press(self, name: str) -> None:
        self.events.append(("long", name))
        self.threads.append(threading.current_thread())
