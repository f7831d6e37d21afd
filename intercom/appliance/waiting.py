"""A unit whose settings cannot work shows it and waits for new ones (``intercom appliance --wait-for-settings``).

Exiting on bad settings would leave a unit on the wall dark, with nothing to say why. Instead the
one line that names the variable (the line ``intercom config check`` prints) is logged once and
becomes ``systemctl status``'s status, the status light blinks fast, and the unit waits, pinging
the watchdog, until the env file changes: then it exits :data:`SETTINGS_CHANGED`, and systemd's
``Restart=always`` starts it again on the new file. SIGTERM exits 0, as ever.

The status light's own settings are read leniently, from the same file and environment, so that
a bad value elsewhere (or an env file the unit refuses) does not also leave the light dark. The
door strike's relay is read the same way and held at its inactive level while the unit waits: the
strike is off whenever the unit is not running it. The file is polled every :data:`POLL_S`
seconds rather than watched with inotify: no dependency, and a fix is never more than two seconds
from being seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from gpiozero import Factory
from gpiozero.pins.mock import MockFactory
from pydantic import TypeAdapter, ValidationError

from .lights import CLIENT_STATUS_PATTERN, Lights
from .panel import Panel, PanelPins
from .settings import BCM_PINS, PREFIX, Settings
from .systemd import Notifier

log = logging.getLogger(__name__)

SETTINGS_CHANGED = 75  # EX_TEMPFAIL: the env file changed, run again (deploy/intercom.service: a success)
POLL_S = 2.0
DEFAULT_STATUS_PIN: int = Settings.model_fields["led_status_pin"].default
DEFAULT_RELAY_PIN: int = Settings.model_fields["relay_pin"].default

Signature = tuple[int, ...] | None  # what a change of the env file changes; None: no file


@dataclass(frozen=True)
class StatusLight:
    """The status light as far as it can be told from settings that may be wrong elsewhere."""

    pin: int | None  # None: not fitted (INTERCOM_LED_STATUS_PIN empty)
    active_low: bool = False
    mock: bool = False  # INTERCOM_PIN_FACTORY=mock


def signature(path: Path) -> Signature:
    """Changes when the file is edited, replaced, created, deleted, or has its mode or owner changed
    (``chmod 640`` mends a file others may read)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return (
        status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns,
        status.st_mode, status.st_uid, status.st_gid,
    )  # fmt: skip


@dataclass(frozen=True)
class Relay:
    """The door strike's relay as far as it can be told from settings that may be wrong elsewhere."""

    pin: int
    active_low: bool = False


def _lenient_values(env_file: Path, environ: Mapping[str, str] | None) -> Callable[[str], str | None]:
    """A setting's raw value by its name without the prefix, from ``env_file`` and the environment
    (which wins, as in :func:`~.settings.load_settings`); None when neither sets it."""
    try:
        from_file = dotenv_values(env_file)
    except (OSError, ValueError):  # unreadable: the environment alone
        from_file = {}
    values = {name.upper(): value for name, value in from_file.items() if value is not None}
    values |= {name.upper(): value for name, value in (os.environ if environ is None else environ).items()}
    return lambda name: values.get(f"{PREFIX}{name}")


def _pin(given: str | None) -> int | None:
    return int(given) if given is not None and given.strip().isdigit() and int(given) in BCM_PINS else None


def _flag(given: str) -> bool | None:
    try:
        return TypeAdapter(bool).validate_python(given)
    except ValidationError:
        return None


def status_light(env_file: Path, environ: Mapping[str, str] | None = None) -> StatusLight:
    """The status light's pin, polarity and pin factory from ``env_file`` and the environment;
    each value that does not parse is its default."""
    value = _lenient_values(env_file, environ)
    given = value("LED_STATUS_PIN")
    pin = None if given is not None and not given.strip() else _pin(given) or DEFAULT_STATUS_PIN
    active_low = _flag(value("LEDS_ACTIVE_LOW") or "false") or False
    return StatusLight(pin, active_low, (value("PIN_FACTORY") or "").strip() == "mock")


