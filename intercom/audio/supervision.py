"""A sound device kept open: opened on PortAudio's thread, watched for going away, retried every
second until it is back, and switched to another device on request. The microphone and the speaker
(:mod:`.microphone`, :mod:`.speaker`) both build on :class:`SupervisedDevice`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

import sounddevice as sd

from ..media.tasks import cancel_and_wait
from .devices import UnknownDevice
from .portaudio import PORTAUDIO, DeviceId

log = logging.getLogger(__name__)

LOST_AFTER = 0.5  # seconds without a callback (or an inactive stream): the device is gone
RETRY_INTERVAL = 1.0  # seconds between attempts to open a device that is away


def _close_if_opened(opening: asyncio.Future[sd._StreamBase]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        PORTAUDIO.close_soon(opening.result())


class DeviceLost(RuntimeError):
    """The sound device stopped delivering (unplugged, or its JACK server went away)."""


class SupervisedDevice(ABC):
    """What a microphone and a speaker share: opening their device on PortAudio's thread, noticing
    that it went away, retrying every second until it is back, and switching to another device.

    A failure calls ``on_error`` (when set) once per outage and is kept in :attr:`error` until the
    device opens again. A device counts as lost when its stream is no longer active or has not
    called back for :data:`LOST_AFTER` seconds.
    """

    stream_kind: type[sd.InputStream] | type[sd.OutputStream]
    name: str

    def __init__(self, device: DeviceId) -> None:
        self.device = device
        self.error: Exception | None = None
        self.on_error: Callable[[Exception], None] | None = None
        self._stream: sd._StreamBase | None = None
        self._callbacks = 0  # blocks PortAudio asked for or delivered: stalls show as a count that stops
        self._tokens = itertools.count(1)
        self._current = 0  # the token of the stream in use: a stream being replaced is ignored
        self._supervisor: asyncio.Task[None] | None = None
        self._switching = asyncio.Lock()

    @property
    def stream(self) -> sd._StreamBase | None:
        """The open PortAudio stream; ``None`` before it opened, while the device is away and after stop."""
        return self._stream

    @abstractmethod
    def _callback(self, token: int) -> Callable[..., None]:
        """PortAudio's callback for a stream of this side, doing nothing unless ``token`` is current."""

    async def _open(self, device: DeviceId) -> tuple[sd._StreamBase, int]:
        """A started stream on ``device`` and the token its callback answers to. Cancelled meanwhile
        (the track stopped), the stream PortAudio's thread goes on to open is closed again."""
        token = next(self._tokens)
        opening = asyncio.ensure_future(PORTAUDIO.open(self.stream_kind, device, self._callback(token)))
        try:
            return await asyncio.shield(opening), token
        except asyncio.CancelledError:
            opening.add_done_callback(_close_if_opened)
            raise

    def _supervise(self) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._keep_open(), name=f"{type(self).__name__}({self.name})")

    async def _keep_open(self) -> None:
        seen = -1
        while True:
            if self._stream is None:
                async with self._switching:
                    await self._try_open()
                await asyncio.sleep(RETRY_INTERVAL if self._stream is None else LOST_AFTER)
                seen = -1
                continue
            stream = self._stream
            if not stream.active or self._callbacks == seen:
                async with self._switching:
                    if stream is self._stream:  # not switched away meanwhile
                        self._stream = None
                        await PORTAUDIO.close(stream, dead=True)
                        self._failed(DeviceLost(f"{self.name} {self.device or 'default'} stopped: unplugged?"))
                continue
            seen = self._callbacks
            await asyncio.sleep(LOST_AFTER)

    async def _try_open(self) -> None:
        try:
            self._stream, self._current = await self._open(self.device)
        except (UnknownDevice, sd.PortAudioError, ValueError) as exc:
            if self.error is None:
                self._failed(exc)
            return
        if self.error is not None:
            log.info("%s %r is back", self.name, self.device)
        self.error = None

    def _failed(self, exc: Exception) -> None:
        log.error("%s %r: %s", self.name, self.device, exc)
        self.error = exc
        self._device_away()
        if self.on_error is not None:
            self.on_error(exc)

    @abstractmethod
    def _device_away(self) -> None:
        """The device went away or would not open: drop what waits for it."""

    async def switch(self, device: DeviceId) -> None:
        """Carry on on ``device``: its stream opens before the old one closes, so the gap is one block
        or so. Raises :class:`UnknownDevice` (or ``sd.PortAudioError``) and keeps the old device."""
        async with self._switching:
            stream, token = await self._open(device)
            old, self._stream, self._current = self._stream, stream, token
            self.device, self.error = device, None
            if old is not None:
                await PORTAUDIO.close(old)

    async def _stop_supervising(self) -> sd._StreamBase | None:
        if self._supervisor is not None:
            await cancel_and_wait(self._supervisor)
            self._supervisor = None
        stream, self._stream = self._stream, None
        return stream
