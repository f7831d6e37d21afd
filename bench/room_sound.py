"""The sound of a simulated door (issue 15): two espeak-ng voices, a room impulse response and street
noise, with the levels they are played at and the measures taken on them.

Shared by ``bench/aec_compare.py`` (offline, in a virtualenv of its own with scipy) and the JACK
acoustic rig of the tests (``bench/jack_room.py``, ``tests/audio/test_echo_rig.py``, in the
project's virtualenv, without scipy): numpy only, and nothing of intercom's, so that it runs in
both and as a top-level module of a bench script.

Samples are floats at 48 kHz, full scale 1.0.
"""

from __future__ import annotations

import functools
import io
import subprocess
import wave

import numpy as np

RATE = 48_000
FRAME = RATE // 100  # 10 ms: the canceller's frame, and the unit of the activity masks

FAR_TEXT = (
    "Good evening, this is the parcel service with a delivery for the second floor.",
    "I have a large box here that needs a signature, could you come down or buzz me in?",
    "The sender is a bookshop in the city centre, and the box is heavy, about twelve kilos.",
    "If nobody is at home I can leave it with a neighbour or take it back to the depot.",
    "The depot opens at eight tomorrow morning and closes at six in the evening.",
    "Please tell me which you prefer, and I will wait here for a minute or two.",
)
NEAR_TEXT = (
    "Yes, hello, I am coming down right now, please wait at the door.",
    "Can you leave it inside the hall, next to the stairs on the left?",
    "Thank you very much, and have a nice evening.",
    "Oh, and one more thing, is there a second parcel for number four?",
)
FAR_VOICE = "en-us"
NEAR_VOICE = "en-gb-scotland+f3"
FAR_PAUSE_S = 0.4  # after each far-end sentence
NEAR_PAUSE_S = 1.0

SPEAKER_RMS_DBFS = -24.0  # of the looped far-end speech, pauses included
ECHO_DB = -9.0  # the room's energy gain, speaker to microphone: 6-12 dB down
REVERB_RT60_MS = 250.0  # the tail's time to fall 60 dB
NEAR_RMS_DBFS = -30.0  # the visitor's voice at the microphone, on its active frames
NOISE_SNR_DB = 10.0  # street noise under the near-end voice, at the microphone
ACTIVE_BELOW_PEAK_DB = 25.0  # a frame is active if within this of the loud frames
SILENT_DBFS = -80.0  # a clean-voice frame below this is a pause (noise only)
SPEAK_TIMEOUT = 60.0  # one espeak-ng sentence


def db(power_ratio: float) -> float:
    return 10.0 * float(np.log10(max(power_ratio, 1e-30)))


