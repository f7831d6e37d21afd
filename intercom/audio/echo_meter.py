"""This unit's own estimates of how its echo canceller does, for the call's statistics: neither
candidate module (bench/aec_compare.py) reports AEC3's figures.

* **ERLE**: the microphone's power over the power of what goes out, on the blocks captured while the
  speaker played (within the last :data:`ECHO_TAIL_S`), over the last :data:`ERLE_WINDOW_S`. While
  only the far end talks this is the canceller's echo return loss enhancement; the near end talking
  at the same time pulls it down, towards 0 dB.
* **Delay**: where the microphone's signal best matches the speaker's (cross-correlation of the last
  :data:`DELAY_WINDOW_S`, at 8 kHz), on the timeline on which the canceller gets them, so it is the
  delay the canceller has to find: the device buffers and the room together.

Fed on PortAudio's threads (cheap: each block is made float once, then two dot products: ~10 us a
block where numpy's ``mean`` and float64 copies took ~50); the figures are computed when asked, on
the caller's thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..media.tracks import SAMPLE_RATE as RATE
from .samples import power_dbfs

DECIMATION = 6  # 48 kHz -> 8 kHz for the delay search: speech's echo is there
ERLE_WINDOW_S = 5.0
ECHO_TAIL_S = 0.3  # a block captured this long after the speaker played may still hold its echo
DELAY_WINDOW_S = 2.0
MAX_DELAY_S = 0.5
PLAYING_DBFS = -60.0  # a speaker block quieter than this plays nothing worth cancelling
ECHO_FLOOR_DBFS = -70.0  # below this the microphone heard too little echo for a figure
MIN_CORRELATION = 0.1  # a weaker match than this is no delay estimate


@dataclass(frozen=True)
class EchoFigures:
    """``erle_db`` and ``delay_ms`` are None until there was enough of the far end to tell."""

    erle_db: float | None
    delay_ms: float | None


FULL_SCALE_POWER = 32768.0**2
_AVERAGE = np.full(DECIMATION, 1 / DECIMATION, dtype=np.float32)


def _power(samples: np.ndarray) -> float:
    """Mean power of int16-scaled float32 samples, as a fraction of full scale's."""
    return float(np.dot(samples, samples)) / (FULL_SCALE_POWER * max(1, len(samples)))


def _decimated(samples: np.ndarray) -> np.ndarray:
    """The mean of every DECIMATION float32 samples (a matrix-vector product: numpy's mean is slower)."""
    usable = len(samples) - len(samples) % DECIMATION
    return np.dot(samples[:usable].reshape(-1, DECIMATION), _AVERAGE)


class EchoMeter:
    """``clock`` gives the hand-over times: the wall clock on PortAudio's threads, a sample count
    when blocks are fed faster than real time (an offline check)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        blocks = round(DELAY_WINDOW_S * 50) + 1
        self._rendered: deque[tuple[float, np.ndarray]] = deque(maxlen=blocks + round(MAX_DELAY_S * 50))
        self._captured: deque[tuple[float, np.ndarray]] = deque(maxlen=blocks)
        self._last_played = -math.inf  # when the speaker last played something audible
        self._powers: deque[tuple[float, float]] = deque(maxlen=round(ERLE_WINDOW_S * 50))

    def render(self, block: np.ndarray) -> None:
        now = self._clock()
        samples = block.astype(np.float32)
        if power_dbfs(_power(samples)) > PLAYING_DBFS:
            self._last_played = now
        with self._lock:
            self._rendered.append((now, _decimated(samples)))

    def capture(self, captured: np.ndarray, sent: np.ndarray) -> None:
        now = self._clock()
        samples = captured.astype(np.float32)
        if now - self._last_played <= ECHO_TAIL_S:
            self._powers.append((_power(samples), _power(sent.astype(np.float32))))
        with self._lock:
            self._captured.append((now, _decimated(samples)))

    def figures(self) -> EchoFigures:
        return EchoFigures(erle_db=self._erle(), delay_ms=self._delay())

    def _erle(self) -> float | None:
        powers = list(self._powers)
        heard = sum(p for p, _ in powers)
        sent = sum(p for _, p in powers)
        if not powers or power_dbfs(heard / len(powers)) < ECHO_FLOOR_DBFS:
            return None
        return round(power_dbfs(heard / sent), 1) if sent > 0 else None

    def _delay(self) -> float | None:
        with self._lock:
            rendered, captured = list(self._rendered), list(self._captured)
        if len(captured) < self._captured.maxlen or len(rendered) < 2:
            return None
        rate = RATE / DECIMATION
        microphone = np.concatenate([samples for _, samples in captured])
        reference = np.concatenate([samples for _, samples in rendered])
        # each stream's samples placed on the hand-over timeline from its first block's time
        offset = captured[0][0] - rendered[0][0]
        if np.dot(microphone, microphone) <= 0 or np.dot(reference, reference) <= 0:
            return None
        size = 1 << (len(microphone) + len(reference)).bit_length()
        spectrum = np.fft.rfft(microphone, size) * np.conj(np.fft.rfft(reference, size))
        correlation = np.fft.irfft(spectrum, size)
        # at lag k, microphone[m] meets reference[m - k]: the echo comes offset + k / rate later
        lags = np.arange(size)
        lags[lags > size // 2] -= size
        delays = offset + lags / rate
        usable = (delays >= 0) & (delays <= MAX_DELAY_S)
        if not usable.any():
            return None
        best = int(np.argmax(np.where(usable, correlation, -np.inf)))
        strength = correlation[best] / math.sqrt(np.dot(microphone, microphone) * np.dot(reference, reference))
        if strength < MIN_CORRELATION:
            return None
        return round(float(delays[best]) * 1000, 1)
