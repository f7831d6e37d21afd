"""A JACK server on the dummy backend for PortAudio to play into, and a probe client to feed and hear it.

Shared by the audio tests (``tests/audio/jackkit.py`` re-exports it) and ``bench/audio.py``; it
imports nothing of intercom's, so that the benchmarks can run it as a top-level module.

jackd's ``dummy`` driver is a sound card without hardware: it runs the JACK graph on the wall clock
at 48 kHz in 960-sample periods. PortAudio's JACK host API registers one client of its own
(``PortAudio``) and a port per stream channel (``in_N`` for an input stream, ``out_N`` for an
output one, N counting up over the life of the PortAudio session) and connects them to
``system:capture_*`` / ``system:playback_*``. The :class:`JackProbe` plays into those input
ports and records from those output ports instead, so a test (or a benchmark) hears exactly what
our code sent.

Pitfalls met on the way, and handled by :func:`running_jack_server`:

* sounddevice initialises PortAudio on import, when no server runs, so its JACK host API is absent;
  PortAudio must be re-initialised once the server is up to see it.
* PortAudio must be terminated *before* jackd stops: otherwise ``Pa_Terminate`` later aborts the
  process in ``pa_jack.c`` (assertion ``err == 0``) as it fails to close its client.
* PortAudio's JACK client connects to the server named by ``JACK_DEFAULT_SERVER``;
  ``JACK_NO_START_SERVER`` keeps libjack from spawning a default server when none is up.
* Streams still open at ``Pa_Terminate`` are freed under sounddevice's feet; tests must close every
  stream first (stop the tracks and sinks) before the server fixture's teardown. Other processes
  using the server (they inherit ``JACK_DEFAULT_SERVER``) must have exited before it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import numpy as np
import sounddevice as sd

RATE = 48000
PERIOD = 960
START_TIMEOUT = 10.0
POLL_INTERVAL = 0.02  # between connection attempts while jackd starts; bounded by START_TIMEOUT
STOP_TIMEOUT = 5.0
SILENCE = 0.003  # about -50 dBFS in JACK's float samples

_servers = itertools.count()


class JackUnavailable(Exception):
    """jackd or libjack is missing here: the audio tests fail and the bench exits 2, naming what is missing."""


class JackServer:
    """jackd on the dummy backend under ``name``; :meth:`stop` and :meth:`start` take the sound card
    away and bring it back under the same name (a USB card unplugged and plugged in again)."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.pid = 0  # jackd's, for CPU accounting
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        jackd = shutil.which("jackd")
        if jackd is None:
            raise JackUnavailable("jackd is not installed (Debian package jackd2)")
        jack = _jack()
        env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"}
        command = [jackd, "--no-realtime", "-n", self.name, "-d", "dummy", "-r", str(RATE), "-p", str(PERIOD)]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.pid = self._process.pid
        _wait_until_up(jack, self, self._process)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    @property
    def running(self) -> bool:
        return self._process is not None


def _jack():  # imported late: JACK-Client raises OSError, not ImportError, when libjack is missing
    try:
        import jack
    except (ImportError, OSError) as exc:
        raise JackUnavailable(f"the JACK-Client package cannot load libjack: {exc}") from exc
    return jack


@contextmanager
def quiet_libjack() -> Iterator[None]:
    """Keep libjack's "cannot connect to server" chatter (ours and PortAudio's) off stderr."""
    jack = _jack()
    jack.set_error_function(lambda message: None)
    jack.set_info_function(lambda message: None)
    try:
        yield
    finally:
        jack.set_error_function(None)
        jack.set_info_function(None)


def _reinitialise_portaudio() -> None:
    with quiet_libjack():
        sd._terminate()
        sd._initialize()


