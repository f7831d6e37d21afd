"""Choose the echo canceller by measurement (issue 15): ``livekit``'s ``rtc.AudioProcessingModule``
against ``pywebrtc-audio``'s ``AudioProcessor``, both WebRTC AEC3, offline on a simulated room.

No sound card, no JACK, no hub: the far end's speech (espeak-ng) is the speaker's signal; the
microphone hears it through a synthetic room impulse response, plus in some phases a near-end voice
(another espeak-ng voice) and street-like noise. Each 10 ms frame (48 kHz, mono, int16) goes to the
canceller as a unit would hand it: the block given to the speaker now as the reference, then the
microphone's block of the same instant. Measured per candidate: ERLE while only the far end talks
(60 s or more, per second), the near-end voice's loss and correlation during double talk, the SNR
gain on noise, the delay the processing adds, and the processing time per frame; plus each package's
installed size. Then the trap
of issue 15 for the chosen one: the reference handed 60 ms late, after its echo was captured.

It runs outside the project's virtualenv, since the candidates are not dependencies yet, and so
without ``intercom``; of ``bench/harness.py`` it uses only the run frame: one JSON object, a
summary line, exit 1 when the chosen candidate misses a target, 2 on error::

    /work/aecvenv/bin/python bench/aec_compare.py [--quick] [--seed N] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn, Protocol

from harness import Figures, host_environment, run_and_report

RATE = 48_000
FRAME = RATE // 100  # 10 ms, the only frame length both APIs take
INSTALL_HINT = f"{sys.executable} -m pip install 'livekit==1.2.1' 'pywebrtc-audio==0.2.0' numpy scipy"


def missing(package: str) -> NoReturn:
    """One clear line, not a traceback; exit 2 as on any error."""
    print(f"bench failed: {package} is not installed: {INSTALL_HINT}", file=sys.stderr)
    sys.exit(2)


try:
    import numpy as np
    from scipy.signal import butter, correlate, fftconvolve, resample_poly, sosfilt
except ImportError as error:
    missing(str(error.name))

FAR_TEXT = [
    "Good evening, this is the parcel service with a delivery for the second floor.",
    "I have a large box here that needs a signature, could you come down or buzz me in?",
    "The sender is a bookshop in the city centre, and the box is heavy, about twelve kilos.",
    "If nobody is at home I can leave it with a neighbour or take it back to the depot.",
    "The depot opens at eight tomorrow morning and closes at six in the evening.",
    "Please tell me which you prefer, and I will wait here for a minute or two.",
]
NEAR_TEXT = [
    "Yes, hello, I am coming down right now, please wait at the door.",
    "Can you leave it inside the hall, next to the stairs on the left?",
    "Thank you very much, and have a nice evening.",
    "Oh, and one more thing, is there a second parcel for number four?",
]
FAR_VOICE = "en-us"
NEAR_VOICE = "en-gb-scotland+f3"

SPEAKER_RMS_DBFS = -24.0  # of the looped far-end speech, pauses included
ECHO_DB = -9.0  # the room's energy gain, speaker to microphone: 6-12 dB down
NEAR_RMS_DBFS = -30.0  # the visitor's voice at the microphone, on its active frames
NOISE_SNR_DB = 10.0  # street noise under the near-end voice, at the microphone
ACTIVE_BELOW_PEAK_DB = 25.0  # a frame is active if within this of the loud frames
SILENT_DBFS = -80.0  # a clean-voice frame below this is a pause (noise only)

ROOM_DELAYS_MS = (20, 60)  # the bulk delays measured, the ends of the 20-60 ms
CONVERGED_AFTER_S = 2.0
ERLE_TARGET_DB = 40.0
HOLD_FLOOR_DB = 20.0  # no counted second after convergence may fall below this: no collapse
TRAP_LAG_FRAMES = 6  # the reference fed 60 ms late
TRAP_LATE_FROM_S = 5.0  # and once from a backlog that forms after the canceller converged


# --- the candidates ----------------------------------------------------------------------------


class Canceller(Protocol):
    def frame(self, reference: np.ndarray, microphone: np.ndarray) -> np.ndarray:
        """Hand the speaker's block, then the microphone's block of the same 10 ms; return the output."""


@dataclass(frozen=True)
class Candidate:
    name: str
    package: str  # its distribution on PyPI
    settings: dict[str, Any]
    stronger_noise_level: int | None  # None: the API has no suppression levels
    make: Callable[..., Canceller]  # (noise_level=None, steps=STEPS_ON)


class LivekitApm:
    """livekit's rtc.AudioProcessingModule: AudioFrames processed in place through its FFI."""

    def __init__(self, noise_level: int | None = None, steps: dict[str, bool] | None = None) -> None:
        from livekit import rtc

        if noise_level is not None:
            raise ValueError("livekit's AudioProcessingModule has no noise suppression level")
        steps = STEPS_ON if steps is None else steps
        self._frame = rtc.AudioFrame
        self._apm = rtc.AudioProcessingModule(**steps)
        if steps["echo_cancellation"]:  # its docstring: called if and only if echo processing is on
            self._apm.set_stream_delay_ms(0)  # no buffer between the hand-over and the speaker here

    def frame(self, reference: np.ndarray, microphone: np.ndarray) -> np.ndarray:
        self._apm.process_reverse_stream(self._frame(bytearray(reference.tobytes()), RATE, 1, FRAME))
        captured = self._frame(bytearray(microphone.tobytes()), RATE, 1, FRAME)
        self._apm.process_stream(captured)
        return np.frombuffer(captured.data, dtype=np.int16).copy()


