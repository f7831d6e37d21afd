"""What a caller heard, measured: speech spans, loudness, likeness to a reference prompt."""

from __future__ import annotations

import numpy as np

from intercom.media.tracks import FRAME_SAMPLES, SILENCE_RMS, PacedSource, ToneSource


def frame_rms(samples: np.ndarray) -> np.ndarray:
    """RMS of each whole 20 ms frame."""
    count = len(samples) // FRAME_SAMPLES
    frames = samples[: count * FRAME_SAMPLES].astype(np.float64).reshape(count, FRAME_SAMPLES)
    return np.sqrt(np.mean(frames**2, axis=1))


def sound_span(samples: np.ndarray, rate: int = 48000) -> float:
    """Seconds from the first to the end of the last frame louder than silence (0 when none)."""
    return len(sounding(samples)) / rate


def sounding(samples: np.ndarray) -> np.ndarray:
    """From the first to the end of the last frame louder than silence."""
    loud = np.flatnonzero(frame_rms(samples) >= SILENCE_RMS)
    if not len(loud):
        return samples[:0]
    return samples[loud[0] * FRAME_SAMPLES : (loud[-1] + 1) * FRAME_SAMPLES]


def loudness(samples: np.ndarray) -> float:
    """RMS over the frames louder than silence."""
    rms = frame_rms(samples)
    loud = rms[rms >= SILENCE_RMS]
    return float(np.sqrt(np.mean(loud**2))) if len(loud) else 0.0


def likeness(heard: np.ndarray, reference: np.ndarray) -> float:
    """Best normalised correlation of the two loudness envelopes over every alignment: ~1 for the
    same words in the same voice, much lower for other words or another voice."""
    a, b = frame_rms(heard), frame_rms(reference)
    a, b = (a - a.mean()) / (a.std() or 1.0), (b - b.mean()) / (b.std() or 1.0)
    correlation = np.correlate(a, b, mode="full") / min(len(a), len(b))
    return float(correlation.max())


def dominant_hz(samples: np.ndarray, rate: int = 48000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    spectrum[0] = 0.0
    return float(np.argmax(spectrum) * rate / len(samples))


class ToneThenSilence(PacedSource):
    """A tone for ``seconds``, then digital silence: a visitor who speaks, then stops."""

    def __init__(self, frequency_hz: float, seconds: float) -> None:
        super().__init__()
        self.tone = ToneSource(frequency_hz)
        self.until = round(seconds * 48000)

    def samples(self, pts: int) -> np.ndarray:
        return self.tone.samples(pts) if pts < self.until else np.zeros(FRAME_SAMPLES)
