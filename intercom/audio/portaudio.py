"""PortAudio's life in this process: one thread for every open, close and rescan, and the JACK rescue.

Opening a stream takes ~55 ms and closing one ~40 ms on JACK, and re-initialising PortAudio to
see a card that was plugged in takes ~45 ms: none of it may hold up the event loop in a call.
All of them go through :data:`PORTAUDIO`, which runs them one after the other on a thread of its
own, so that a rescan never meets a half-opened stream.

PortAudio only learns about devices when it is initialised, and re-initialising it frees every
open stream. So :meth:`PortAudioSession.rescan` only re-initialises while no stream is open; a
device that came while one is open is listed by a fresh process instead (see
:mod:`.device_watch`), and becomes openable here once the streams are closed.

A JACK server that goes away leaves PortAudio's JACK client dead (see
:mod:`.portaudio_adaptation`): its streams are closed with :func:`forget_stream`, and the next
rescan skips the dead host API's ``Terminate``. Whether the server PortAudio uses is still the
one it connected to is told by jackd's socket (jack2 keeps it at ``/dev/shm/jack_<name>_<uid>_0``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sounddevice as sd

from .devices import Kind, UnknownDevice, resolve
from .portaudio_adaptation import forget_jack_host_api, forget_stream

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
DTYPE = "int16"
JACK_SOCKET_FOLDER = Path("/dev/shm")
ALSA_CARDS = Path("/proc/asound/cards")

StreamT = TypeVar("StreamT", sd.InputStream, sd.OutputStream)
Result = TypeVar("Result")
DeviceId = str | None  # as ``intercom devices`` lists them; None: PortAudio's default
KINDS: dict[type[sd._StreamBase], Kind] = {sd.InputStream: "audioinput", sd.OutputStream: "audiooutput"}


def jack_server_identity() -> tuple[int, int] | None:
    """The socket of the JACK server PortAudio would use (inode, creation time), ``None`` when none runs.

    A restarted server makes a new socket, so a changed identity means PortAudio's client is dead.
    """
    name = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    try:
        status = (JACK_SOCKET_FOLDER / f"jack_{name}_{os.getuid()}_0").stat()
    except OSError:
        return None
    return status.st_ino, status.st_ctime_ns


def sound_system_state() -> tuple[str, tuple[int, int] | None]:
    """What changes when a sound card comes or goes: the kernel's ALSA cards (a USB card joins and
    leaves ``/proc/asound/cards``) and the JACK server. Cheap enough to look at twice a second."""
    try:
        cards = ALSA_CARDS.read_text()
    except OSError:
        cards = ""
    return cards, jack_server_identity()


def _is_jack(stream: sd._StreamBase) -> bool:
    device = sd.query_devices(stream.device)
    return sd.query_hostapis(device["hostapi"])["name"].startswith("JACK")


class PortAudioSession:
    """The process's PortAudio: which streams are open, and whether its JACK client still lives."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="portaudio")
        self._open: set[sd._StreamBase] = set()
        self._lock = threading.Lock()
        # The sound system as PortAudio last saw it; None until first looked at (PortAudio was
        # initialised on import, or by somebody else): then it is taken as it is at that moment.
        self._state_at_init: tuple[str, tuple[int, int] | None] | None = None
        self._jack_lost = False  # a stream of PortAudio's JACK client died with its server
        self.generation = 0  # counts re-initialisations: device indices change with each

    @property
    def idle(self) -> bool:
        return not self._open

    async def run(self, work: Callable[..., Result], *args: Any) -> Result:
        """``work(*args)`` on PortAudio's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)

    async def open(self, kind: type[StreamT], device: DeviceId, callback: Callable[..., None]) -> StreamT:
        """A started 48 kHz mono int16 stream on ``device``, calling back every 960 samples.

        Raises ``UnknownDevice`` for an id PortAudio does not know (it looks again first when a card
        came or went and no stream is open), and ``sd.PortAudioError`` when the device will not open.
        """
        return await self.run(self._open_stream, kind, device, callback)

    async def close(self, stream: sd._StreamBase, dead: bool = False) -> None:
        """Close ``stream``; ``dead`` when it stopped by itself (its device went away)."""
        await self.run(self._close_stream, stream, dead)

    async def rescan(self) -> bool:
        """Re-initialise PortAudio so that it sees the devices there are now; False while a stream is open."""
        return await self.run(self._reinitialise)

    def run_blocking(self, work: Callable[..., Result], *args: Any) -> Result:
        """``work(*args)`` on PortAudio's thread, waiting for it here: for code without an event loop
        (the installer's audio test), and for quick queries that must not meet a rescan."""
        return self._executor.submit(work, *args).result()

    def open_blocking(self, kind: type[StreamT], device: DeviceId, callback: Callable[..., None]) -> StreamT:
        return self.run_blocking(self._open_stream, kind, device, callback)

    def close_blocking(self, stream: sd._StreamBase) -> None:
        self.run_blocking(self._close_stream, stream, False)

    async def settled(self) -> None:
        """Returns once every open and close asked for so far has been done."""
        await self.run(lambda: None)

    def close_soon(self, stream: sd._StreamBase) -> None:
        """Close ``stream`` on PortAudio's thread without waiting (for ``stop()`` methods that are not async)."""
        self._executor.submit(self._close_stream, stream, False)

    def _open_stream(self, kind: type[StreamT], device: DeviceId, callback: Callable[..., None]) -> StreamT:
        if self._stale() and not self._reinitialise() and self._jack_dead():
            # Opening on a dead JACK client hangs; a rescan has to wait for the open streams to close.
            raise sd.PortAudioError("the JACK server went away; waiting for the other streams to close")
        try:
            index = None if device is None else resolve(device, KINDS[kind])
        except UnknownDevice as exc:
            if self._stale() and not self.idle:  # it may be a card that came since PortAudio last looked
                late = "a card plugged in while sound is playing can be opened once none is"
                raise UnknownDevice(f"{exc}; {late}") from None
            raise
        stream = kind(
            device=index,
            samplerate=SAMPLE_RATE,
            channels=1,
            dtype=DTYPE,
            blocksize=FRAME_SAMPLES,
            latency="low",
            callback=callback,
        )
        try:
            stream.start()
        except BaseException:
            stream.close(ignore_errors=True)
            raise
        with self._lock:
            self._open.add(stream)
        return stream

    def _close_stream(self, stream: sd._StreamBase, dead: bool) -> None:
        with self._lock:
            if stream not in self._open:
                return
            self._open.discard(stream)
        if dead and _is_jack(stream):
            self._jack_lost = True
            forget_stream(stream)
        stream.close(ignore_errors=True)

    def _reinitialise(self) -> bool:
        if self._open:
            return False
        if self._jack_dead():
            forget_jack_host_api()
        sd._terminate()
        sd._initialize()
        self._state_at_init, self._jack_lost = sound_system_state(), False
        self.generation += 1
        log.info("PortAudio re-initialised: %d devices", len(sd.query_devices()))
        return True

    def _seen_at_init(self) -> tuple[str, tuple[int, int] | None]:
        if self._state_at_init is None:
            self._state_at_init = sound_system_state()
        return self._state_at_init

    def _stale(self) -> bool:
        """Has a card come or gone, or the JACK server changed, since PortAudio last looked?"""
        return self._jack_lost or self._seen_at_init() != sound_system_state()

    def _jack_dead(self) -> bool:
        return self._jack_lost or self._seen_at_init()[1] != jack_server_identity()


PORTAUDIO = PortAudioSession()


def captured_ago(time: Any, stream: sd._StreamBase | None) -> float:
    """Seconds since the first sample of an input callback's block was captured: PortAudio's
    timestamps when the host API gives them, else the stream's nominal latency."""
    if time.inputBufferAdcTime > 0 and time.currentTime >= time.inputBufferAdcTime:
        return float(time.currentTime - time.inputBufferAdcTime)
    return float(stream.latency) if stream is not None else 0.0


def sounds_in(time: Any, stream: sd._StreamBase | None) -> float:
    """Seconds until the first sample of an output callback's block sounds (as :func:`captured_ago`)."""
    if time.outputBufferDacTime > 0 and time.outputBufferDacTime >= time.currentTime:
        return float(time.outputBufferDacTime - time.currentTime)
    return float(stream.latency) if stream is not None else 0.0