class PywebrtcApm:
    """pywebrtc-audio's AudioProcessor: ``process(near, far)`` analyses the far block, then the near one."""

    def __init__(self, noise_level: int | None = None, steps: dict[str, bool] | None = None) -> None:
        from pywebrtc_audio import AudioProcessor

        level = PYWEBRTC_SETTINGS["ns_level"] if noise_level is None else noise_level
        self._apm = AudioProcessor(**{**PYWEBRTC_SETTINGS, **(steps or {}), "ns_level": level})

    def frame(self, reference: np.ndarray, microphone: np.ndarray) -> np.ndarray:
        return self._apm.process(microphone, reference)


STEPS_ON = {  # the same four switches in both APIs; gain control off so that it cannot distort ERLE
    "echo_cancellation": True,
    "noise_suppression": True,
    "high_pass_filter": True,
    "auto_gain_control": False,
}
ALL_OFF = dict.fromkeys(STEPS_ON, False)
PYWEBRTC_SETTINGS = {
    "sample_rate": RATE,
    "num_channels": 1,
    **STEPS_ON,
    "ns_level": 1,  # its default: "12 dB"
    "stream_delay_ms": 0,
}
CANDIDATES = (
    Candidate("livekit", "livekit", {**STEPS_ON, "stream_delay_ms": 0}, None, LivekitApm),
    Candidate("pywebrtc-audio", "pywebrtc-audio", PYWEBRTC_SETTINGS, 3, PywebrtcApm),
)


def check_installed() -> None:
    """Stop with one line naming the pip command when a candidate is missing."""
    for module, package in (("livekit.rtc", "livekit"), ("pywebrtc_audio", "pywebrtc-audio")):
        try:
            __import__(module)
        except ImportError:
            missing(package)


# --- the simulated room ------------------------------------------------------------------------


def db(power_ratio: float) -> float:
    return 10.0 * float(np.log10(max(power_ratio, 1e-30)))


