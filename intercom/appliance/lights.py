"""LED patterns as data, and the tables that say which pattern shows which status.

Patterns run on gpiozero's own ``blink()`` threads: each is a steady level or a blink, and gpiozero
stops a LED's running blink whenever it is given something new, so switching patterns needs no
bookkeeping here and the lights keep their rhythm even when the event loop is busy.

The status tables use plain strings as keys: the SDK's ``ClientStatus`` and ``CallStatus`` are str
enums with these values, so they look up directly and this module needs no SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gpiozero import LED, PWMLED

from .panel import Panel

__all__ = [
    "CALL_STATUS_PATTERN",
    "CLIENT_STATUS_PATTERN",
    "LOCKOUT_PATTERN",
    "MUTED_PATTERN",
    "PATTERNS",
    "Blink",
    "Lights",
    "Pattern",
    "Steady",
]


@dataclass(frozen=True)
class Steady:
    """A constant brightness, 0 to 1; a plain LED is on for anything above 0."""

    level: float


@dataclass(frozen=True)
class Blink:
    """On for ``on_time`` s, off for ``off_time`` s, ``n`` times (None: until replaced), then off.

    Fades are for PWM LEDs only (gpiozero's plain ``LED.blink`` has none).
    """

    on_time: float
    off_time: float
    n: int | None = None
    fade_in_time: float = 0.0
    fade_out_time: float = 0.0


@dataclass(frozen=True)
class Pattern:
    """What a pattern does on a PWM LED, and on a plain LED where that cannot do the same."""

    pwm: Steady | Blink
    plain: Steady | Blink

    def __post_init__(self) -> None:
        if isinstance(self.plain, Blink) and (self.plain.fade_in_time or self.plain.fade_out_time):
            raise ValueError("a plain LED cannot fade: give the pattern a plain blink without fades")


def _same(drive: Steady | Blink) -> Pattern:
    return Pattern(pwm=drive, plain=drive)


PATTERNS: Mapping[str, Pattern] = {
    "off": _same(Steady(0.0)),
    "on": _same(Steady(1.0)),
    "slow_blink": _same(Blink(on_time=0.5, off_time=0.5)),
    "fast_blink": _same(Blink(on_time=0.1, off_time=0.1)),
    "three_flashes": _same(Blink(on_time=0.2, off_time=0.2, n=3)),
    "ring_blink": _same(Blink(on_time=0.25, off_time=0.25)),
    # Mostly on, dark for a moment each second: unlike any call status, and plain LEDs do it too.
    "lockout": _same(Blink(on_time=1.0, off_time=0.25)),
    # Alive and idle: a brief soft pulse every 2 s, or a short blink where there is no PWM.
    "heartbeat": Pattern(
        pwm=Blink(on_time=0.0, off_time=1.6, fade_in_time=0.2, fade_out_time=0.2),
        plain=Blink(on_time=0.1, off_time=1.9),
    ),
}

CLIENT_STATUS_PATTERN: Mapping[str, str] = {
    "offline": "off",
    "connecting": "slow_blink",
    "connected": "heartbeat",
    "error": "fast_blink",
}

CALL_STATUS_PATTERN: Mapping[str, str] = {
    "connecting": "slow_blink",  # dialling: the hub has not reached anyone yet
    "ringing": "ring_blink",
    "accepted": "on",
    "confirmed": "on",
    "failed": "three_flashes",
    "ended": "off",
}

MUTED_PATTERN: Mapping[bool, str] = {True: "on", False: "off"}

# The door's call light while no call is up and its unlock guard is locked out: the visitor who
# guesses sees that guessing stopped; the status light keeps telling the unit's own health.
LOCKOUT_PATTERN = "lockout"


class Lights:
    """Shows patterns on a panel's LEDs, one pattern per LED, each replacing the one before."""

    def __init__(self, panel: Panel) -> None:
        self._panel = panel

    def show(self, led_name: str, pattern_name: str) -> None:
        """Switch the LED ``led_name`` to the pattern ``pattern_name`` from :data:`PATTERNS`."""
        try:
            pattern = PATTERNS[pattern_name]
        except KeyError:
            raise KeyError(f"no LED pattern {pattern_name!r} (known: {', '.join(PATTERNS)})") from None
        led = self._panel.led(led_name)
        if isinstance(led, PWMLED):
            _drive_pwm(led, pattern.pwm)
        else:
            _drive_plain(led, pattern.plain)


def _drive_pwm(led: PWMLED, drive: Steady | Blink) -> None:
    match drive:
        case Steady(level):
            led.value = level
        case Blink():
            led.blink(drive.on_time, drive.off_time, drive.fade_in_time, drive.fade_out_time, n=drive.n)


def _drive_plain(led: LED, drive: Steady | Blink) -> None:
    match drive:
        case Steady(level):
            led.value = level > 0
        case Blink():
            led.blink(drive.on_time, drive.off_time, n=drive.n)
