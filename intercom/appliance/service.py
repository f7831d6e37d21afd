"""``intercom appliance``: run one unit from its env file until the service manager stops it.

Start-up refuses bad settings with one line (exit status 2) before touching any pin. A unit that
hosts the hub (:mod:`.embedded_hub`) starts it before anything connects; a port in use or a bad
certificate stops start-up with one line too. With ``wait_for_settings`` (the service's
``--wait-for-settings``) that line is shown instead, on the status light and in ``systemctl
status``, until the env file changes (:mod:`.waiting`). Then the unit tells systemd it is ready (its panel
works from here on), and connects and keeps connecting: a hub that is down shows as
``connecting`` on the status light and in ``systemctl status``, not as a crash; the event loop
pings systemd's watchdog (:mod:`.systemd`). SIGTERM (``systemctl stop``) and SIGINT hang up any
call, un-register, switch the relay off and exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from gpiozero import Factory
from gpiozero.exc import BadPinFactory

from ..sdk import ClientError, ClientStatus
from . import waiting
from .settings import Settings, SettingsError, load_settings
from .systemd import Notifier
from .unit import Unit

log = logging.getLogger(__name__)


async def run_appliance(
    env_file: Path | None, *, wait_for_settings: bool = False, pin_factory: Factory | None = None
) -> int:
    """Run the unit until SIGTERM or SIGINT (0), or, with ``wait_for_settings``, until an env file
    that cannot work changes (:data:`~.waiting.SETTINGS_CHANGED`). :class:`SettingsError` when the
    settings cannot work and ``wait_for_settings`` is off. ``pin_factory``: gpiozero's default
    (tests give mock pins)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    seen = waiting.signature(env_file) if env_file is not None else None
    try:
        settings, unit = await _start(env_file, pin_factory)
    except SettingsError as exc:
        if not wait_for_settings or env_file is None:
            raise
        return await waiting.wait_for_settings(env_file, str(exc), stop, seen=seen, pin_factory=pin_factory)
    await _run(settings, unit, stop)
    return 0


async def _start(env_file: Path | None, pin_factory: Factory | None) -> tuple[Settings, Unit]:
    """The unit built from its settings, its embedded hub (if any) listening; SettingsError if not."""
    settings, audio = load_settings(env_file)
    try:
        unit = Unit(settings, audio, pin_factory=pin_factory)
    except BadPinFactory as exc:
        raise SettingsError(f"no GPIO here ({exc}); GPIOZERO_PIN_FACTORY=mock runs the unit without hardware") from None
    if unit.hub is not None:
        try:
            await unit.start_hub()
        except BaseException:
            await unit.stop()
            raise
        log.info("hub listening on %s port %d", settings.hub_listen, unit.hub.port)
    return settings, unit


async def _run(settings: Settings, unit: Unit, stop: asyncio.Event) -> None:
    systemd = Notifier()
    # An embedded hub whose disk fails (read-only, full) says so after the client's status.
    fault = unit.hub.storage_fault if unit.hub is not None else None
    shown = f"{settings.role} {settings.identity}: connecting"

    def show(line: str, *more: str) -> None:
        nonlocal shown
        shown = line
        trouble = fault.summary() if fault is not None else None
        systemd.notify(*more, f"STATUS={line}; {trouble}" if trouble else f"STATUS={line}")

    def status(status: ClientStatus) -> None:
        log.info("status %s", status.value)
        if not unit.retry_pending:  # the offline after a refusal: the error stays on show
            show(f"{settings.role} {settings.identity}: {status.value}")

    def refused(error: ClientError) -> None:
        show(
            f"{settings.role} {settings.identity}: error {error.code} {error}; "
            f"trying again in {unit.retry_after_error_s:.0f} s"
        )

    unit.client.on("status", status)
    unit.client.on("error", refused)
    if fault is not None:
        fault.on_change(lambda _: show(shown))
    log.info("%s unit %r starting, hub %s", settings.role, settings.identity, unit.client.host)
    unit.connect()
    show(shown, "READY=1")  # the panel is live
    systemd.start_watchdog()
    try:
        await stop.wait()
    finally:
        systemd.notify("STOPPING=1")
        await unit.stop()
        await systemd.stop_watchdog()
        log.info("%s unit %r stopped", settings.role, settings.identity)
