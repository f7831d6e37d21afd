"""Telling systemd how the unit is doing (``sd_notify``), without a library: one datagram each.

``READY=1`` once the unit is up, ``STOPPING=1`` as it stops, ``STATUS=`` lines an installer sees in
``systemctl status``, and ``WATCHDOG=1`` pings from the event loop itself at half the watchdog
interval systemd asks for (``WATCHDOG_USEC``): a loop that hangs stops pinging, and systemd restarts
the unit. Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        environ = dict(os.environ if environ is None else environ)
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address  # "@": abstract namespace
        watchdog_usec = environ.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(watchdog_usec) / 1e6 / 2 if watchdog_usec.isdigit() else None
        self._pinging: asyncio.Task[None] | None = None

    def notify(self, *fields: str) -> None:
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            try:
                sender.sendto("\n".join(fields).encode(), self._address)
            except OSError as exc:  # systemd went away: nothing to tell
                log.warning("sd_notify %s: %s", fields, exc)

    def start_watchdog(self) -> None:
        if self.watchdog_interval and self._address and self._pinging is None:
            self._pinging = asyncio.get_running_loop().create_task(self._ping(self.watchdog_interval))

    async def stop_watchdog(self) -> None:
        if self._pinging is not None:
            self._pinging.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinging
            self._pinging = None

    async def _ping(self, interval: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)
