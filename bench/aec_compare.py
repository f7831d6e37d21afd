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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn, Protocol

from harness import Figures, host_environment, run_and_report
from room_sound import (
    ECHO_DB,
    FAR_VOICE,
    FRAME,
    NEAR_RMS_DBFS,
    NEAR_VOICE,
    NOISE_SNR_DB,
    RATE,
    REVERB_RT60_MS,
    SPEAKER_RMS_DBFS,
    active_mask,
    db,
    erle_per_second,
    far_speech,
    lag_by_correlation,
    loop_to,
    near_speech,
    pause_mask,
    room_response,
    snr,
    street_at,
    voice_kept,
)

INSTALL_HINT = f"{sys.executable} -m pip install 'livekit==1.2.1' 'pywebrtc-audio==0.2.0' numpy scipy"


def missing(package: str) -> NoReturn:
    """One clear line, not a traceback; exit 2 as on any error."""
    print(f"bench failed: {package} is not installed: {INSTALL_HINT}", file=sys.stderr)
    sys.exit(2)


try:
    import numpy as np
    from scipy.signal import fftconvolve
except ImportError as error:
    missing(str(error.name))

# the voices, the room, the street and their levels: bench/room_sound.py, shared with the JACK rig
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

    def __init__(self, seed: int) -> None:
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.far = far_speech()
        self.near = near_speech()
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
        noise = street_at(samples, self.seed + 1) if noisy else np.zeros(samples)  # the same street for everyone
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


def echo_phase(
    candidate: Candidate, room: Room, delay_ms: int, seconds: float, late: Lateness | None = None
) -> dict[str, Any]:
    """Far-end speech only. Converged: one energy ratio from 2 s to the end; it holds if no counted
    second after 2 s falls below HOLD_FLOOR_DB and the last 10 s still reach the target."""
    scene = room.scene(seconds, delay_ms, near_from_s=None, noisy=False)
    out = run_through(candidate.make(None), scene, late)
    series = erle_per_second(scene.echo, out)
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


def double_talk_phase(candidate: Candidate, room: Room, delay_ms: int, seconds: float) -> dict[str, Any]:
    """The far end talks throughout; the near end joins after 10 s, once the canceller has converged."""
    near_from = 10.0
    scene = room.scene(seconds, delay_ms, near_from_s=near_from, noisy=False)
    out = run_through(candidate.make(None), scene)
    talking = active_mask(scene.near)
    talking[: int(near_from * RATE)] = False
    both = talking & active_mask(scene.echo + 1e-9)
    lag = lag_by_correlation(np.where(talking, scene.near, 0.0), np.where(talking, out, 0.0), RATE // 50)
    loss, correlation = voice_kept(scene.near, np.roll(out, -lag), talking)
    clean = scene.near[talking]
    return {
        "room_delay_ms": delay_ms,
        "near_level_loss_db": round(loss, 1),
        "near_level_loss_both_active_db": round(db(np.sum(scene.near[both] ** 2) / np.sum(out[both] ** 2)), 1),
        "correlation_with_clean_near": round(correlation, 3),
        "correlation_at_lag_0": round(voice_kept(scene.near, out, talking)[1], 3),
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
        lags[name] = round(lag_by_correlation(clean, np.where(talking, out, 0.0), RATE // 20) * 1000 / RATE, 2)
    return lags


def noise_phase(candidate: Candidate, room: Room, seconds: float, level: int | None) -> dict[str, Any]:
    """The near-end voice in street noise, the speaker silent; the first 3 s let the suppressor learn."""
    scene = room.scene(seconds, 20, near_from_s=0.0, noisy=True, far=False)
    out = run_through(candidate.make(level), scene)
    settle = int(3.0 * RATE)
    speech = active_mask(scene.near)
    pause = pause_mask(scene.near)
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


def measure(quick: bool, seed: int) -> Figures:
    echo_seconds, talk_seconds, noise_seconds = (20.0, 20.0, 15.0) if quick else (64.0, 30.0, 30.0)
    cpu_frames, cpu_repeats = (500, 3) if quick else (3000, 9)
    room = Room(seed)
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
            "reverb_rt60_ms": REVERB_RT60_MS,
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

    async def run(workdir: Path) -> Figures:  # the voices are made in memory: no files
        return measure(args.quick, args.seed)  # nothing to await: the APIs are synchronous

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
