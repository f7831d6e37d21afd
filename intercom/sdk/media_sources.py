"""The seed SDK's ``MediaSources``: the sound devices there are, and ``devicechange`` when that changes.

Devices come as the seed gives them: ``{'inputs': {'audio': [...], 'video': []}, 'outputs':
{'audio': [...]}}``, each entry with ``deviceId``, ``kind``, ``label`` and ``groupId``; the ids are
what ``call.set_input_source`` / ``set_output_source`` and the settings take. While anybody
listens for ``devicechange``, the sound system is looked at twice a second
(:mod:`intercom.audio.device_watch`), and the handlers get the whole new list within about a
second of a card coming or going. Open streams are never disturbed by looking.

PortAudio is loaded when the first ``MediaSources`` is made, not on import: a hub, or a unit
without a sound card, never needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ..media.tasks import cancel_and_wait
from .events import EventTarget

log = logging.getLogger(__name__)

Devices = dict[str, dict[str, list[dict[str, str]]]]
POLL_INTERVAL = 0.5
SETTLE_LOOKS = 4  # after a change, look again this many times: a card's devices may lag its arrival


class MediaSources(EventTarget):
    def __init__(self, poll_interval: float = POLL_INTERVAL) -> None:
        super().__init__()
        from ..audio.devices import list_devices, media_sources
        from ..audio.portaudio import PORTAUDIO

        self._poll_interval = poll_interval
        self._devices: Devices = media_sources(PORTAUDIO.run_blocking(list_devices))
        self._watcher: asyncio.Task[None] | None = None

    @property
    def devices(self) -> Devices:
        """The devices as last seen (at creation, by :meth:`get`, or by the watch)."""
        return self._devices

    async def get(self) -> Devices:
        """Look again, and return the devices there are now."""
        await self._refresh()
        return self._devices

    def on(self, event: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        super().on(event, handler)
        if event == "devicechange" and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="MediaSources.watch")
        return handler

    def remove_event_listener(self, event: str, handler: Callable[..., Any]) -> None:
        super().remove_event_listener(event, handler)
        if event == "devicechange" and not self._emitter.listeners("devicechange") and self._watcher is not None:
            self._watcher.cancel()  # it ends at its next await; close() waits for it
            self._watcher = None

    off = remove_event_listener

    async def close(self) -> None:
        """Stop watching."""
        if self._watcher is not None:
            await cancel_and_wait(self._watcher)
            self._watcher = None

    async def _watch(self) -> None:
        from ..audio.portaudio import sound_system_state

        state = sound_system_state()
        looks_left = 0
        while True:
            await asyncio.sleep(self._poll_interval)
            now = sound_system_state()
            if now != state:
                state, looks_left = now, SETTLE_LOOKS
            if looks_left:
                looks_left -= 1
                with contextlib.suppress(Exception):  # logged in _refresh; the next look tries again
                    if await self._refresh():
                        looks_left = 0

    async def _refresh(self) -> bool:
        """Look again; emit ``devicechange`` and return True when the devices differ from the last seen."""
        from ..audio.device_watch import current_devices
        from ..audio.devices import media_sources

        try:
            devices = media_sources(await current_devices())
        except Exception:
            log.exception("cannot list sound devices")
            raise
        if devices == self._devices:
            return False
        self._devices = devices
        self._emit("devicechange", devices)
        return True
