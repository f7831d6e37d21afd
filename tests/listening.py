"""Sound in tests: a WAV file to play, and what recorded audio sounds like (its envelope, its frequencies)."""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import numpy as np

from intercom.media.tracks import FULL_SCALE

RATE = 48000
BLOCK_SECONDS = 0.001  # the RMS envelope's resolution
SILENT_RMS = 20.0  # off periods are digital silence; a burst's 1 ms blocks are far above this, beats included


def write_wav(path: Path, seconds: float, rate: int = 16000, hz: float = 1000.0) -> None:
    """A 16-bit stereo WAV with the same sine at half scale in both channels."""
    sine = (0.5 * FULL_SCALE * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.stack([sine, sine], axis=1).tobytes())


def envelope_runs(pcm: np.ndarray, rate: int = RATE) -> list[tuple[bool, float]]:
    """(sounding, seconds) for each stretch of the 1 ms RMS envelope above or below :data:`SILENT_RMS`."""
    block = round(BLOCK_SECONDS * rate)
    blocks = pcm[: len(pcm) // block * block].astype(np.float64).reshape(-1, block)
    sounding = np.sqrt(np.mean(blocks**2, axis=1)) > SILENT_RMS
    edges = np.flatnonzero(np.diff(sounding)) + 1
    bounds = np.r_[0, edges, len(sounding)]
    return [(bool(sounding[start]), (end - start) * BLOCK_SECONDS) for start, end in itertools.pairwise(bounds)]


def peaks(samples: np.ndarray, count: int, rate: int = RATE) -> list[float]:
    """The ``count`` strongest frequencies, to 1 Hz, at least 30 Hz apart."""
    window = samples.astype(np.float64) * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window, n=max(rate, len(samples))))  # padded: a bin per hertz
    hz = np.fft.rfftfreq(max(rate, len(samples)), 1 / rate)
    found = []
    for _ in range(count):
        strongest = int(np.argmax(spectrum))
        found.append(float(hz[strongest]))
        spectrum[np.abs(hz - hz[strongest]) < 30] = 0.0
    return sorted(found)


def has_pair(samples: np.ndarray, low: float, high: float, under: float, rate: int = RATE) -> bool:
    """Whether the three strongest frequencies of ``samples`` are the DTMF pair ``low`` + ``high`` and a
    tone of ``under`` Hz, each within 15 Hz (a 0.1 s window resolves about 10 Hz)."""
    if len(samples) == 0:
        return False
    found = peaks(samples, 3, rate)
    return all(abs(hz - wanted) <= 15 for hz, wanted in zip(found, sorted([low, high, under]), strict=True))
