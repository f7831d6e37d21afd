"""An acoustic room on the JACK graph (issue 15): a client that stands between a unit's speaker port
and its microphone port, so that what the unit plays comes back into its microphone as echo.

Each cycle :class:`JackRoom` reads the speaker port, convolves it with a room impulse response
(:class:`OverlapAdd`), adds a near-end voice and street noise (numpy signals, at whatever level the
caller made them, e.g. with :mod:`room_sound`), optionally hard-clips the sum (an installer's speaker
gain too high for the microphone) and writes it to the microphone port. It keeps every component it
made, per cycle on one timeline like :class:`~jack_probe.JackProbe`: what came from the speaker, the
echo alone, the near voice alone, the noise alone and the total sent, so that a test measures exactly
what entered the microphone.

Like :mod:`jack_probe` it imports nothing of intercom's, so that benchmarks can run it as a
top-level module. The two ports of PortAudio it stands between are both PortAudio's: JACK runs the
loop speaker -> room -> microphone with one period (20 ms) of delay where the graph closes, as a
sound card's buffers would.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np

if __package__:  # bench.jack_room, imported by the tests
    from .jack_probe import PERIOD, RATE, JackClient, JackServer, Playback, between
else:  # a bench script's top-level module
    from jack_probe import PERIOD, RATE, JackClient, JackServer, Playback, between


class OverlapAdd:
    """Block-by-block convolution with a fixed impulse response through one FFT per block.

    Each block of up to ``block`` samples is convolved whole (FFT size the next power of two above
    block + response - 1); the part beyond the block is carried into the next ones. A 300 ms response
    at 48 kHz costs one 32768-point real FFT pair per 20 ms: well inside a JACK cycle.
    """

    def __init__(self, response: np.ndarray, block: int) -> None:
        if response.ndim != 1 or not len(response):
            raise ValueError(f"an impulse response is a non-empty 1-D array, not one of shape {response.shape}")
        self.block = block
        self._size = 1 << (block + len(response) - 2).bit_length()
        self._spectrum = np.fft.rfft(response, self._size)
        self._carry = np.zeros(len(response) - 1 + block)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """The convolution's next ``len(samples)`` output samples."""
        frames = len(samples)
        if frames > self.block:
            raise ValueError(f"a block of {frames} samples is longer than the {self.block} planned for")
        full = np.fft.irfft(np.fft.rfft(samples, self._size) * self._spectrum, self._size)
        reach = frames + len(self._carry) - self.block  # the input's convolution is this long
        self._carry[:reach] += full[:reach]
        out = self._carry[:frames].copy()
        self._carry = np.concatenate([self._carry[frames:], np.zeros(frames)])
        return out


@dataclass(frozen=True)
class Components:
    """What the room made over one span of its timeline, sample for sample (JACK floats)."""

    speaker: np.ndarray  # what the unit's speaker port played into the room
    echo: np.ndarray  # the speaker through the room
    near: np.ndarray  # the near-end voice alone
    noise: np.ndarray  # the street alone
    microphone: np.ndarray  # the sum as the microphone port got it, clipped if clipping is set


class JackRoom(JackClient):
    """A room between a speaker port and a microphone port; see the module's docstring.

    ``clip_level``, if set, hard-clips what the microphone gets at that magnitude (full scale 1.0).
    Components are kept for ``keep_seconds``.
    """

    def __init__(
        self,
        server: JackServer,
        loop: asyncio.AbstractEventLoop,
        response: np.ndarray,
        keep_seconds: float = 10.0,
        clip_level: float | None = None,
        name: str = "room",
    ) -> None:
        if clip_level is not None and clip_level <= 0:
            raise ValueError(f"a clipping level is above 0, not {clip_level}")
        super().__init__(server, loop, keep_seconds, name)
        self.response = response
        self.clip_level = clip_level
        self._convolver = OverlapAdd(response, max(PERIOD, self.client.blocksize))
        self.speaker = self.client.inports.register("speaker")
        self.microphone = self.client.outports.register("microphone")
        self.near: Playback | None = None
        self.noise: Playback | None = None
        self._kept: deque[tuple[int, tuple[np.ndarray, ...]]] = deque(maxlen=self._keep_cycles)
        self._activate()

    # -- wiring ----------------------------------------------------------------------------------

    def stand_between(self, speaker_port: str, microphone_port: str) -> None:
        """Hear ``speaker_port`` (a unit's playback) and feed ``microphone_port`` (its capture)."""
        self.listen(speaker_port)
        self.feed(microphone_port)

    def listen(self, speaker_port: str) -> None:
        self.client.connect(speaker_port, self.speaker)

    def feed(self, microphone_port: str) -> None:
        self.client.connect(self.microphone, microphone_port)

    # -- what the room adds --------------------------------------------------------------------------

    def play_near(self, samples: np.ndarray, loop: bool = False) -> Playback:
        """The near-end voice from the next cycle on; the result tells where it started."""
        self.near = Playback(samples, loop)
        return self.near

    def play_noise(self, samples: np.ndarray, loop: bool = True) -> Playback:
        """Street noise from the next cycle on, looped by default; the result tells where it started."""
        self.noise = Playback(samples, loop)
        return self.noise

    def quiet(self) -> None:
        """No near voice and no noise from the next cycle on: only the echo."""
        self.near = self.noise = None

    # -- what it made ------------------------------------------------------------------------------

    def components(self, start: int, stop: int) -> Components:
        """Each component from position ``start`` to ``stop`` (ValueError if not all of it is kept)."""
        kept = list(self._kept)
        parts = [between([(position, blocks[index]) for position, blocks in kept], start, stop) for index in range(5)]
        return Components(*parts)

    def recent(self, seconds: float) -> Components:
        """The last ``seconds`` of every component (fewer if not that much was kept yet)."""
        end = self._kept[-1][0] + len(self._kept[-1][1][0]) if self._kept else 0
        start = self._kept[0][0] if self._kept else 0
        return self.components(max(start, end - round(seconds * RATE)), end)

    # -- JACK's threads ------------------------------------------------------------------------------

    def _process(self, frames: int) -> None:
        speaker = self.speaker.get_array().copy()
        echo = self._convolver.push(speaker).astype(np.float32)
        near, noise = (
            source.next(self._position, frames) if source is not None else np.zeros(frames, dtype=np.float32)
            for source in (self.near, self.noise)
        )
        microphone = echo + near + noise
        if self.clip_level is not None:
            np.clip(microphone, -self.clip_level, self.clip_level, out=microphone)
        self.microphone.get_array()[:] = microphone
        self._kept.append((self._position, (speaker, echo, near, noise, microphone)))