# --- speech --------------------------------------------------------------------------------------


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """``samples`` at ``rate`` brought to :data:`RATE`, band-limited through the FFT (no scipy here).

    The signal is treated as periodic, so it is padded with silence first: a wrap-around would
    only spread the padding's zeros.
    """
    divisor = int(np.gcd(RATE, rate))
    up, down = RATE // divisor, rate // divisor
    padded = np.pad(samples, (0, -len(samples) % down + down))
    size = len(padded) * up // down
    spectrum = np.fft.rfft(padded)
    wider = np.zeros(size // 2 + 1, dtype=complex)
    keep = min(len(spectrum), len(wider))
    wider[:keep] = spectrum[:keep]
    return np.fft.irfft(wider, size) * (size / len(padded))


def speak(texts: tuple[str, ...], voice: str, pause_s: float) -> np.ndarray:
    """espeak-ng's sentences at 48 kHz, float in [-1, 1], each followed by a pause; whole frames."""
    pieces = []
    for text in texts:
        result = subprocess.run(
            ["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True, timeout=SPEAK_TIMEOUT
        )
        with wave.open(io.BytesIO(result.stdout)) as wav:  # its header's length is a placeholder
            rate = wav.getframerate()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16) / 32768.0
        pieces += [resample(samples, rate), np.zeros(int(pause_s * RATE))]
    speech = np.concatenate(pieces)
    return np.pad(speech, (0, -speech.size % FRAME))


@functools.cache
def far_speech() -> np.ndarray:
    """The far end (the resident, a parcel courier's script) at SPEAKER_RMS_DBFS; made once per process."""
    speech = set_rms(speak(FAR_TEXT, FAR_VOICE, FAR_PAUSE_S), SPEAKER_RMS_DBFS)
    speech.flags.writeable = False
    return speech


@functools.cache
def near_speech() -> np.ndarray:
    """The near end (the visitor, another voice) at NEAR_RMS_DBFS on its active frames; made once per process."""
    speech = set_rms(speak(NEAR_TEXT, NEAR_VOICE, NEAR_PAUSE_S), NEAR_RMS_DBFS, active_only=True)
    speech.flags.writeable = False
    return speech


def loop_to(signal: np.ndarray, seconds: float) -> np.ndarray:
    """``signal`` repeated (or cut) to ``seconds``, in whole frames."""
    return np.resize(signal, int(seconds * 100) * FRAME)


# --- levels and activity ---------------------------------------------------------------------------


def set_rms(signal: np.ndarray, dbfs: float, active_only: bool = False) -> np.ndarray:
    measured = signal[active_mask(signal)] if active_only else signal
    return signal * (10 ** (dbfs / 20) / np.sqrt(np.mean(measured**2)))


def frame_power(signal: np.ndarray) -> np.ndarray:
    """Mean power of each whole 10 ms frame (a trailing part frame is left out)."""
    usable = len(signal) - len(signal) % FRAME
    return np.mean(np.square(signal[:usable], dtype=np.float64).reshape(-1, FRAME), axis=1)


def active_mask(signal: np.ndarray) -> np.ndarray:
    """Sample mask of the frames within ACTIVE_BELOW_PEAK_DB of the loud frames (95th percentile)."""
    power = frame_power(signal)
    mask = np.repeat(power > np.percentile(power, 95) * 10 ** (-ACTIVE_BELOW_PEAK_DB / 10), FRAME)
    return np.pad(mask, (0, len(signal) - len(mask)))


def pause_mask(clean: np.ndarray) -> np.ndarray:
    """Sample mask of the frames where the clean voice is silent (below SILENT_DBFS): noise only."""
    mask = np.repeat(frame_power(clean) < 10 ** (SILENT_DBFS / 10), FRAME)
    return np.pad(mask, (0, len(clean) - len(mask)))


def snr(signal: np.ndarray, speech: np.ndarray, pause: np.ndarray) -> float:
    """Speech over noise from the power on speech frames and on pause frames, alike for input and output."""
    noise = np.mean(signal[pause] ** 2)
    return db((np.mean(signal[speech] ** 2) - noise) / noise)


def erle_per_second(echo: np.ndarray, residual: np.ndarray) -> list[float | None]:
    """ERLE (echo power over residual power) of each whole second; None for a second with too little
    echo to count (under 1 % of the median second's: a pause)."""
    seconds = min(len(echo), len(residual)) // RATE
    echo_power = np.sum(np.square(echo[: seconds * RATE], dtype=np.float64).reshape(-1, RATE), axis=1)
    residual_power = np.sum(np.square(residual[: seconds * RATE], dtype=np.float64).reshape(-1, RATE), axis=1)
    floor = np.median(echo_power) * 1e-2
    return [
        round(db(e / max(r, 1e-30)), 1) if e > floor else None for e, r in zip(echo_power, residual_power, strict=True)
    ]


def voice_kept(clean: np.ndarray, out: np.ndarray, talking: np.ndarray) -> tuple[float, float]:
    """How much of a voice survives in ``out`` (aligned with ``clean``) on the ``talking`` samples:
    its level loss in dB and the correlation with the clean voice."""
    kept, voice = out[talking], clean[talking]
    return db(np.sum(voice**2) / np.sum(kept**2)), float(np.corrcoef(voice, kept)[0, 1])


def lag_by_correlation(reference: np.ndarray, delayed: np.ndarray, max_lag: int, min_lag: int | None = None) -> int:
    """How many samples ``delayed`` trails ``reference`` (between ``min_lag``, by default ``-max_lag``,
    and ``max_lag``): the peak of their cross-correlation, through the FFT."""
    low = -max_lag if min_lag is None else min_lag
    size = 1 << (len(reference) + len(delayed)).bit_length()
    correlation = np.fft.irfft(np.fft.rfft(delayed, size) * np.conj(np.fft.rfft(reference, size)), size)
    lags = np.arange(low, max_lag + 1)
    return int(lags[np.argmax(correlation[lags % size])])


# --- the room and the street -----------------------------------------------------------------------


def room_response(
    delay_ms: float, rng: np.random.Generator, echo_db: float = ECHO_DB, rt60_ms: float = REVERB_RT60_MS
) -> np.ndarray:
    """A speaker-to-microphone impulse response: ``delay_ms`` of silence, a direct path, and a tail
    decaying exponentially (60 dB in ``rt60_ms``, 1.2 times that long); ``echo_db`` of energy gain in all."""
    if delay_ms < 0 or rt60_ms <= 0:
        raise ValueError(f"a room needs a delay >= 0 and a reverb time > 0, not {delay_ms} ms and {rt60_ms} ms")
    delay = int(delay_ms * RATE / 1000)
    tail = np.arange(int(1.2 * rt60_ms / 1000 * RATE)) / RATE
    response = np.zeros(delay + tail.size)
    response[delay + 1 :] = rng.standard_normal(tail.size - 1) * np.exp(-6.9 * tail[1:] / (rt60_ms / 1000)) * 0.08
    response[delay] = 1.0
    return response * np.sqrt(10 ** (echo_db / 10) / np.sum(response**2))


def street_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Pink and brown noise, a rumble of 25-80 Hz, slowly swelling as traffic passes; unit RMS before the swell.

    The rumble is band-passed in the frequency domain with the magnitude of a Butterworth band-pass
    (order 4 per edge): for noise, the phase of the filter does not matter.
    """
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.maximum(np.fft.rfftfreq(samples, 1 / RATE), 10.0)
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), samples)
    brown = np.fft.irfft(spectrum / freqs, samples)
    low, high = 25.0, 80.0
    centre2, width = low * high, high - low
    band = 1 / np.sqrt(1 + ((freqs**2 - centre2) / (freqs * width)) ** 8)
    rumble = np.fft.irfft(np.fft.rfft(rng.standard_normal(samples)) * band, samples)
    parts = [part / np.sqrt(np.mean(part**2)) for part in (pink, brown, rumble)]
    swell = 1.0 + 0.5 * np.sin(2 * np.pi * np.arange(samples) / RATE / 7.0)
    return (parts[0] + 0.7 * parts[1] + 1.0 * parts[2]) * swell


def street_at(samples: int, seed: int, dbfs: float = NEAR_RMS_DBFS - NOISE_SNR_DB) -> np.ndarray:
    """:func:`street_noise` of ``seed`` at ``dbfs`` RMS: NOISE_SNR_DB under the near voice by default."""
    noise = street_noise(samples, np.random.default_rng(seed))
    return noise * (10 ** (dbfs / 20) / np.sqrt(np.mean(noise**2)))
