"""The unit's front panel: buttons and keypad in, LEDs and the door-strike relay out.

gpiozero runs button callbacks on its own threads. Each edge is handed to the event loop with
``loop.call_soon_threadsafe`` and nothing else happens on that thread, so debouncing, long presses
and the callers' handlers all run on the loop, in order.

Debouncing is done here rather than by gpiozero's ``bounce_time``, which gpiozero's mock pins do not
implement: an edge within ``bounce_ms`` of the previous accepted edge of the same button is ignored.

A press fires ``on_press(name)`` on its first edge, because button-to-ringing latency matters. A
button still held ``long_press_ms`` after its last press edge fires ``on_long_press(name)`` as well,
once per hold; a release (even a bouncing one) cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpiozero import LED, PWMLED, Button, DigitalOutputDevice, Factory

__all__ = ["BUTTONS", "KEYPAD_KEYS", "LEDS", "Clock", "Panel", "PanelPins"]

logger = logging.getLogger(__name__)

BUTTONS = frozenset({"call", "answer", "reject", "mute", "unlock"})
KEYPAD_KEYS = frozenset("0123456789*#")
LEDS = frozenset({"status", "call", "mute"})


@dataclass(frozen=True)
class PanelPins:
    """Which GPIO (BCM number) each part of the panel is wired to, and how.

    Buttons and keypad keys are wired to ground with the internal pull-ups (``buttons_active_low``)
    unless said otherwise. Building one refuses unknown names and a pin used twice, before any
    device is opened.
    """

    buttons: Mapping[str, int] = field(default_factory=dict)
    keypad: Mapping[str, int] = field(default_factory=dict)
    leds: Mapping[str, int] = field(default_factory=dict)
    pwm_leds: bool = False
    relay: int | None = None
    buttons_active_low: bool = True
    leds_active_low: bool = False
    relay_active_low: bool = False
    bounce_ms: int = 30
    long_press_ms: int = 1000

    def __post_init__(self) -> None:
        _check_names("button", self.buttons, BUTTONS)
        _check_names("keypad key", self.keypad, KEYPAD_KEYS)
        _check_names("LED", self.leds, LEDS)
        if self.bounce_ms < 0:
            raise ValueError(f"bounce_ms must be 0 or more, not {self.bounce_ms}")
        if self.long_press_ms <= 0:
            raise ValueError(f"long_press_ms must be more than 0, not {self.long_press_ms}")
        uses: dict[int, str] = {}
        for use, pin in self._uses():
            if pin in uses:
                raise ValueError(f"GPIO{pin} is used twice: by {uses[pin]} and by {use}")
            uses[pin] = use

    def _uses(self) -> list[tuple[str, int]]:
        uses = [(f"button {name!r}", pin) for name, pin in self.buttons.items()]
        uses += [(f"keypad key {key!r}", pin) for key, pin in self.keypad.items()]
        uses += [(f"LED {name!r}", pin) for name, pin in self.leds.items()]
        if self.relay is not None:
            uses.append(("the relay", self.relay))
        return uses


def _check_names(kind: str, pins: Mapping[str, int], known: frozenset[str]) -> None:
    for name in pins:
        if name not in known:
            raise ValueError(f"unknown {kind} {name!r}: expected one of {', '.join(sorted(known))}")


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the panel needs of time; the event loop is one, and tests pass a fake to step through time."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Cancellable: ...


class _Debounced:
    """One button's edges on the loop: bounce filtering and the long-press timer."""

    def __init__(self, name: str, panel: Panel) -> None:
        self.name = name
        self.panel = panel
        self.last_edge: float | None = None
        self.hold: Cancellable | None = None
        self.closed = False

    def edge(self, pressed: bool) -> None:
        if self.closed:  # an edge still queued on the loop when the panel closed
            return
        now = self.panel.clock.time()
        accepted = self.last_edge is None or now - self.last_edge >= self.panel.pins.bounce_ms / 1000
        if accepted:
            self.last_edge = now
        self._cancel_hold()
        if pressed:
            # Restarted on every press edge, bounces included: a long press is one held steadily.
            self.hold = self.panel.clock.call_later(self.panel.pins.long_press_ms / 1000, self._held)
            if accepted:
                self.panel.on_press(self.name)

    def _held(self) -> None:
        self.hold = None
        if self.panel.on_long_press is not None:
            self.panel.on_long_press(self.name)

    def close(self) -> None:
        self.closed = True
        self._cancel_hold()

    def _cancel_hold(self) -> None:
        if self.hold is not None:
            self.hold.cancel()
            self.hold = None


