"""``intercom appliance``: run one unit from its env file until the service manager stops it.

Start-up refuses bad settings with one line (exit status 2) before touching any pin. Then the unit
connects and keeps connecting: a hub that is down shows as ``connecting`` on the status light,
not as a crash. SIGTERM (``systemctl stop``) and SIGINT hang up any call, un-register, switch
the relay off and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from gpiozero.exc import BadPinFactory

from ..sdk import ClientError
from .settings import Settings, SettingsError, load_settings
from .unit import Unit

log = logging.getLogger(__name__)


def check_supported(settings: Settings) -> None:
    if settings.hub_embedded:
        raise SettingsError(
            "INTERCOM_HUB_EMBEDDED: running the hub inside the unit is not built yet; "
            "run `intercom hub` beside it and set INTERCOM_HUB_URL"
        )


async def run_appliance(env_file: Path | None) -> None:
    settings, audio = load_settings(env_file)
    check_supported(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        unit = Unit(settings, audio)
    except BadPinFactory as exc:
        raise SettingsError(f"no GPIO here ({exc}); GPIOZERO_PIN_FACTORY=mock runs the unit without hardware") from None
    unit.client.on("status", lambda status: log.info("status %s", status.value))
    log.info("%s unit %r starting, hub %s", settings.role, settings.identity, settings.hub_url)
    connecting = loop.create_task(unit.client.setup(jwt=unit.mint_token()))
    try:
        await stop.wait()
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, ClientError):
            await connecting
        await unit.stop()
        log.info("%s unit %r stopped", settings.role, settings.identity)