def relay(env_file: Path, environ: Mapping[str, str] | None = None) -> Relay | None:
    """The relay's pin and polarity, read as :func:`status_light` reads the light's; None when
    there is none (``INTERCOM_RELAY_PIN`` empty) or when its pin or polarity does not parse. Unlike
    the light's, a bad value is not replaced by the default: a guessed polarity could energise the
    strike (an active-low relay driven low), a guessed pin drive a part wired to it
    (``deploy/strike-off.sh`` decides the same)."""
    value = _lenient_values(env_file, environ)
    given = value("RELAY_PIN")
    if given is not None and not given.strip():
        return None
    pin = DEFAULT_RELAY_PIN if given is None else _pin(given)
    active_low = _flag(value("RELAY_ACTIVE_LOW") or "false")
    if pin is None or active_low is None:
        log.warning("the relay's pin or polarity does not parse: its pin is left as it is")
        return None
    return Relay(pin, active_low)


def hold_relay_off(relay: Relay, pin_factory: Factory | None = None) -> Panel | None:
    """The relay held at its inactive level (a panel of it alone, so that a status light that
    cannot open does not leave it undriven); None when it cannot be opened."""
    pins = PanelPins(relay=relay.pin, relay_active_low=relay.active_low)
    try:
        return Panel(pins, asyncio.get_running_loop(), on_press=lambda _: None, pin_factory=pin_factory)
    except Exception as exc:  # no GPIO, a pin in use: the service's ExecStopPost drives it all the same
        log.warning("the relay (GPIO%d) cannot be held off: %s", relay.pin, exc)
        return None


def show_error(light: StatusLight, pin_factory: Factory | None = None) -> Panel | None:
    """The status light blinking ``error``; None when there is no light to blink."""
    if light.pin is None:
        log.warning("no status light (INTERCOM_LED_STATUS_PIN is empty) to show it on")
        return None
    pins = PanelPins(leds={"status": light.pin}, leds_active_low=light.active_low)
    try:
        panel = Panel(pins, asyncio.get_running_loop(), on_press=lambda _: None, pin_factory=pin_factory)
    except Exception as exc:  # no GPIO, a pin in use: the light is a nicety, the wait is not
        log.warning("the status light (GPIO%d) cannot show it: %s", light.pin, exc)
        return None
    Lights(panel).show("status", CLIENT_STATUS_PATTERN["error"])
    return panel


async def wait_for_settings(
    env_file: Path,
    error: str,
    stop: asyncio.Event,
    *,
    seen: Signature,
    pin_factory: Factory | None = None,
) -> int:
    """Show ``error`` until ``env_file`` differs from ``seen`` (:data:`SETTINGS_CHANGED`) or ``stop``
    is set (0). ``seen`` is the file as it was before it was read, so that an edit made meanwhile
    is not missed."""
    log.error("%s", error)
    log.info("waiting for %s to change; `intercom config check` says what is wrong", env_file)
    systemd = Notifier()
    light = status_light(env_file)
    own_factory = MockFactory() if pin_factory is None and light.mock else None
    strike = relay(env_file)
    relay_panel = None if strike is None else hold_relay_off(strike, pin_factory or own_factory)
    panel = show_error(light, pin_factory or own_factory)
    systemd.notify("READY=1", f"STATUS=settings: {error}")
    systemd.start_watchdog()
    try:
        while signature(env_file) == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
            if stop.is_set():
                return 0
        log.info("%s changed: exiting %d to be started again with it", env_file, SETTINGS_CHANGED)
        return SETTINGS_CHANGED
    finally:
        systemd.notify("STOPPING=1")
        await systemd.stop_watchdog()
        for opened in (panel, relay_panel):
            if opened is not None:
                opened.close()
        if own_factory is not None:
            own_factory.close()
