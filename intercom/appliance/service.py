"""``intercom appliance``: run one unit from its env file until the service manager stops it.

Start-up refuses bad settings with one line (exit status 2) before touching any pin. A unit that
hosts the hub (:mod:`.embedded_hub`) starts it before anything connects; a port in use or a bad
certificate stops start-up with one line too. Then the unit tells systemd it is ready (its panel
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

from gpiozero.exc import BadPinFactory

from ..sdk import ClientError, ClientStatus
from .settings import SettingsError, load_settings
from .systemd import Notifier
from .unit import Unit

log = logging.getLogger(__name__)


async def run_appliance(env_file: Path | None) -> None:
    settings, audio = load_settings(env_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        unit = Unit(settings, audio)
    except BadPinFactory as exc:
        raise SettingsError(f"no GPIO here ({exc}); GPIOZERO_PIN_FACTORY=mock runs the unit without hardware") from None
    systemd = Notifier()

    def status(status: ClientStatus) -> None:
        log.info("status %s", status.value)
        if not unit.retry_pending:  # the offline after a refusal: the error stays on show
            systemd.notify(f"STATUS={settings.role} {settings.identity}: {status.value}")

    def refused(error: ClientError) -> None:
        systemd.notify(
            f"STATUS={settings.role} {settings.identity}: error {error.code} {error}; "
            f"trying again in {unit.retry_after_error_s:.0f} s"
        )

    unit.client.on("status", status)
    unit.client.on("error", refused)
    if unit.hub is not None:
        try:
            await unit.start_hub()
        except BaseException:
            await unit.stop()
            raise
        log.info("hub listening on %s port %d", settings.hub_listen, unit.hub.port)
    log.info("%s unit %r starting, hub %s", settings.role, settings.identity, unit.client.host)
    unit.connect()
    systemd.notify("READY=1", f"STATUS={settings.role} {settings.identity}: connecting")  # the panel is live
    systemd.start_watchdog()
    try:
        await stop.wait()
    finally:
        systemd.notify("STOPPING=1")
        await unit.stop()
        await systemd.stop_watchdog()
        log.info("%s unit %r stopped", settings.role, settings.identity)
