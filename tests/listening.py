"""Sound in tests: a WAV file to play, frames read from a track, and what recorded audio sounds like
(its envelope, its frequencies)."""

from __future__ import annotations

import asyncio
import itertools
import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack

from intercom.media.tracks import FRAME_SAMPLES, FULL_SCALE

from .units import STEP

RATE = 48000
BLOCK_SECONDS = 0.001  # the RMS envelope's resolution
SILENT_RMS = 20.0  # off periods are digital silence; a burst's 1 ms blocks are far above this, beats included


def write_wav(path: Path, seconds: float, rate: int = 16000, hz: float = 1000.0, channels: int = 2) -> None:
    """A 16-bit WAV with the same sine at half scale in each of its ``channels``."""
    sine = (0.5 * FULL_SCALE * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.stack([sine] * channels, axis=1).tobytes())


def write_mp3(path: Path, seconds: float, hz: float = 1000.0) -> None:
    """A 44.1 kHz mono MP3 of a half-scale sine, encoded by PyAV's FFmpeg."""
    if "libmp3lame" not in av.codecs_available:
        pytest.skip("this FFmpeg has no MP3 encoder")
    rate = 44100
    sine = (0.5 * FULL_SCALE * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)).astype(np.int16)
    with av.open(str(path), "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        for start in range(0, len(sine), 1152):
            frame = av.AudioFrame.from_ndarray(sine[start : start + 1152].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


async def read(track: MediaStreamTrack, frames: int) -> tuple[list[av.AudioFrame], float]:
    """``frames`` frames from ``track`` and the seconds between the first and the last."""
    async with asyncio.timeout(STEP):
        received = [await track.recv()]
    first_at = time.monotonic()
    for _ in range(frames - 1):
        async with asyncio.timeout(STEP):
            received.append(await track.recv())
    return received, time.monotonic() - first_at


def pcm_of(frames: list[av.AudioFrame]) -> np.ndarray:
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])


def assert_paced_20_ms_frames(frames: list[av.AudioFrame], elapsed: float) -> None:
    assert [frame.pts for frame in frames] == [index * FRAME_SAMPLES for index in range(len(frames))]
    assert {(f.samples, f.sample_rate, f.layout.name, f.format.name) for f in frames} == {
        (FRAME_SAMPLES, RATE, "mono", "s16")
    }
    assert elapsed >= (len(frames) - 1) * 0.02 - 0.003  # frames come due on the clock, not as fast as asked


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