class Panel:
    """The gpiozero devices for one :class:`PanelPins`, reporting presses on the event loop.

    ``clock`` defaults to ``loop``. Call every method from the loop's thread.
    """

    def __init__(
        self,
        pins: PanelPins,
        loop: asyncio.AbstractEventLoop,
        on_press: Callable[[str], None],
        on_long_press: Callable[[str], None] | None = None,
        pin_factory: Factory | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.pins = pins
        self.on_press = on_press
        self.on_long_press = on_long_press
        self.clock: Clock = loop if clock is None else clock
        self._loop = loop
        self._buttons: dict[str, Button] = {}
        self._debounced: list[_Debounced] = []
        self._leds: dict[str, LED | PWMLED] = {}
        self._relay: DigitalOutputDevice | None = None
        self._pulse_ends = float("-inf")
        try:
            self._open(pin_factory)
        except BaseException:
            self.close()
            raise

    def _open(self, pin_factory: Factory | None) -> None:
        pins = self.pins
        for name, pin in {**pins.buttons, **pins.keypad}.items():
            # Long presses are timed here; hold_time=0 keeps gpiozero's unused hold thread from sitting in
            # a wait as long as hold_time that closing a held button would have to sit out.
            button = Button(pin, pull_up=pins.buttons_active_low, hold_time=0, pin_factory=pin_factory)
            self._buttons[name] = button
            debounced = _Debounced(name, self)
            self._debounced.append(debounced)
            button.when_pressed = self._forward(debounced, True)
            button.when_released = self._forward(debounced, False)
        led_class = PWMLED if pins.pwm_leds else LED
        for name, pin in pins.leds.items():
            self._leds[name] = led_class(pin, active_high=not pins.leds_active_low, pin_factory=pin_factory)
        if pins.relay is not None:
            self._relay = DigitalOutputDevice(
                pins.relay, active_high=not pins.relay_active_low, initial_value=False, pin_factory=pin_factory
            )

    def _forward(self, debounced: _Debounced, pressed: bool) -> Callable[[], None]:
        def on_gpio_thread() -> None:
            self._loop.call_soon_threadsafe(debounced.edge, pressed)

        return on_gpio_thread

    def led(self, name: str) -> LED | PWMLED:
        """The LED called ``name`` (a :class:`~gpiozero.PWMLED` when the panel has ``pwm_leds``)."""
        try:
            return self._leds[name]
        except KeyError:
            raise KeyError(f"this panel has no {name!r} LED (it has: {', '.join(self._leds) or 'none'})") from None

    def pulse_relay(self, seconds: float) -> bool:
        """Energise the door strike once for ``seconds``; False, and nothing done, while a pulse runs.

        A pulse asked for during another neither restarts nor extends it, so that repeated presses
        cannot make the strike chatter or stay open. gpiozero's own thread times the pulse, so the
        strike is released on time even if the event loop stalls.
        """
        if self._relay is None:
            raise RuntimeError("this panel has no relay")
        if seconds <= 0:
            raise ValueError(f"a relay pulse must last more than 0 s, not {seconds}")
        # The deadline covers the moment before gpiozero's thread switches the relay on, and
        # is_active the moment before it switches it off.
        if self.clock.time() < self._pulse_ends or self._relay.is_active:
            logger.info("relay pulse ignored: one is running")
            return False
        self._pulse_ends = self.clock.time() + seconds
        self._relay.blink(on_time=seconds, off_time=0, n=1)
        return True

    def close(self) -> None:
        """Release the relay first, then every other device. Closing twice is harmless, as in gpiozero."""
        if self._relay is not None and not self._relay.closed:
            self._relay.off()
            self._relay.close()
        for device in [*self._buttons.values(), *self._leds.values()]:
            device.close()
        for debounced in self._debounced:
            debounced.close()