def speak(texts: list[str], voice: str, pause_s: float, workdir: Path) -> np.ndarray:
    """espeak-ng's sentences at 48 kHz, float in [-1, 1], each followed by a pause."""
    pieces = []
    for index, text in enumerate(texts):
        path = workdir / f"{voice}-{index}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, timeout=60)
        with wave.open(str(path)) as wav:
            rate = wav.getframerate()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16) / 32768.0
        divisor = np.gcd(RATE, rate)
        pieces += [resample_poly(samples, RATE // divisor, rate // divisor), np.zeros(int(pause_s * RATE))]
    speech = np.concatenate(pieces)
    return np.pad(speech, (0, -speech.size % FRAME))  # whole frames


def loop_to(signal: np.ndarray, seconds: float) -> np.ndarray:
    frames = int(seconds * 100)
    return np.resize(signal, frames * FRAME)


def set_rms(signal: np.ndarray, dbfs: float, active_only: bool = False) -> np.ndarray:
    measured = signal[active_mask(signal)] if active_only else signal
    return signal * (10 ** (dbfs / 20) / np.sqrt(np.mean(measured**2)))


def frame_power(signal: np.ndarray) -> np.ndarray:
    return np.mean(signal.reshape(-1, FRAME) ** 2, axis=1)


def active_mask(signal: np.ndarray) -> np.ndarray:
    """Sample mask of the frames within ACTIVE_BELOW_PEAK_DB of the loud frames (95th percentile)."""
    power = frame_power(signal)
    return np.repeat(power > np.percentile(power, 95) * 10 ** (-ACTIVE_BELOW_PEAK_DB / 10), FRAME)


def room_response(delay_ms: float, rng: np.random.Generator) -> np.ndarray:
    """Bulk delay, a direct path, and a 250 ms (RT60) exponentially decaying tail, ECHO_DB down in all."""
    delay = int(delay_ms * RATE / 1000)
    tail = np.arange(int(0.3 * RATE)) / RATE
    response = np.zeros(delay + tail.size)
    response[delay + 1 :] = rng.standard_normal(tail.size - 1) * np.exp(-6.9 * tail[1:] / 0.25) * 0.08
    response[delay] = 1.0
    return response * np.sqrt(10 ** (ECHO_DB / 10) / np.sum(response**2))


def street_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Pink and brown noise, a rumble below 80 Hz, slowly swelling as traffic passes."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.maximum(np.fft.rfftfreq(samples, 1 / RATE), 10.0)
    pink = np.fft.irfft(spectrum / np.sqrt(freqs), samples)
    brown = np.fft.irfft(spectrum / freqs, samples)
    rumble = sosfilt(butter(4, [25, 80], "bandpass", fs=RATE, output="sos"), rng.standard_normal(samples))
    parts = [part / np.sqrt(np.mean(part**2)) for part in (pink, brown, rumble)]
    swell = 1.0 + 0.5 * np.sin(2 * np.pi * np.arange(samples) / RATE / 7.0)
    return (parts[0] + 0.7 * parts[1] + 1.0 * parts[2]) * swell


def to_int16(signal: np.ndarray) -> np.ndarray:
    return np.clip(np.round(signal * 32768.0), -32768, 32767).astype(np.int16)


@dataclass
class Scene:
    """One phase's signals, float: the speaker's feed, and what reaches the microphone by source."""

    speaker: np.ndarray
    echo: np.ndarray
    near: np.ndarray
    noise: np.ndarray

    @property
    def microphone(self) -> np.ndarray:
        return to_int16(self.echo + self.near + self.noise)


class Room:
    """The voices, made once, and a room response per bulk delay, seeded."""

    def __init__(self, workdir: Path, seed: int) -> None:
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.far = set_rms(speak(FAR_TEXT, FAR_VOICE, 0.4, workdir), SPEAKER_RMS_DBFS)
        self.near = set_rms(speak(NEAR_TEXT, NEAR_VOICE, 1.0, workdir), NEAR_RMS_DBFS, active_only=True)
        self.responses = {delay: room_response(delay, rng) for delay in ROOM_DELAYS_MS}

    def scene(self, seconds: float, delay_ms: int, near_from_s: float | None, noisy: bool, far: bool = True) -> Scene:
        samples = int(seconds * 100) * FRAME
        speaker = loop_to(self.far, seconds) if far else np.zeros(samples)
        speaker = to_int16(speaker) / 32768.0  # exactly what the speaker gets
        echo = fftconvolve(speaker, self.responses[delay_ms])[:samples]
        near = np.zeros(samples)
        if near_from_s is not None:
            start = int(near_from_s * 100) * FRAME
            near[start:] = loop_to(self.near, seconds - near_from_s)[: samples - start]
        noise = np.zeros(samples)
        if noisy:
            noise = street_noise(samples, np.random.default_rng(self.seed + 1))  # the same street for everyone
            noise *= 10 ** ((NEAR_RMS_DBFS - NOISE_SNR_DB) / 20) / np.sqrt(np.mean(noise**2))
        return Scene(speaker, echo, near, noise)


# --- running a canceller -----------------------------------------------------------------------


def target_reached_from(series: list[float | None]) -> int | None:
    """The second from which every counted second reaches ERLE_TARGET_DB; None if the last one does not."""
    start = None
    for second, value in enumerate(series):
        if value is not None and value < ERLE_TARGET_DB:
            start = None
        elif start is None:
            start = second
    return start


@dataclass(frozen=True)
class Lateness:
    """The trap: the reference handed ``frames`` late (after its echo was captured) from ``from_frame`` on."""

    frames: int
    from_frame: int = 0


def run_through(canceller: Canceller, scene: Scene, late: Lateness | None = None) -> np.ndarray:
    """Frame by frame in speaker order: the reference is the speaker's block of the same instant,
    unless ``late``: from then on, the block ``late.frames`` ago (a backlog; it stalls while forming)."""
    speaker = to_int16(scene.speaker).reshape(-1, FRAME)
    microphone = scene.microphone.reshape(-1, FRAME)
    silence = np.zeros(FRAME, dtype=np.int16)
    out = np.empty_like(microphone)
    for index in range(len(microphone)):
        reference = speaker[index]
        if late is not None and index >= late.from_frame:
            lagged = index - late.frames
            reference = speaker[lagged] if lagged >= late.from_frame else silence
        out[index] = canceller.frame(reference, microphone[index])
    return out.reshape(-1) / 32768.0


def erle(scene: Scene, out: np.ndarray, seconds_from: float, seconds_to: float | None = None) -> float:
    window = slice(int(seconds_from * RATE), None if seconds_to is None else int(seconds_to * RATE))
    return db(np.sum(scene.echo[window] ** 2) / max(np.sum(out[window] ** 2), 1e-30))


def erle_per_second(scene: Scene, out: np.ndarray) -> list[float | None]:
    """ERLE of each whole second; None for a second with too little echo to count (a pause)."""
    echo = np.sum(scene.echo.reshape(-1, RATE) ** 2, axis=1)
    residual = np.sum(out.reshape(-1, RATE) ** 2, axis=1)
    floor = np.median(echo) * 1e-2
    return [round(db(e / max(r, 1e-30)), 1) if e > floor else None for e, r in zip(echo, residual, strict=True)]


def echo_phase(
    candidate: Candidate, room: Room, delay_ms: int, seconds: float, late: Lateness | None = None
) -> dict[str, Any]:
    """Far-end speech only. Converged: one energy ratio from 2 s to the end; it holds if no counted
    second after 2 s falls below HOLD_FLOOR_DB and the last 10 s still reach the target."""
    scene = room.scene(seconds, delay_ms, near_from_s=None, noisy=False)
    out = run_through(candidate.make(None), scene, late)
    series = erle_per_second(scene, out)
    after = [value for value in series[int(CONVERGED_AFTER_S) :] if value is not None]
    last = erle(scene, out, seconds - 10)
    return {
        "room_delay_ms": delay_ms,
        "reference_late_ms": 0 if late is None else late.frames * 10,
        "late_from_s": None if late is None else late.from_frame / 100,
        "seconds": seconds,
        "erle_converged_db": round(erle(scene, out, CONVERGED_AFTER_S), 1),
        "erle_2_to_3s_db": round(erle(scene, out, CONVERGED_AFTER_S, CONVERGED_AFTER_S + 1), 1),
        "erle_median_second_after_2s_db": round(statistics.median(after), 1),
        "erle_min_second_after_2s_db": min(after),
        "erle_last_10s_db": round(last, 1),
        "erle_40db_from_s": target_reached_from(series),
        "holds": min(after) >= HOLD_FLOOR_DB and last >= ERLE_TARGET_DB,
        "erle_per_second_db": series,
    }


def output_lag(clean: np.ndarray, out: np.ndarray, max_lag: int) -> int:
    """How many samples (within ``max_lag``) the output trails the clean voice, by cross-correlation."""
    correlation = correlate(out, clean, mode="full", method="fft")
    centre = clean.size - 1
    window = correlation[centre - max_lag : centre + max_lag + 1]
    return int(np.argmax(window)) - max_lag


def double_talk_phase(candidate: Candidate, room: Room, delay_ms: int, seconds: float) -> dict[str, Any]:
    """The far end talks throughout; the near end joins after 10 s, once the canceller has converged."""
    near_from = 10.0
    scene = room.scene(seconds, delay_ms, near_from_s=near_from, noisy=False)
    out = run_through(candidate.make(None), scene)
    talking = active_mask(scene.near)
    talking[: int(near_from * RATE)] = False
    both = talking & active_mask(scene.echo + 1e-9)
    lag = output_lag(np.where(talking, scene.near, 0.0), np.where(talking, out, 0.0), RATE // 50)
    aligned = np.roll(out, -lag)
    clean, kept = scene.near[talking], aligned[talking]
    return {
        "room_delay_ms": delay_ms,
        "near_level_loss_db": round(db(np.sum(clean**2) / np.sum(kept**2)), 1),
        "near_level_loss_both_active_db": round(db(np.sum(scene.near[both] ** 2) / np.sum(out[both] ** 2)), 1),
        "correlation_with_clean_near": round(float(np.corrcoef(clean, kept)[0, 1]), 3),
        "correlation_at_lag_0": round(float(np.corrcoef(clean, out[talking])[0, 1]), 3),
        "output_lag_ms": round(lag * 1000 / RATE, 2),
        "near_to_echo_db": round(db(np.sum(clean**2) / np.sum(scene.echo[talking] ** 2)), 1),
        "near_active_s": round(talking.sum() / RATE, 1),
        "both_active_s": round(both.sum() / RATE, 1),
    }


def latency_phase(candidate: Candidate, room: Room) -> dict[str, float]:
    """How much later the near-end voice leaves than it came in, each step alone and all on:
    what the processing adds to mouth-to-ear (the steps' own buffering, band splitting)."""
    scene = room.scene(12.0, ROOM_DELAYS_MS[0], near_from_s=0.0, noisy=False, far=False)
    talking = active_mask(scene.near)
    clean = np.where(talking, scene.near, 0.0)
    lags = {}
    for name in ("all off", *(step for step, on in STEPS_ON.items() if on), "all on"):
        steps = {"all off": ALL_OFF, "all on": STEPS_ON}.get(name, {**ALL_OFF, name: True})
        out = run_through(candidate.make(steps=steps), scene)
        lags[name] = round(output_lag(clean, np.where(talking, out, 0.0), RATE // 20) * 1000 / RATE, 2)
    return lags


def snr(signal: np.ndarray, speech: np.ndarray, pause: np.ndarray) -> float:
    """Speech over noise from the power on speech frames and on pause frames, alike for input and output."""
    noise = np.mean(signal[pause] ** 2)
    return db((np.mean(signal[speech] ** 2) - noise) / noise)


def noise_phase(candidate: Candidate, room: Room, seconds: float, level: int | None) -> dict[str, Any]:
    """The near-end voice in street noise, the speaker silent; the first 3 s let the suppressor learn."""
    scene = room.scene(seconds, 20, near_from_s=0.0, noisy=True, far=False)
    out = run_through(candidate.make(level), scene)
    settle = int(3.0 * RATE)
    speech = active_mask(scene.near)
    pause = np.repeat(frame_power(scene.near) < 10 ** (SILENT_DBFS / 10), FRAME)
    speech[:settle] = pause[:settle] = False
    microphone = scene.microphone / 32768.0
    snr_in, snr_out = snr(microphone, speech, pause), snr(out, speech, pause)
    return {
        "noise_suppression_level": "default" if level is None else level,
        "snr_in_db": round(snr_in, 1),
        "snr_out_db": round(snr_out, 1),
        "snr_gain_db": round(snr_out - snr_in, 1),
        "voice_level_change_db": round(db(np.sum(out[speech] ** 2) / np.sum(microphone[speech] ** 2)), 1),
        "noise_in_pauses_change_db": round(db(np.sum(out[pause] ** 2) / np.sum(microphone[pause] ** 2)), 1),
    }


def cpu_phase(room: Room, frames: int, repeats: int) -> dict[str, Any]:
    """Both streams per 10 ms frame, the API's own Python calls included; candidates take turns per repeat."""
    scene = room.scene(frames / 100 + 2, 20, near_from_s=1.0, noisy=True)
    speaker = to_int16(scene.speaker).reshape(-1, FRAME)
    microphone = scene.microphone.reshape(-1, FRAME)
    cancellers = {candidate.name: candidate.make(None) for candidate in CANDIDATES}
    # the same calls with every processing step off: what the API's own calls cost
    cancellers |= {candidate.name + " (all off)": candidate.make(steps=ALL_OFF) for candidate in CANDIDATES}
    for canceller in cancellers.values():  # warm up: converge, fill caches
        for index in range(200):
            canceller.frame(speaker[index], microphone[index])
    samples: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []} for name in cancellers}
    for _ in range(repeats):
        for name, canceller in cancellers.items():
            cpu, wall = time.process_time(), time.perf_counter()
            for index in range(200, 200 + frames):
                canceller.frame(speaker[index], microphone[index])
            samples[name]["cpu"].append((time.process_time() - cpu) / frames * 1e6)
            samples[name]["wall"].append((time.perf_counter() - wall) / frames * 1e6)
    result: dict[str, Any] = {"frames_per_repeat": frames, "repeats": repeats}
    for name, times in samples.items():
        cpu_us = statistics.median(times["cpu"])
        result[name] = {
            "cpu_us_per_frame_median": round(cpu_us, 1),
            "wall_us_per_frame_median": round(statistics.median(times["wall"]), 1),
            "core_percent": round(cpu_us / 10_000 * 100, 2),
            "cpu_us_per_frame_each": [round(value, 1) for value in times["cpu"]],
        }
    first, second = (candidate.name for candidate in CANDIDATES)
    result["cpu_ratio_" + second + "_over_" + first] = round(
        result[second]["cpu_us_per_frame_median"] / result[first]["cpu_us_per_frame_median"], 2
    )
    return result


# --- install size ------------------------------------------------------------------------------


def requirements(package: str) -> list[str]:
    """The names a distribution requires when installed without extras."""
    names = []
    for requirement in metadata.requires(package) or []:
        if "extra ==" in requirement:
            continue
        names.append(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
    return names


def installed_bytes(package: str) -> int:
    files = metadata.distribution(package).files or []
    return sum(path.stat().st_size for path in (file.locate() for file in files) if path.is_file())


def install_size(package: str) -> dict[str, Any]:
    """The installed files of a package and of everything it pulls in, from each distribution's RECORD."""
    seen: dict[str, float] = {}
    pending = [package]
    while pending:
        name = pending.pop()
        canonical = re.sub(r"[-_.]+", "-", name).lower()
        if canonical in seen:
            continue
        seen[canonical] = round(installed_bytes(name) / 1e6, 1)
        pending += requirements(name)
    return {"own_mb": seen[package], "with_dependencies_mb": round(sum(seen.values()), 1), "dependencies": seen}


# --- the run -----------------------------------------------------------------------------------


def measure(workdir: Path, quick: bool, seed: int) -> Figures:
    echo_seconds, talk_seconds, noise_seconds = (20.0, 20.0, 15.0) if quick else (64.0, 30.0, 30.0)
    cpu_frames, cpu_repeats = (500, 3) if quick else (3000, 9)
    room = Room(workdir, seed)
    figures: Figures = {
        "room": {
            "rate_hz": RATE,
            "frame_ms": 10,
            "far_speech_s": round(room.far.size / RATE, 1),
            "near_speech_s": round(room.near.size / RATE, 1),
            "far_voice": FAR_VOICE,
            "near_voice": NEAR_VOICE,
            "speaker_rms_dbfs": SPEAKER_RMS_DBFS,
            "echo_gain_db": ECHO_DB,
            "reverb_rt60_ms": 250,
            "near_rms_dbfs_active": NEAR_RMS_DBFS,
            "noise_snr_db": NOISE_SNR_DB,
            "seed": seed,
        },
        "candidates": {},
    }
    for candidate in CANDIDATES:
        levels = [None] + ([candidate.stronger_noise_level] if candidate.stronger_noise_level is not None else [])
        figures["candidates"][candidate.name] = {
            "version": metadata.version(candidate.package),
            "settings": candidate.settings,
            "echo": [echo_phase(candidate, room, delay, echo_seconds) for delay in ROOM_DELAYS_MS],
            "double_talk": [double_talk_phase(candidate, room, delay, talk_seconds) for delay in ROOM_DELAYS_MS],
            "noise": [noise_phase(candidate, room, noise_seconds, level) for level in levels],
            "output_lag_ms": latency_phase(candidate, room),
            "install": install_size(candidate.package),
        }
    figures["cpu"] = cpu_phase(room, cpu_frames, cpu_repeats)
    chosen = choose(figures)
    trap = next(candidate for candidate in CANDIDATES if candidate.name == chosen)
    figures["trap_reference_60ms_late"] = {
        "candidate": chosen,
        "runs": [
            echo_phase(trap, room, delay, echo_seconds, Lateness(TRAP_LAG_FRAMES, int(from_s * 100)))
            for delay, from_s in ((20, 0.0), (20, TRAP_LATE_FROM_S), (60, 0.0))
        ],
    }
    figures["choice"] = {"candidate": chosen, "rule": choose.__doc__}
    return figures


def choose(figures: Figures) -> str:
    """The better candidate: the higher worst-case converged ERLE, unless it costs more than twice the CPU."""
    names = list(figures["candidates"])

    def worst_erle(name: str) -> float:
        return min(run["erle_converged_db"] for run in figures["candidates"][name]["echo"])

    best = max(names, key=worst_erle)
    other = next(name for name in names if name != best)
    cost = {name: figures["cpu"][name]["cpu_us_per_frame_median"] for name in names}
    if cost[best] > 2 * cost[other] and worst_erle(other) >= ERLE_TARGET_DB:
        return other
    return best


def verdict(figures: Figures) -> dict[str, bool]:
    echo = figures["candidates"][figures["choice"]["candidate"]]["echo"]
    passed = {
        "erle_converged": all(run["erle_converged_db"] >= ERLE_TARGET_DB for run in echo),
        "no_collapse": all(run["holds"] for run in echo),
    }
    passed["all"] = all(passed.values())
    return passed


def summary_line(figures: Figures) -> str:
    parts = []
    for name, data in figures["candidates"].items():
        erles = "/".join(f"{run['erle_converged_db']:.0f}" for run in data["echo"])
        talk = "/".join(f"{run['near_level_loss_db']:.1f}" for run in data["double_talk"])
        kept = "/".join(f"{run['correlation_with_clean_near']:.2f}" for run in data["double_talk"])
        noise = "/".join(f"{run['snr_gain_db']:+.1f}" for run in data["noise"])
        cpu = figures["cpu"][name]["core_percent"]
        parts.append(
            f"{name}: ERLE {erles} dB (20/60 ms), double-talk loss {talk} dB (r {kept}), SNR gain {noise} dB, "
            f"{cpu:.2f} % of a core, {data['install']['with_dependencies_mb']:.0f} MB"
        )
    trap = figures["trap_reference_60ms_late"]
    trap_text = "/".join(f"{run['erle_last_10s_db']:.0f}" for run in trap["runs"])
    return (
        f"aec: {'; '.join(parts)}; trap (reference 60 ms late, {trap['candidate']}; room 20 ms from 0 s, "
        f"from {TRAP_LATE_FROM_S:.0f} s, room 60 ms from 0 s): last 10 s ERLE {trap_text} dB; "
        f"chosen {figures['choice']['candidate']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases: a smoke test")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--seed", type=int, default=15, help="of the room responses and the street noise")
    args = parser.parse_args(argv)
    check_installed()

    async def run(workdir: Path) -> Figures:
        return measure(workdir, args.quick, args.seed)  # nothing to await: the APIs are synchronous

    return run_and_report(
        args,
        run,
        targets={"erle_converged_db": ERLE_TARGET_DB, "erle_floor_after_convergence_db": HOLD_FLOOR_DB},
        environment=lambda: {**host_environment(), "load_average": os.getloadavg()},
        verdict=verdict,
        summary_line=summary_line,
    )


if __name__ == "__main__":
    sys.exit(main())