@contextmanager
def running_jack_server(folder: Path, prefix: str = "intercom-test") -> Iterator[JackServer]:
    """jackd on the dummy backend under a name of its own, with PortAudio re-initialised to use it.

    ``JACK_DEFAULT_SERVER`` names it in ``os.environ`` for the ``with`` block, so that child
    processes started meanwhile use it too.
    """
    server = JackServer(f"{prefix}-{os.getpid()}-{next(_servers)}", folder / "jackd.log")
    saved = {name: os.environ.get(name) for name in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    try:
        server.start()
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        os.environ["JACK_NO_START_SERVER"] = "1"
        _reinitialise_portaudio()
        if not any(api["name"].startswith("JACK") for api in sd.query_hostapis()):
            raise RuntimeError(f"PortAudio did not find the JACK server {server.name}")
        yield server
    finally:
        with quiet_libjack():
            sd._terminate()  # before jackd goes, see the module's docstring
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        with quiet_libjack():
            sd._initialize()


def _wait_until_up(jack, server: JackServer, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with quiet_libjack():
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jackd exited with {process.returncode}: {server.log.read_text(errors='replace')}")
            try:
                client = jack.Client("ready-check", no_start_server=True, servername=server.name)
            except jack.JackError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jackd {server.name} did not accept clients in {START_TIMEOUT} s") from None
                time.sleep(POLL_INTERVAL)
                continue
            client.close()
            return


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float | None:
    """The strongest frequency (FFT bin centre) of ``samples``, None if they are silent."""
    if len(samples) == 0 or rms(samples) < SILENCE:
        return None
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * rate / len(samples))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


class Playback:
    """A numpy signal (JACK floats) handed out block by block, once or looped; :attr:`started` is the
    timeline position of its first sample once a cycle took it."""

    def __init__(self, samples: np.ndarray, loop: bool = False) -> None:
        if samples.ndim != 1 or not len(samples):
            raise ValueError(f"a signal to play is a non-empty 1-D array, not one of shape {samples.shape}")
        self.samples = samples.astype(np.float32)
        self.loop = loop
        self.started: int | None = None
        self._cursor = 0

    def next(self, position: int, frames: int) -> np.ndarray:
        """The next ``frames`` samples, played from ``position``; silence after the end of a one-off."""
        if self.started is None:
            self.started = position
        if self.loop:
            indices = (self._cursor + np.arange(frames)) % len(self.samples)
            block = self.samples[indices]
        else:
            block = np.zeros(frames, dtype=np.float32)
            part = self.samples[self._cursor : self._cursor + frames]
            block[: len(part)] = part
        self._cursor += frames
        return block

    @property
    def finished(self) -> bool:
        return not self.loop and self._cursor >= len(self.samples)


def between(blocks: Iterable[tuple[int, np.ndarray]], start: int, stop: int) -> np.ndarray:
    """The samples of timeline positions ``start`` to ``stop`` from blocks kept as (position, samples);
    ValueError if part of that span is not kept (not yet heard, or already dropped)."""
    kept = [(position, block) for position, block in blocks if position < stop and position + len(block) > start]
    if not kept or kept[0][0] > start or kept[-1][0] + len(kept[-1][1]) < stop:
        raise ValueError(f"samples {start}-{stop} are not all kept")
    joined = np.concatenate([block for _, block in kept])
    return joined[start - kept[0][0] : stop - kept[0][0]]


class JackClient(ABC):
    """A JACK client of the tests on the graph's timeline: positions in samples from its first cycle,
    a wake-up of the event loop once per cycle (waits are driven by the audio clock, never by
    sleeping), and a place among the clients whose ports are not "foreign"."""

    names: ClassVar[set[str]] = set()  # of the clients of ours alive in this process

    def __init__(self, server: JackServer, loop: asyncio.AbstractEventLoop, keep_seconds: float, name: str) -> None:
        jack = _jack()
        self._loop = loop
        self._changed = asyncio.Event()
        self.client = jack.Client(name, no_start_server=True, servername=server.name)
        self.name = self.client.name  # readable after the client closed, unlike client.name
        JackClient.names.add(self.name)
        self._position = 0  # samples since the first cycle
        self.origin: int | None = None  # JACK's frame time at the first cycle: common to every client
        self._keep_cycles = max(1, round(keep_seconds * RATE / PERIOD))
        # time.monotonic() minus the position's time on the graph, per cycle: the callback runs late
        # by however long it waited (for the GIL, mostly), never early, so the smallest is the truest.
        self._offsets: deque[float] = deque(maxlen=self._keep_cycles)

    def _activate(self) -> None:
        """Start the cycles, once the subclass has its ports and state."""
        self.client.set_process_callback(self._cycle)
        self.client.set_port_registration_callback(self._registration, only_available=False)
        self.client.activate()

    @property
    def position(self) -> int:
        """The position of the next cycle's first sample."""
        return self._position

    def offset_to(self, other: JackClient) -> int:
        """What to add to a position of ours for ``other``'s position of the same sample (both have run)."""
        if self.origin is None or other.origin is None:
            raise RuntimeError(f"{self.name} or {other.name} has not run a cycle yet")
        return self.origin - other.origin

    def monotonic_at(self, position: int) -> float:
        """When the graph was at ``position``, on ``time.monotonic()``'s clock.

        The dummy driver runs its cycles on the wall clock, so a position is the least-delayed
        callback of the last ``keep_seconds`` plus the samples between them (within ~1 ms here).
        """
        if not self._offsets:
            raise RuntimeError(f"{self.name} has not run a cycle yet")
        return min(self._offsets) + position / RATE

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` holds, checked after every JACK cycle; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        """Leave the server (again: a no-op); also when the server is gone already."""
        if self.name not in JackClient.names:
            return
        JackClient.names.discard(self.name)
        with contextlib.suppress(Exception):
            self.client.deactivate()
            self.client.close()

    # -- JACK's threads ------------------------------------------------------------------------------

    @abstractmethod
    def _process(self, frames: int) -> None:
        """A subclass's work in one cycle, at :attr:`position`."""

    def _cycle(self, frames: int) -> None:
        self._offsets.append(time.monotonic() - self._position / RATE)
        if self.origin is None:
            self.origin = self.client.last_frame_time
        self._process(frames)
        self._position += frames
        self._wake()

    def _registration(self, port: object, register: bool) -> None:
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed; the client is being torn down
            self._loop.call_soon_threadsafe(self._changed.set)


class JackProbe(JackClient):
    """A JACK client with a ``mouth`` that plays a sine, a click or a numpy signal, and an ``ear`` that records.

    Samples are JACK floats (full scale 1.0). Everything heard is kept with its position on the
    graph's timeline, counted in samples from the probe's first cycle; what the mouth plays in a
    cycle and what the ear hears in the same cycle share that timeline, so the distance between a
    click sent and its echo heard is the latency of whatever lies between, to the sample.
    :meth:`monotonic_at` places a position on ``time.monotonic()``'s clock, to line it up with
    events timed in Python.
    """

    def __init__(
        self, server: JackServer, loop: asyncio.AbstractEventLoop, keep_seconds: float = 5.0, name: str = "probe"
    ) -> None:
        super().__init__(server, loop, keep_seconds, name)
        self.mouth = self.client.outports.register("mouth")
        self.ear = self.client.inports.register("ear")
        self.frequency: float | None = None
        self.amplitude = 0.3
        self.playback: Playback | None = None
        self._click_pending = False
        self._clicked: list[int] = []
        self._heard: deque[tuple[int, np.ndarray]] = deque(maxlen=self._keep_cycles)
        self._activate()

    # -- what the mouth plays ------------------------------------------------------------------

    def play(self, frequency: float, amplitude: float = 0.3) -> None:
        self.amplitude = amplitude
        self.frequency = frequency
        self.playback = None

    def play_signal(self, samples: np.ndarray, loop: bool = False) -> Playback:
        """Play ``samples`` from the next cycle on, instead of the sine; the result tells where it started."""
        self.frequency = None
        self.playback = Playback(samples, loop)
        return self.playback

    def silence(self) -> None:
        self.frequency = None
        self.playback = None

    def click(self) -> None:
        """Play a 5 ms full-scale-ish burst at the start of the next cycle; :attr:`clicks` gets its position."""
        self._click_pending = True

    @property
    def clicks(self) -> list[int]:
        return list(self._clicked)

    # -- wiring ----------------------------------------------------------------------------------

    def foreign_ports(self, is_input: bool) -> list[str]:
        """Audio ports of clients other than ``system`` and the probes (PortAudio's, in these tests)."""
        ours = tuple(f"{name}:" for name in (*JackProbe.names, "system"))
        flags = {"is_input": True} if is_input else {"is_output": True}
        return [port.name for port in self.client.get_ports(is_audio=True, **flags) if not port.name.startswith(ours)]

    async def wait_for_port(self, is_input: bool, timeout: float) -> str:
        """The one foreign port of that direction, once it is registered."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                ports = self.foreign_ports(is_input)
                if len(ports) == 1:
                    return ports[0]
                assert len(ports) < 2, f"expected one foreign port, found {ports}"
                await self._changed.wait()

    async def wait_for_ports(self, count: int, is_input: bool, timeout: float) -> list[str]:
        """The foreign ports of that direction, once there are ``count`` of them."""
        await self.wait_until(lambda: len(self.foreign_ports(is_input)) == count, timeout)
        return self.foreign_ports(is_input)

    async def wait_for_no_ports(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                if not self.foreign_ports(True) and not self.foreign_ports(False):
                    return
                await self._changed.wait()

    def feed(self, port: str) -> None:
        """Connect the mouth to ``port`` (an input of PortAudio's: our capture)."""
        self.client.connect(self.mouth, port)

    def listen(self, port: str) -> None:
        """Connect ``port`` (an output of PortAudio's: our playback) to the ear."""
        self.client.connect(port, self.ear)

    # -- what the ear heard ------------------------------------------------------------------------

    def recent(self, seconds: float) -> np.ndarray:
        wanted = round(seconds * RATE)
        blocks = [block for _, block in list(self._heard)[-(wanted // PERIOD + 1) :]]
        return np.concatenate(blocks)[-wanted:] if blocks else np.zeros(0, dtype=np.float32)

    def dominant_frequency(self, seconds: float = 0.3) -> float | None:
        samples = self.recent(seconds)
        return dominant_frequency(samples) if len(samples) >= round(seconds * RATE) else None

    def rms(self, seconds: float = 0.2) -> float:
        return rms(self.recent(seconds))

    def heard(self, start: int, stop: int) -> np.ndarray:
        """What the ear heard from position ``start`` to ``stop`` (ValueError if not all of it is kept)."""
        return between(list(self._heard), start, stop)

    def onset_after(self, position: int, threshold: float = 0.1) -> int | None:
        """The position of the first sample at or after ``position`` louder than ``threshold``."""
        for start, block in list(self._heard):
            if start + len(block) <= position:
                continue
            loud = np.flatnonzero(np.abs(block[max(0, position - start) :]) >= threshold)
            if len(loud):
                return start + max(0, position - start) + int(loud[0])
        return None

    def last_loud(self, threshold: float = 0.1) -> int | None:
        """The position of the last sample still kept that is louder than ``threshold``."""
        for start, block in reversed(list(self._heard)):
            loud = np.flatnonzero(np.abs(block) >= threshold)
            if len(loud):
                return start + int(loud[-1])
        return None

    # -- JACK's threads ------------------------------------------------------------------------------

    def _process(self, frames: int) -> None:
        out = self.mouth.get_array()
        playback = self.playback
        if playback is not None:
            out[:] = playback.next(self._position, frames)
        elif self.frequency is None:
            out.fill(0.0)
        else:
            phase = 2 * np.pi * self.frequency * (self._position + np.arange(frames)) / RATE
            out[:] = self.amplitude * np.sin(phase)
        if self._click_pending:
            burst = min(frames, RATE // 200)
            out[:burst] += 0.8 * np.sin(2 * np.pi * 2000 * np.arange(burst) / RATE)
            self._clicked.append(self._position)
            self._click_pending = False
        self._heard.append((self._position, self.ear.get_array().copy()))
