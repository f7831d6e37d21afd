"""int16 sample blocks: levels, software gain, and the ring the speaker plays from."""

from __future__ import annotations

import math
import threading

import numpy as np

INT16_MIN, INT16_MAX = -32768, 32767
PLAYBACK_BUFFER_MS = 40  # the speaker's ring at most: two 20 ms frames
PLAYOUT_MS = 30  # what the speaker's ring holds before it plays: two frames (intercom/audio/speaker.py)
MIN_PLAYOUT_MS = 20  # one frame: the least that plays a whole block


def power(samples: np.ndarray) -> float:
    """Mean square of int16 ``samples`` relative to full scale (1.0 for a full-scale square wave); 0 when empty."""
    scaled = samples.astype(np.float64) / 32768.0
    return float(np.dot(scaled, scaled) / len(scaled)) if len(scaled) else 0.0


def power_dbfs(mean_square: float) -> float:
    """A :func:`power` in dBFS; -inf for silence."""
    return 10 * math.log10(mean_square) if mean_square > 0 else -math.inf


def dbfs(samples: np.ndarray) -> float:
    """Level (RMS) relative to full scale; -inf for digital silence."""
    return power_dbfs(power(samples))


def peak_dbfs(samples: np.ndarray) -> float:
    """The loudest sample relative to full scale; -inf for digital silence."""
    peak = int(np.max(np.abs(samples.astype(np.int32)))) if len(samples) else 0
    return 20 * math.log10(peak / 32768) if peak else -math.inf


def apply_gain(samples: np.ndarray, gain: float) -> np.ndarray:
    """``samples`` (int16) scaled by ``gain`` and clipped to int16; the same array when ``gain`` is 1."""
    if gain == 1.0:
        return samples
    return np.clip(np.rint(samples * gain), INT16_MIN, INT16_MAX).astype(np.int16)


class SampleRing:
    """A bounded FIFO of int16 samples shared by the event loop (writer) and PortAudio's thread (reader).

    A lock guards the indices and the copies; both sides hold it for one 960-sample copy at most.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buffer = np.zeros(capacity, dtype=np.int16)
        self._start = 0
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def write(self, samples: np.ndarray) -> int:
        """Append ``samples``, dropping the oldest to make room; returns how many were dropped."""
        with self._lock:
            if len(samples) >= self.capacity:
                dropped = self._size + len(samples) - self.capacity
                self._buffer[:] = samples[-self.capacity :]
                self._start, self._size = 0, self.capacity
                return dropped
            dropped = max(0, self._size + len(samples) - self.capacity)
            if dropped:
                self._start = (self._start + dropped) % self.capacity
                self._size -= dropped
            end = (self._start + self._size) % self.capacity
            first = min(len(samples), self.capacity - end)
            self._buffer[end : end + first] = samples[:first]
            self._buffer[: len(samples) - first] = samples[first:]
            self._size += len(samples)
            return dropped

    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` from the oldest samples, zeros after the last; returns how many were real."""
        with self._lock:
            count = min(len(out), self._size)
            first = min(count, self.capacity - self._start)
            out[:first] = self._buffer[self._start : self._start + first]
            out[first:count] = self._buffer[: count - first]
            self._start = (self._start + count) % self.capacity
            self._size -= count
        out[count:] = 0
        return count

    def clear(self) -> None:
        with self._lock:
            self._start = self._size = 0
