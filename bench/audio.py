"""Sound-card benchmark: mouth-to-ear latency door microphone -> hub -> desk speaker, and one unit's CPU and
RSS, each with the units' audio processing (echo cancellation, noise suppression, gain, high-pass) on and off.

Run from the repository root::

    .venv/bin/python bench/audio.py            # full run (about 200 s)
    .venv/bin/python bench/audio.py --quick    # smoke test (about 80 s)
    .venv/bin/python bench/audio.py --json-out result.json

What it does, all on 127.0.0.1, with jackd (Debian package jackd2) as the sound card:

1. starts jackd on its dummy backend (48 kHz, 960-sample periods: a sound card on the wall clock,
   without hardware) and points PortAudio at it (``JACK_DEFAULT_SERVER``, inherited by every
   process started meanwhile); a JACK probe client plays into PortAudio's capture ports and records
   its playback ports (:mod:`jack_probe`, shared with the audio tests). It creates a key and the
   call flows through the CLI, and starts a fresh hub process (``intercom hub --ice-host 127.0.0.1``)
   for each phase;
2. latency: a door whose microphone and speaker are ``CallAudio.sound_card(microphone=<JACK input>,
   speaker=<JACK output>)`` calls a desk whose speaker is ``CallAudio.sound_card(speaker=<JACK
   output>)`` (its own microphone left out: silence, so that the door's capture is PortAudio's only
   input port, and the door's speaker adds nothing to what the probe hears), both SDK clients in
   this process with the card's policy plus loopback host candidates. Each round makes one call
   with the processing on and one with it off (which goes first swaps every round), each mode with
   its own pair of ``CallAudio`` kept for the whole run (a unit's processor lives as long as it).
   Three more calls a round, with the processing on: the desk's playout at one frame
   (``INTERCOM_AUDIO_PLAYOUT_MS=20``) instead of two, and both playouts with jitter (each frame
   held back 0-20 ms at random before the desk's speaker, in order, as a Wi-Fi LAN would), for
   their underruns as much as their delay.
   The probe plays a click into the door's capture port and times its onset on the desk's
   playback port, to the sample, for click after click in call after call. Each click is also
   timed where it leaves the door's microphone track for the encoder and where it comes out of the
   desk's receiver into the speaker, which splits the delay into capture, network (encode, hub,
   decode) and playback legs.
   Interleaved with those calls, in the same run: the same path without sound devices, as
   ``bench/calls.py`` measures it through the hub (a ``ClickSource`` to a ``RecordingSink``, the
   SDK's default policy), so that what the devices add is visible;
3. unit: two desks, with the sound card as microphone and speaker, one with the processing on and
   one with it off, each in a process of its own (``python -c`` importing only the SDK), answer
   calls from doors in this process that send a tone, while the probe plays a tone into the desk's
   microphone; over 5 s windows of those calls (on, off, off, on), each desk's CPU time (per
   thread too) against wall time, how late its event loop wakes, the processing's own CPU per
   10 ms frame (``ProcessingStats``), and its RSS, next to the CPU of the hub, of jackd, of this
   process and of everything else;
4. echo: a door with the sound card as microphone and speaker stands in a room (``jack_room``:
   its speaker port convolved with a room response, 20 ms bulk delay, 9 dB down, fed to its
   microphone port) and calls a desk here that sends far-end speech (espeak-ng, ``room_sound``):
   far end alone, then the near voice too. What the door sends is kept frame by frame: ERLE (the
   echo entering the microphone over what is sent) from 2 s of far-end speech, and in double
   talk the near voice's level loss and its correlation with what is sent, processing on and off
   in turn (a simpler version of the rig tests: the bench reports, the tests assert).

Call-progress tones are off throughout (``tones=False``): they sound only before the answer, on
the unit's own speaker, and their sinks would add playback ports for the probe to tell apart.

It prints one JSON object with every figure, the targets and pass/fail, then a one-line
summary. Exit status: 0 when every target is met, 1 when one is missed, 2 on error or timeout.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import sounddevice as sd
from aiortc.mediastreams import MediaStreamTrack
from calls import (
    CLICK_INTERVAL_S,
    DESK_HZ,
    DOOR_HZ,
    ENDPOINT_POLICY,
    HUB_ARGS,
    HUB_LAUNCH,
    LOOPBACK,
    PHASE_TIMEOUT,
    STEP_TIMEOUT,
    ClickRun,
    Endpoint,
    create_flows,
    destroy_all,
    hang_up,
    hub_click_call,
    place_call,
    still_up,
    wait_for,
)
from harness import (
    HOST,
    cpu_seconds,
    create_key,
    fresh_hub,
    host_environment,
    machine_busy_seconds,
    package_versions,
    parse_args,
    percentile,
    run_and_report,
    wait_phase,
)
from jack_probe import PERIOD, RATE, SILENCE, JackProbe, JackServer, running_jack_server
from jack_room import Components, JackRoom
from room_sound import (
    ECHO_DB,
    NEAR_RMS_DBFS,
    SPEAKER_RMS_DBFS,
    active_mask,
    db,
    erle_per_second,
    far_speech,
    lag_by_correlation,
    near_speech,
    room_response,
    voice_kept,
)

from intercom.audio.devices import list_devices
from intercom.audio.processing import ALL_PROCESSING, NO_PROCESSING, ProcessingSettings
from intercom.audio.samples import MIN_PLAYOUT_MS, PLAYOUT_MS
from intercom.auth import AccessKey, IncomingCapability, mint_token
from intercom.media import ClickSource, MediaPolicy, RecordingSink, ToneSource
from intercom.media.tones import SoundFile, WavTrack
from intercom.media.tracks import FRAME_SAMPLES
from intercom.sdk import CallAudio, CallStatus

# Issue 15's targets, with the processing on
TARGET_MOUTH_TO_EAR_P50_MS = 60.0
TARGET_UNIT_CPU_PCT = 8.0  # of one core, the desk unit in a call
TARGET_UNIT_RSS_MB = 110.0


@dataclass(frozen=True)
class SoundMode:
    """How a unit's calls run: its processing, its speaker's playout, and jitter added to what its
    speaker receives (a network's, simulated: the hub and the units share 127.0.0.1)."""

    processing: ProcessingSettings
    playout_ms: float = PLAYOUT_MS
    jitter_ms: float = 0.0


JITTER_MS = 20.0  # each frame reaches the desk's speaker 0-20 ms late, at random (in order): a Wi-Fi LAN
PROCESSING = {"on": SoundMode(ALL_PROCESSING), "off": SoundMode(NO_PROCESSING)}
MODES = tuple(PROCESSING)
# The latency phase's calls, each round: the processing on and off, and with processing on the
# playout of one frame (INTERCOM_AUDIO_PLAYOUT_MS=20) against the default, with and without jitter.
LATENCY_MODES = {
    **PROCESSING,
    "on_playout_20ms": SoundMode(ALL_PROCESSING, MIN_PLAYOUT_MS),
    "on_jitter": SoundMode(ALL_PROCESSING, jitter_ms=JITTER_MS),
    "on_playout_20ms_jitter": SoundMode(ALL_PROCESSING, MIN_PLAYOUT_MS, JITTER_MS),
}
LATENCY_TIMEOUT = 300.0  # the latency phase: 5 sound calls and a network-only one per round
RUN_TIMEOUT = 600.0

# CallAudio.sound_card's own policy (jitter_frames=0: the speaker's ring is the playout buffer),
# plus 127.0.0.1 host candidates.
SOUND_POLICY = MediaPolicy(host_addresses=LOOPBACK, jitter_frames=0)

CLICK_LOUD = 0.1  # of full scale: the probe's onset threshold, and a loud frame in the legs' timing
CLICK_TIMEOUT_S = 0.5  # a click not heard within this is missed (about 7 times the expected delay)
CLICK_GAP_S = 0.15  # after a click is heard, before the next: its tail dies away
SOUND_SETTLE_S = 1.0  # after the probe is wired to a call's ports: the speaker's ring primed, DTLS done
TIMING_SLACK_S = 0.002  # a position's time on the monotonic clock is known within about 1 ms
DESK_START_TIMEOUT = 30.0  # the unit process imports the SDK, aiortc and PortAudio, then registers
UNIT_SETTLE_S = 1.0
JITTER_SEED = 7
ROOM_DELAY_MS = 20.0  # the room's bulk delay; JACK adds a period where the loop closes
ROOM_SEED = 15  # of the room's response, as in bench/aec_compare.py's first runs
THREAD_SHOWN_PCT = 0.1  # threads of the unit using less than this share of a core are summed up
TONE_TOLERANCE_HZ = 15.0
# What the unit's Python threads do, by name (prefix). Opus is encoded and decoded on the event
# loop (intercom/media/opus.py); aiortc's decoder thread and the default executor only show up
# if a codec other than Opus is negotiated.
THREAD_ROLES = {
    "portaudio": "opening, closing and rescanning sound devices (intercom/audio/portaudio.py)",
    "audio-decoder": "aiortc's receiver: decoding a codec other than Opus",
    "asyncio_": "the loop's default executor: aiortc encoding a codec other than Opus",
}


@dataclass
class Settings:
    """How much each phase does: the full run, or a quick smoke test."""

    rounds: int  # two sound calls (processing on and off) and one network-only call each
    clicks_per_call: int
    network_seconds: float  # the counted part of each network-only call
    unit_rounds: int  # a call to each desk unit (processing on and off)
    unit_seconds: float  # the counted part of each
    idle_seconds: float
    echo_rounds: int  # a call in the room with processing on and one with it off
    echo_far_seconds: float  # far-end speech alone
    echo_talk_seconds: float  # then both talking

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        return cls(2, 5, 1.5, 1, 3.0, 1.0, 1, 5.0, 5.0) if quick else cls(4, 10, 3.0, 2, 5.0, 2.0, 2, 8.0, 8.0)


def turns(index: int, modes: tuple[str, ...] = MODES) -> tuple[str, ...]:
    """The modes in round ``index``'s order: on, off, then off, on, so that a drift of the machine's
    speed within a pair of rounds hits all alike."""
    return modes if index % 2 == 0 else modes[::-1]


# --- timing frames on their way ----------------------------------------------------------------


def is_loud(frame: object) -> bool:
    if not isinstance(frame, av.AudioFrame):  # an Opus packet passed through: not decoded here
        return False
    samples = frame.to_ndarray().astype(np.int32)
    return int(np.abs(samples).max(initial=0)) >= CLICK_LOUD * 32768


class LoudFrames(MediaStreamTrack):
    """Passes ``track`` on unchanged, noting (``time.monotonic()``) each loud frame that goes through."""

    kind = "audio"

    def __init__(self, track: MediaStreamTrack, times: list[float]) -> None:
        super().__init__()
        self.track = track
        self.times = times

    async def recv(self) -> Any:
        frame = await self.track.recv()
        if is_loud(frame):
            self.times.append(time.monotonic())
        return frame

    def stop(self) -> None:
        super().stop()
        self.track.stop()


def first_at_or_after(times: list[float], moment: float) -> float | None:
    index = bisect.bisect_left(times, moment)
    return times[index] if index < len(times) else None


# --- statistics --------------------------------------------------------------------------------


def summarise_ms(samples_s: list[float]) -> dict[str, float | int | None]:
    if not samples_s:
        return {"count": 0, "p50_ms": None, "p95_ms": None, "min_ms": None, "max_ms": None}
    values = sorted(sample * 1000 for sample in samples_s)
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 0.50), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
        "min_ms": round(values[0], 1),
        "max_ms": round(values[-1], 1),
    }


@dataclass
class SoundRun:
    """Mouth-to-ear delays over all sound calls, with each click's legs and each call's device counters."""

    latencies: list[float] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)  # the same delays on the graph's timeline
    per_call_p50_ms: list[float | None] = field(default_factory=list)
    legs: dict[str, list[float]] = field(
        default_factory=lambda: {"capture": [], "network": [], "playback": [], "capture_plus_playback": []}
    )
    untimed_legs: int = 0
    missed: int = 0
    speaker: list[dict[str, Any]] = field(default_factory=list)
    microphone: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        legs = {name: summarise_ms(values) for name, values in self.legs.items()}
        return {
            **summarise_ms(self.latencies),
            "missed_clicks": self.missed,
            "calls": len(self.per_call_p50_ms),
            "per_call_p50_ms": self.per_call_p50_ms,
            # The delay in whole JACK periods plus the rest: the probe clicks at a period's start, so the
            # rest is where in a played block the click's onset came out.
            "in_jack_periods": {
                "period_ms": PERIOD * 1000 / RATE,
                "whole_periods": dict(sorted(Counter(delay // PERIOD for delay in self.samples).items())),
                "rest_ms": summarise_ms([delay % PERIOD / RATE for delay in self.samples]),
            },
            "legs_p50_ms": {name: legs[name]["p50_ms"] for name in legs},
            "legs": {**legs, "clicks_not_timed": self.untimed_legs},
            "endpoint_jitter_frames": SOUND_POLICY.jitter_frames,
            "desk_speaker": {
                "device_latency_ms": max((s["device_latency_ms"] for s in self.speaker), default=None),
                "max_buffered_ms": max((s["max_buffered_ms"] for s in self.speaker), default=None),
                "underruns": sum(s["underruns"] for s in self.speaker),
                "overruns": sum(s["overruns"] for s in self.speaker),
                "blocks_played": sum(s["blocks_played"] for s in self.speaker),
            },
            "door_microphone": {
                "blocks_captured": sum(m["blocks_captured"] for m in self.microphone),
                "blocks_dropped": sum(m["blocks_dropped"] for m in self.microphone),
                "input_overflows": sum(m["input_overflows"] for m in self.microphone),
            },
            # the door's processor, over all its calls so far (it lives as long as the door's CallAudio)
            "door_processing": self.microphone[-1]["processing"] if self.microphone else None,
        }


# --- units in this process ---------------------------------------------------------------------


def jack_devices() -> tuple[str, str]:
    """The device ids of the JACK card's capture and playback, as ``intercom devices`` lists them."""
    devices = [device for device in list_devices() if "(JACK" in device.label]
    inputs = [device.deviceId for device in devices if device.kind == "audioinput"]
    outputs = [device.deviceId for device in devices if device.kind == "audiooutput"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise RuntimeError(f"expected one JACK input and one JACK output, found {devices}")
    return inputs[0], outputs[0]


def sound_endpoint(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with the sound card's policy instead of the SDK's default that :class:`Endpoint` gives."""
    endpoint.client.audio = replace(endpoint.client.audio, policy=SOUND_POLICY)
    return endpoint


# --- latency: clicks from the door's microphone to the desk's speaker ------------------------


class ModeCards:
    """A unit's sound card, one ``CallAudio`` per mode; :attr:`mode` picks the one the next call gets.
    Each is made once, so that each processor stays converged from call to call, as a unit's does."""

    def __init__(self, devices: tuple[str, str], modes: dict[str, SoundMode] = PROCESSING) -> None:
        microphone, speaker = devices
        self.modes = modes
        self.mode = next(iter(modes))
        self.cards = {
            name: CallAudio.sound_card(
                microphone=microphone,
                speaker=speaker,
                policy=SOUND_POLICY,
                tones=False,
                processing=mode.processing,
                playout_ms=mode.playout_ms,
            )
            for name, mode in modes.items()
        }

    def source(self) -> MediaStreamTrack:
        return self.cards[self.mode].source()

    def sink(self, track: MediaStreamTrack) -> Any:
        jitter_ms = self.modes[self.mode].jitter_ms
        return self.cards[self.mode].sink(Jittered(track, jitter_ms / 1000) if jitter_ms else track)


class Jittered(MediaStreamTrack):
    """Passes ``track`` on with each frame held back 0-``jitter_s`` at random past its nominal arrival
    (the first frame's, plus its pts), never before the frame ahead: a network with jitter."""

    kind = "audio"

    def __init__(self, track: MediaStreamTrack, jitter_s: float) -> None:
        super().__init__()
        self.track = track
        self.jitter_s = jitter_s
        self._random = np.random.default_rng(JITTER_SEED)
        self._first: tuple[float, int] | None = None
        self._due = 0.0

    async def recv(self) -> Any:
        frame = await self.track.recv()
        now = time.monotonic()
        if self._first is None:
            self._first = (now, frame.pts)
        nominal = self._first[0] + (frame.pts - self._first[1]) * float(frame.time_base)
        self._due = max(self._due, nominal + self._random.uniform(0.0, self.jitter_s))
        await asyncio.sleep(max(0.0, self._due - now))  # the simulated network's delay, not a wait for anything
        return frame

    def stop(self) -> None:
        super().stop()
        self.track.stop()


def silence() -> MediaStreamTrack:
    return ToneSource(DESK_HZ, amplitude=0.0)


def door_tone() -> MediaStreamTrack:
    return ToneSource(DOOR_HZ)


async def click(probe: JackProbe) -> tuple[int, int | None]:
    """One click into the door's capture: where it was played and where its onset was heard (None: missed)."""
    count = len(probe.clicks)
    probe.click()
    await probe.wait_until(lambda: len(probe.clicks) > count, STEP_TIMEOUT)
    sent = probe.clicks[-1]
    try:
        await probe.wait_until(lambda: probe.onset_after(sent, CLICK_LOUD) is not None, CLICK_TIMEOUT_S)
    except TimeoutError:
        return sent, None
    return sent, probe.onset_after(sent, CLICK_LOUD)


async def sound_click_call(
    door: Endpoint, desk: Endpoint, probe: JackProbe, timing: dict[str, list[float]], clicks: int, run: SoundRun
) -> None:
    placed = await place_call(door, desk)
    latencies: list[float] = []
    try:
        # One PortAudio client holds both units' streams: the door's capture is its only input port;
        # its output ports are both speakers, the door's playing the desk's silence, so the probe
        # hears them mixed, which is the desk's alone.
        probe.feed(await probe.wait_for_port(is_input=True, timeout=STEP_TIMEOUT))
        for port in await probe.wait_for_ports(2, is_input=False, timeout=STEP_TIMEOUT):
            probe.listen(port)
        await asyncio.sleep(SOUND_SETTLE_S)
        for _ in range(clicks):
            await probe.wait_until(lambda: probe.rms(0.1) < SILENCE, STEP_TIMEOUT)
            sent, heard = await click(probe)
            if heard is None:
                run.missed += 1
            else:
                latencies.append((heard - sent) / RATE)
                run.samples.append(heard - sent)
                add_legs(run, probe, timing, sent, heard)
            await asyncio.sleep(CLICK_GAP_S)
        speaker, microphone = placed.answered.sink, door.sources[-1]
        run.speaker.append(asdict(speaker.stats))  # type: ignore[union-attr]
        run.microphone.append(asdict(microphone.track.stats))  # type: ignore[attr-defined]
    finally:
        await hang_up(placed)
    await probe.wait_for_no_ports(STEP_TIMEOUT)  # all three devices closed with the call
    run.latencies += latencies
    run.per_call_p50_ms.append(summarise_ms(latencies)["p50_ms"])


def add_legs(run: SoundRun, probe: JackProbe, timing: dict[str, list[float]], sent: int, heard: int) -> None:
    """Split one click's delay where it was timed in Python: out of the door's microphone track (to the
    encoder), out of the desk's receiver (into the speaker's ring)."""
    played_at, heard_at = probe.monotonic_at(sent), probe.monotonic_at(heard)
    captured_at = first_at_or_after(timing["door"], played_at - TIMING_SLACK_S)
    received_at = first_at_or_after(timing["desk"], captured_at) if captured_at is not None else None
    if captured_at is None or received_at is None or received_at > heard_at + TIMING_SLACK_S:
        run.untimed_legs += 1
        return
    run.legs["capture"].append(captured_at - played_at)
    run.legs["network"].append(received_at - captured_at)
    run.legs["playback"].append(heard_at - received_at)
    run.legs["capture_plus_playback"].append(heard_at - received_at + captured_at - played_at)


def paired_rounds(on: list[float | None], off: list[float | None]) -> dict[str, object]:
    """Each round's processing-on call p50 over its processing-off one (the calls of a round ran back to
    back), and the median of those ratios and differences."""
    pairs = [(a, b) for a, b in zip(on, off, strict=True) if a is not None and b is not None]
    ratios = sorted(a / b for a, b in pairs)
    differences = sorted(a - b for a, b in pairs)
    return {
        "per_round_ratio": [round(a / b, 3) for a, b in pairs],
        "median_ratio": round(percentile(ratios, 0.5), 3) if ratios else None,
        "median_added_ms": round(percentile(differences, 0.5), 1) if differences else None,
    }


async def measure_latency(
    port: int, key: AccessKey, probe: JackProbe, devices: tuple[str, str], settings: Settings
) -> dict[str, object]:
    """Sound calls with processing on and off and network-only calls in turn, round after round, so that
    all three see the same machine."""
    timing: dict[str, list[float]] = {"door": [], "desk": []}
    # The door has its speaker too, as a real door does: its canceller gets a reference (the desk sends
    # silence here), which is what sets the processing's delay (15 ms with one, 11 ms without, offline).
    door_card, desk_card = ModeCards(devices, LATENCY_MODES), ModeCards(devices, LATENCY_MODES)

    def door_microphone() -> MediaStreamTrack:
        return LoudFrames(door_card.source(), timing["door"])

    def desk_speaker(track: MediaStreamTrack) -> Any:
        return desk_card.sink(LoudFrames(track, timing["desk"]))

    door = sound_endpoint(Endpoint("door", port, key, door_microphone, door_card.sink, outgoing="door"))
    desk = sound_endpoint(Endpoint("desk", port, key, silence, desk_speaker))
    click_desk = Endpoint("clickdesk", port, key, lambda: ClickSource(CLICK_INTERVAL_S), RecordingSink)
    click_door = Endpoint(
        "clickdoor", port, key, lambda: ClickSource(CLICK_INTERVAL_S), RecordingSink, outgoing="clicks"
    )
    endpoints = [door, desk, click_door, click_desk]
    sound, network = {mode: SoundRun() for mode in LATENCY_MODES}, ClickRun()
    try:
        await asyncio.gather(*(endpoint.connect() for endpoint in endpoints))
        for index in range(settings.rounds):
            for mode in turns(index, tuple(LATENCY_MODES)):
                door_card.mode = desk_card.mode = mode
                await sound_click_call(door, desk, probe, timing, settings.clicks_per_call, sound[mode])
            await hub_click_call(click_door, click_desk, settings.network_seconds, network)
    finally:
        await destroy_all(endpoints)
    mouth_to_ear = {
        f"processing_{mode}": {**sound[mode].summary(), **asdict(LATENCY_MODES[mode])} for mode in LATENCY_MODES
    }
    network_only = {
        **summarise_ms(network.forward),
        "desk_to_door_p50_ms": summarise_ms(network.backward)["p50_ms"],
        "missed_clicks": network.missed,
        "calls": network.calls,
        "counted_seconds_per_call": settings.network_seconds,
        "click_interval_s": CLICK_INTERVAL_S,
        "endpoint_jitter_frames": ENDPOINT_POLICY.jitter_frames,
    }
    on_p50, off_p50 = (mouth_to_ear[f"processing_{mode}"]["p50_ms"] for mode in MODES)
    network_p50 = network_only["p50_ms"]
    return {
        "rounds": settings.rounds,
        "clicks_per_call": settings.clicks_per_call,
        "mouth_to_ear": mouth_to_ear,
        "processing_on_against_off": {
            "p50_ratio": round(on_p50 / off_p50, 3) if on_p50 is not None and off_p50 else None,
            "p50_added_ms": round(on_p50 - off_p50, 1) if on_p50 is not None and off_p50 is not None else None,
            **paired_rounds(sound["on"].per_call_p50_ms, sound["off"].per_call_p50_ms),
        },
        "network_only": network_only,
        # What the devices add over the network-only path as the SDK's default policy runs it (with its
        # one jitter frame, which the sound card's policy drops); the legs split the sound path itself.
        "device_share_p50_ms": (
            round(off_p50 - network_p50, 1) if off_p50 is not None and network_p50 is not None else None
        ),
    }


# --- echo: the door in a room, far-end speech, then double talk ---------------------------------


class SentFrames(MediaStreamTrack):
    """Passes ``track`` on unchanged, keeping each frame's samples by its pts and when the first went through."""

    kind = "audio"

    def __init__(self, track: MediaStreamTrack) -> None:
        super().__init__()
        self.track = track
        self.frames: dict[int, np.ndarray] = {}
        self.first_at: float | None = None

    async def recv(self) -> Any:
        frame = await self.track.recv()
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.frames[frame.pts] = frame.to_ndarray().reshape(-1)
        return frame

    def stop(self) -> None:
        super().stop()
        self.track.stop()

    def signal(self) -> np.ndarray:
        """Everything sent, as JACK floats, frames placed by pts (a dropped block leaves silence)."""
        first = min(self.frames)
        out = np.zeros(max(self.frames) + FRAME_SAMPLES - first, dtype=np.float32)
        for pts, samples in self.frames.items():
            out[pts - first : pts - first + len(samples)] = samples / 32768.0
        return out


@dataclass
class EchoCall:
    """What one call of the echo phase measured."""

    erle_from_2s_db: float
    erle_per_second_db: list[float | None]  # None: a second with too little echo to count
    double_talk_loss_db: float  # the near voice's level over the output's, on its active frames
    double_talk_loss_both_talking_db: float  # the same where the echo is active too
    near_correlation: float  # of the output with the clean near voice, shifted by the processing's delay
    near_delay_ms: float


def power(samples: np.ndarray) -> float:
    return float(np.mean(np.square(samples, dtype=np.float64))) if len(samples) else 0.0


async def echo_call(door: Endpoint, desk: Endpoint, room: JackRoom, probe: JackProbe, settings: Settings) -> EchoCall:
    """Far-end speech into the room for ``echo_far_seconds``, then the near voice too for ``echo_talk_seconds``."""
    placed = await place_call(door, desk)
    try:
        room.stand_between(
            await probe.wait_for_port(is_input=False, timeout=STEP_TIMEOUT),
            await probe.wait_for_port(is_input=True, timeout=STEP_TIMEOUT),
        )
        start = room.position
        talk = start + round(settings.echo_far_seconds * RATE)
        end = talk + round(settings.echo_talk_seconds * RATE)
        await room.wait_until(lambda: room.position >= talk, STEP_TIMEOUT + settings.echo_far_seconds)
        room.play_near(near_speech())
        await room.wait_until(lambda: room.position >= end + 2 * PERIOD, STEP_TIMEOUT + settings.echo_talk_seconds)
        room.quiet()
        sent = door.sources[-1]
        assert isinstance(sent, SentFrames) and sent.first_at is not None
        components = room.components(start, end)
    finally:
        await hang_up(placed)
    await probe.wait_for_no_ports(STEP_TIMEOUT)
    # The first frame sent was captured in the cycle it went through in (within a period): the output
    # on the room's timeline, from ``start``.
    first = round((sent.first_at - room.monotonic_at(0)) * RATE) // PERIOD * PERIOD
    out = np.zeros(end - start, dtype=np.float32)
    signal = sent.signal()[max(0, start - first) :]
    out[max(0, first - start) :][: len(signal)] = signal[: len(out) - max(0, first - start)]
    return measure_echo(components, out, talk - start)


def measure_echo(components: Components, out: np.ndarray, talk: int) -> EchoCall:
    """ERLE on the far-end-only part (from 2 s), double-talk figures on the rest."""
    echo, near = components.echo, components.near
    per_second = erle_per_second(echo[:talk], out[:talk])[2:]
    erle = db(power(echo[2 * RATE : talk]) / max(power(out[2 * RATE : talk]), 1e-20))
    # The near voice comes out late by the processing's own delay (and the graph's): found by correlation.
    clean, output = near[talk:], out[talk:]
    lag = lag_by_correlation(clean, output, max_lag=round(0.1 * RATE), min_lag=-round(0.04 * RATE))
    shifted = np.roll(output, -lag)[: len(clean) - max(lag, 0)]
    clean = clean[: len(shifted)]
    active = active_mask(clean)
    loss, correlation = voice_kept(clean, shifted, active)
    loss_both, _ = voice_kept(clean, shifted, active & active_mask(echo[talk:][: len(clean)]))
    return EchoCall(
        erle_from_2s_db=round(erle, 1),
        erle_per_second_db=per_second,
        double_talk_loss_db=round(loss, 1),
        double_talk_loss_both_talking_db=round(loss_both, 1),
        near_correlation=round(correlation, 3),
        near_delay_ms=round(lag * 1000 / RATE, 1),
    )


async def measure_echo_phase(
    port: int, key: AccessKey, server: JackServer, probe: JackProbe, devices: tuple[str, str], settings: Settings
) -> dict[str, object]:
    """The door in a room (far-end speech echoed back into its microphone, then a near voice too), with
    the processing on and off in turn; what the door sends is kept frame by frame."""
    far = await asyncio.to_thread(far_speech)
    await asyncio.to_thread(near_speech)  # espeak-ng, once per process
    far_pcm = SoundFile("far-end speech", np.round(far * 32767).astype(np.int16))
    card = ModeCards(devices)
    door = sound_endpoint(
        Endpoint("echodoor", port, key, lambda: SentFrames(card.source()), card.sink, outgoing="echo")
    )
    desk = sound_endpoint(Endpoint("echodesk", port, key, lambda: WavTrack(far_pcm), RecordingSink))
    response = room_response(ROOM_DELAY_MS, np.random.default_rng(ROOM_SEED))
    keep = settings.echo_far_seconds + settings.echo_talk_seconds + 2
    room = JackRoom(server, asyncio.get_running_loop(), response, keep_seconds=keep)
    calls: dict[str, list[EchoCall]] = {mode: [] for mode in MODES}
    try:
        await asyncio.gather(door.connect(), desk.connect())
        for index in range(settings.echo_rounds):
            for mode in turns(index):
                card.mode = mode
                calls[mode].append(await echo_call(door, desk, room, probe, settings))
    finally:
        await destroy_all([door, desk])
        await room.close()
    return {
        "room": {
            "delay_ms": ROOM_DELAY_MS,
            "echo_db": ECHO_DB,
            "seed": ROOM_SEED,
            "far_speech_dbfs": SPEAKER_RMS_DBFS,
            "near_speech_dbfs": NEAR_RMS_DBFS,
            "far_only_seconds": settings.echo_far_seconds,
            "double_talk_seconds": settings.echo_talk_seconds,
        },
        **{f"processing_{mode}": echo_summary(calls[mode]) for mode in MODES},
    }


def echo_summary(calls: list[EchoCall]) -> dict[str, object]:
    """The calls of one mode: each call's figures, and the medians over them (the first call's ERLE
    apart: only there does the canceller start from nothing)."""

    def median(name: str) -> float:
        return percentile(sorted(getattr(call, name) for call in calls), 0.5)

    return {
        "first_call_erle_from_2s_db": calls[0].erle_from_2s_db,
        "erle_from_2s_db_median": median("erle_from_2s_db"),
        "double_talk_loss_db_median": median("double_talk_loss_db"),
        "double_talk_loss_both_talking_db_median": median("double_talk_loss_both_talking_db"),
        "near_correlation_median": median("near_correlation"),
        "calls": [asdict(call) for call in calls],
    }


# --- unit: one desk in a process of its own ----------------------------------------------------

# A desk unit as an app would write it: the SDK with the sound card as microphone and speaker,
# answering every call, with processing on or off. Arguments: hub address, microphone id, speaker id,
# ``on`` or ``off``; on stdin, the token (out of the process list), then commands: ``stats`` prints
# the devices' counters, the Python threads and how late the event loop woke from each 20 ms sleep
# since the last command, as JSON; ``hangup`` prints them too and hangs up; ``stop`` prints them and
# exits (PortAudio terminates at exit, while jackd still runs).
DESK_UNIT = """
import asyncio
import json
import sys
import threading
import time
from dataclasses import asdict, replace

from intercom.audio.processing import ALL_PROCESSING, NO_PROCESSING
from intercom.media import MediaPolicy
from intercom.sdk import CallAudio, Client

LAG_TICK_S = 0.02


async def sample_lag(lags):
    while True:
        before = time.monotonic()
        await asyncio.sleep(LAG_TICK_S)
        lags.append(time.monotonic() - before - LAG_TICK_S)


async def answer(offers, calls):
    while True:
        calls.append((await offers.get()).accept())


def report(calls, microphones, lags):
    call = calls[-1] if calls else None
    stats = {
        "status": str(call.status) if call is not None else None,
        "speaker": asdict(call.sink.stats) if call is not None and call.sink is not None else None,
        "microphone": asdict(microphones[-1].stats) if microphones else None,
        "python_threads": {thread.native_id: thread.name for thread in threading.enumerate()},
        "loop_lag_s": list(lags),
    }
    lags.clear()
    print(json.dumps(stats), flush=True)
    return call


async def main(host, microphone, speaker, processing):
    commands = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(commands)
    await asyncio.get_running_loop().connect_read_pipe(lambda: protocol, sys.stdin)
    token = (await commands.readline()).decode().strip()
    policy = MediaPolicy(host_addresses=("127.0.0.1",), jitter_frames=0)
    steps = ALL_PROCESSING if processing == "on" else NO_PROCESSING
    card = CallAudio.sound_card(microphone=microphone, speaker=speaker, policy=policy, tones=False, processing=steps)
    microphones = []

    def source():
        microphones.append(card.source())
        return microphones[-1]

    audio = replace(card, source=source)
    client = Client(host=host, refresh_token=lambda: token, secure=False, audio=audio)
    offers, calls, lags = asyncio.Queue(), [], []
    client.on("incoming", offers.put_nowait)
    await client.setup(jwt=token)
    tasks = [asyncio.create_task(answer(offers, calls)), asyncio.create_task(sample_lag(lags))]
    print("ready", flush=True)
    while (command := (await commands.readline()).strip()) in (b"stats", b"hangup"):
        call = report(calls, microphones, lags)
        if command == b"hangup" and call is not None:
            await call.disconnect()
    report(calls, microphones, lags)
    for task in tasks:
        task.cancel()
    await client.destroy()


asyncio.run(main(*sys.argv[1:]))
"""


@contextlib.asynccontextmanager
async def desk_unit(
    port: int, token: str, devices: tuple[str, str], mode: str, workdir: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The desk unit's process, registered with the hub; killed if it has not exited by the end."""
    argv = [sys.executable, "-c", DESK_UNIT, f"{HOST}:{port}", *devices, mode]
    log_path = workdir / f"desk-unit-{mode}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(f"{token}\n".encode())
            async with asyncio.timeout(DESK_START_TIMEOUT):
                line = await process.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"the desk unit did not start: {line!r}")
            yield process
        except BaseException:
            print(f"--- desk unit log ({mode}) ---\n{log_path.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            raise
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def desk_command(process: asyncio.subprocess.Process, command: str) -> dict[str, Any]:
    """``stats``, ``hangup`` or ``stop``: the unit's devices' counters, Python threads and loop lag;
    ``stop`` waits for its exit."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{command}\n".encode())
    async with asyncio.timeout(STEP_TIMEOUT):
        stats = json.loads(await process.stdout.readline())
        if command == "stop":
            await process.wait()
            if process.returncode != 0:
                raise RuntimeError(f"the desk unit exited with status {process.returncode}")
    return stats


def thread_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid``."""
    threads: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):  # a thread that ended meanwhile
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            threads[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return threads


def memory_mb(pid: int) -> dict[str, float]:
    """RSS and its parts (/proc status), and how much of it is the JACK server's shared memory.

    Every JACK client maps jackd's engine segment (``/dev/shm/jack-*``, ~100 MB, all resident): it
    belongs to the test sound card, shared by all its clients, and a unit on ALSA has none of it.
    """
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            fields[name] = int(value.split()[0]) / 1024
    jack_kb, in_jack = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if (
            "-" in head[0] and len(head) >= 5 and ":" in head[3]
        ):  # a mapping's first line: range perms offset dev inode [path]
            in_jack = len(head) >= 6 and head[5].startswith("/dev/shm/jack")
        elif in_jack and head[0] == "Rss:":
            jack_kb += int(head[1])
    return {
        "rss_mb": round(fields["VmRSS"], 1),
        "rss_without_jack_shm_mb": round(fields["VmRSS"] - jack_kb / 1024, 1),
        "jack_shm_mb": round(jack_kb / 1024, 1),
        "anon_mb": round(fields["RssAnon"], 1),
        "file_mb": round(fields["RssFile"], 1),
        "shmem_mb": round(fields["RssShmem"], 1),
        "peak_rss_mb": round(fields["VmHWM"], 1),
    }


def hears(frequency: float | None, expected: float) -> bool:
    return frequency is not None and abs(frequency - expected) <= TONE_TOLERANCE_HZ


@dataclass
class UnitWindow:
    """One counted stretch of a call to a desk unit: its CPU (per thread too), the others', its memory."""

    elapsed: float
    desk_seconds: float
    threads: dict[int, float]  # CPU seconds per thread id during the window
    others: dict[str, float]  # CPU seconds of the hub, jackd and this process
    busy_seconds: float  # the whole machine's
    memory: dict[str, float]
    flowing: bool
    before: dict[str, Any]  # the unit's counters at the start and the end
    after: dict[str, Any]


async def unit_window(
    door: Endpoint, process: asyncio.subprocess.Process, hub_pid: int, server: JackServer, probe: JackProbe,
    seconds: float,
) -> UnitWindow:  # fmt: skip
    """A door here calls the desk unit's process; its CPU and RSS while the call carries sound both ways."""
    pid = process.pid
    call = door.client.start_call()
    await wait_for(lambda: still_up(call) and call.sink is not None, "the desk unit to answer")
    probe.play(DESK_HZ)  # someone speaking at the desk
    probe.feed(await probe.wait_for_port(is_input=True, timeout=STEP_TIMEOUT))
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP_TIMEOUT))
    sink = call.sink
    assert isinstance(sink, RecordingSink)

    def flowing() -> bool:
        return hears(probe.dominant_frequency(0.3), DOOR_HZ) and hears(sink.dominant_frequency(0.3), DESK_HZ)

    await wait_for(flowing, "the door's tone at the desk's speaker and the desk's at the door")
    await asyncio.sleep(UNIT_SETTLE_S)

    before = await desk_command(process, "stats")
    threads_before, busy_before = thread_seconds(pid), machine_busy_seconds()
    others_before = {name: cpu_seconds(other) for name, other in others(hub_pid, server)}
    desk_before, started = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    desk_after, elapsed = cpu_seconds(pid), time.monotonic() - started
    others_after = {name: cpu_seconds(other) for name, other in others(hub_pid, server)}
    threads_after, busy_after = thread_seconds(pid), machine_busy_seconds()
    memory = memory_mb(pid)
    still_flowing = flowing() and call.status is CallStatus.CONFIRMED

    probe.silence()
    after = await desk_command(process, "hangup")
    await wait_for(lambda: call.status is CallStatus.ENDED, "the door to see the desk hang up")
    await probe.wait_for_no_ports(STEP_TIMEOUT)
    return UnitWindow(
        elapsed=elapsed,
        desk_seconds=desk_after - desk_before,
        threads={tid: seconds - threads_before.get(tid, 0.0) for tid, seconds in threads_after.items()},
        others={name: others_after[name] - others_before[name] for name in others_before},
        busy_seconds=busy_after - busy_before,
        memory=memory,
        flowing=still_flowing,
        before=before,
        after=after,
    )


async def measure_unit(
    port: int, hub_pid: int, key: AccessKey, server: JackServer, probe: JackProbe, devices: tuple[str, str],
    settings: Settings, workdir: Path,
) -> dict[str, object]:  # fmt: skip
    """A desk unit with processing on and one with it off, each a process of its own, both registered;
    a door here calls them in turn (on, off, then off, on), so that both see the same machine."""
    doors = {
        mode: Endpoint(f"cpudoor{mode}", port, key, door_tone, RecordingSink, outgoing=f"cpu{mode}") for mode in MODES
    }
    windows: dict[str, list[UnitWindow]] = {mode: [] for mode in MODES}
    await asyncio.gather(*(door.connect() for door in doors.values()))
    try:
        async with contextlib.AsyncExitStack() as stack:
            processes = {}
            for mode in MODES:
                token = mint_token(key, [IncomingCapability(f"cpudesk{mode}")], ttl=3600)
                processes[mode] = await stack.enter_async_context(desk_unit(port, token, devices, mode, workdir))
            idle_cpu = {mode: cpu_seconds(process.pid) for mode, process in processes.items()}
            idle_start = time.monotonic()
            await asyncio.sleep(settings.idle_seconds)
            idle = {
                mode: {
                    "cpu_pct_of_core": round(
                        (cpu_seconds(process.pid) - idle_cpu[mode]) * 100 / (time.monotonic() - idle_start), 2
                    ),
                    "memory": memory_mb(process.pid),
                }
                for mode, process in processes.items()
            }
            for index in range(settings.unit_rounds):
                for mode in turns(index):
                    window = unit_window(doors[mode], processes[mode], hub_pid, server, probe, settings.unit_seconds)
                    windows[mode].append(await window)
            python_threads = {}
            for mode, process in processes.items():
                python_threads[mode] = (await desk_command(process, "stop"))["python_threads"]
    finally:
        await destroy_all(list(doors.values()))
    figures = {
        f"processing_{mode}": unit_figures(windows[mode], processes[mode].pid, python_threads[mode], idle[mode])
        for mode in MODES
    }
    on, off = (figures[f"processing_{mode}"] for mode in MODES)
    return {
        "window_s": settings.unit_seconds,
        "windows_per_mode": settings.unit_rounds,
        **figures,
        "processing_on_against_off": {
            "cpu_ratio": round(on["desk_cpu_pct_of_core"] / off["desk_cpu_pct_of_core"], 3),
            "cpu_added_pct_of_core": round(on["desk_cpu_pct_of_core"] - off["desk_cpu_pct_of_core"], 2),
            "per_round_cpu_ratio": [
                round(a.desk_seconds / a.elapsed / (b.desk_seconds / b.elapsed), 3)
                for a, b in zip(windows["on"], windows["off"], strict=True)
            ],
            "rss_added_mb": round(
                on["desk_memory_in_call"]["rss_without_jack_shm_mb"]
                - off["desk_memory_in_call"]["rss_without_jack_shm_mb"],
                1,
            ),
        },
    }


def unit_figures(
    windows: list[UnitWindow], pid: int, python_threads: dict[str, str], idle: dict[str, Any]
) -> dict[str, object]:
    """One mode's windows added up: CPU, threads, loop lag, memory (the largest), the processing's cost."""
    elapsed = sum(window.elapsed for window in windows)
    desk_share = sum(window.desk_seconds for window in windows) / elapsed
    threads: Counter[int] = Counter()
    others_seconds: Counter[str] = Counter()
    for window in windows:
        threads.update(window.threads)
        others_seconds.update(window.others)
    shares = {name: seconds / elapsed for name, seconds in others_seconds.items()}
    busy = sum(window.busy_seconds for window in windows) / elapsed
    other_share = max(0.0, busy - desk_share - sum(shares.values()))
    notes = []
    if other_share >= 0.2:
        notes.append(f"other processes used {other_share:.2f} of a core meanwhile: the figures are pessimistic")
    lags_ms = sorted(lag * 1000 for window in windows for lag in window.after["loop_lag_s"])
    memory = max((window.memory for window in windows), key=lambda memory: memory["rss_mb"])
    return {
        "desk_cpu_pct_of_core": round(desk_share * 100, 2),
        "per_window_cpu_pct": [round(window.desk_seconds * 100 / window.elapsed, 2) for window in windows],
        "desk_idle_cpu_pct_of_core": idle["cpu_pct_of_core"],
        "desk_threads": describe_threads(pid, dict(threads), elapsed, python_threads),
        "desk_loop_lag_ms": {
            "ticks": len(lags_ms),
            "p50": round(percentile(lags_ms, 0.5), 2) if lags_ms else None,
            "p99": round(percentile(lags_ms, 0.99), 2) if lags_ms else None,
            "max": round(lags_ms[-1], 2) if lags_ms else None,
        },
        "processing": processing_in_windows(windows),
        "desk_memory_in_call": memory,
        "desk_memory_idle": idle["memory"],
        "audio_flowing_both_ways": all(window.flowing for window in windows),
        "desk_devices_in_windows": window_counters(windows),
        "cpu_pct_of_core_meanwhile": {
            **{name: round(share * 100, 2) for name, share in shares.items()},
            "everything_else": round(other_share * 100, 2),
        },
        "notes": notes,
    }


def processing_in_windows(windows: list[UnitWindow]) -> dict[str, object] | None:
    """The unit's processor during the windows: its CPU per 10 ms frame (both streams) and echo figures."""
    cost_us = frames = 0.0
    for window in windows:
        before, after = window.before["microphone"]["processing"], window.after["microphone"]["processing"]
        if before is None or after is None:
            return None
        counted = [max(stats["frames_processed"], stats["reference_frames"]) for stats in (before, after)]
        cost_us += after["cost_us_per_frame"] * counted[1] - before["cost_us_per_frame"] * counted[0]
        frames += counted[1] - counted[0]
    last = windows[-1].after["microphone"]["processing"]
    return {
        "cost_us_per_10ms_frame": round(cost_us / frames, 1) if frames else None,
        "cost_pct_of_core": round(cost_us / frames / 100, 2) if frames else None,
        "frames": int(frames),
        "errors": last["errors"],
        "delay_hint_ms": last["delay_hint_ms"],
        "settings": last["settings"],
    }


def window_counters(windows: list[UnitWindow]) -> dict[str, dict[str, int]]:
    """What the desk's speaker and microphone counted during the windows: the steady state, start-up left out."""
    counted = {
        "speaker": ("frames_received", "blocks_played", "underruns", "overruns", "samples_dropped"),
        "microphone": ("blocks_captured", "blocks_dropped", "input_overflows"),
    }
    totals: dict[str, Counter[str]] = {device: Counter() for device in counted}
    for window in windows:
        for device, names in counted.items():
            if window.before[device] is not None and window.after[device] is not None:
                totals[device].update(
                    {name: window.after[device][name] - window.before[device][name] for name in names}
                )
    return {device: dict(total) for device, total in totals.items()}


def others(hub_pid: int, server: JackServer) -> list[tuple[str, int]]:
    """The processes whose CPU is shown next to the desk's: the hub, jackd (the sound card) and this one."""
    return [("hub", hub_pid), ("jackd", server.pid), ("bench_door_and_probe", os.getpid())]


def describe_threads(
    pid: int, seconds: dict[int, float], elapsed: float, python_threads: dict[str, str]
) -> list[dict[str, object]]:
    """Where the unit's CPU went, thread by thread (% of a core). The main thread runs the event loop
    (Opus, SRTP, RTP, the SDK); Python's own threads are named; the rest are native: libjack's, which
    run PortAudio's callbacks (and through them sounddevice's and the processing, in Python), or idle
    library pools."""
    shown: list[dict[str, object]] = []
    rest: list[float] = []
    for tid, used in seconds.items():
        share = round(used * 100 / elapsed, 2)
        if tid == pid:
            shown.append({"tid": tid, "thread": "main (event loop)", "cpu_pct": share})
        elif share >= THREAD_SHOWN_PCT:
            name = python_threads.get(str(tid), "native (libjack: PortAudio's callbacks)")
            role = next((role for prefix, role in THREAD_ROLES.items() if name.startswith(prefix)), None)
            shown.append({"tid": tid, "thread": f"{name} ({role})" if role else name, "cpu_pct": share})
        else:
            rest.append(share)
    shown.sort(key=lambda row: -float(row["cpu_pct"]))  # type: ignore[arg-type]
    shown.append({"tid": None, "thread": f"{len(rest)} others", "cpu_pct": round(sum(rest), 2)})
    return shown


# --- the run -----------------------------------------------------------------------------------


def jackd_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(["jackd", "--version"], capture_output=True, text=True, timeout=5).stdout.split("\n")[0]
    return None


def environment() -> dict[str, object]:
    return {
        **host_environment(),
        "loadavg_at_end": os.getloadavg(),
        "hub_launch": HUB_LAUNCH,
        "sound_card": f"jackd dummy backend, {RATE} Hz, {PERIOD}-sample periods, --no-realtime",
        "jackd": jackd_version(),
        "portaudio": sd.get_portaudio_version()[1],
        "sound_policy": {"host_addresses": list(SOUND_POLICY.host_addresses), "jitter_frames": 0},
        "network_only_policy": {
            "host_addresses": list(ENDPOINT_POLICY.host_addresses),
            "jitter_frames": ENDPOINT_POLICY.jitter_frames,
        },
        **package_versions(("intercom", "aiortc", "aioice", "av", "numpy", "sounddevice", "JACK-Client")),
    }


async def run(settings: Settings, workdir: Path) -> dict[str, object]:
    """The three phases on one JACK server, each against a hub process of its own; returns the figures."""
    data_dir = workdir / "data"
    key = create_key(data_dir)
    create_flows(
        data_dir,
        workdir,
        {"door": "desk", "clicks": "clickdesk", "cpuon": "cpudeskon", "cpuoff": "cpudeskoff", "echo": "echodesk"},
    )
    with running_jack_server(workdir, prefix="intercom-bench") as server:
        devices = jack_devices()
        probe = JackProbe(server, asyncio.get_running_loop())
        try:
            async with fresh_hub(data_dir, workdir, "latency", HUB_ARGS) as (port, _):
                latency = await wait_phase(
                    "latency", measure_latency(port, key, probe, devices, settings), LATENCY_TIMEOUT
                )
            async with fresh_hub(data_dir, workdir, "unit", HUB_ARGS) as (port, pid):
                unit = await wait_phase(
                    "unit", measure_unit(port, pid, key, server, probe, devices, settings, workdir), PHASE_TIMEOUT
                )
            async with fresh_hub(data_dir, workdir, "echo", HUB_ARGS) as (port, _):
                echo = await wait_phase(
                    "echo", measure_echo_phase(port, key, server, probe, devices, settings), PHASE_TIMEOUT
                )
        finally:
            await probe.close()
    return {"latency": latency, "unit": unit, "echo": echo}


def verdict(figures: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Issue 15's targets, with the processing on."""
    mouth_to_ear, unit = figures["latency"]["mouth_to_ear"]["processing_on"], figures["unit"]["processing_on"]
    passed = {
        "mouth_to_ear": mouth_to_ear["p50_ms"] is not None
        and mouth_to_ear["p50_ms"] <= TARGET_MOUTH_TO_EAR_P50_MS
        and mouth_to_ear["missed_clicks"] == 0,
        "unit_cpu": unit["desk_cpu_pct_of_core"] <= TARGET_UNIT_CPU_PCT and unit["audio_flowing_both_ways"],
        "unit_rss": unit["desk_memory_in_call"]["rss_without_jack_shm_mb"] <= TARGET_UNIT_RSS_MB,
    }
    return {**passed, "all": all(passed.values())}


def playout_text(m2e: dict[str, Any]) -> str:
    """The other latency modes' p50 and underruns, for the summary line."""

    def mode(name: str) -> str:
        figures = m2e[f"processing_{name}"]
        return f"{figures['p50_ms']}ms ({figures['desk_speaker']['underruns']} underruns)"

    return (
        f"processing on, playout 20 ms {mode('on_playout_20ms')}; with 0-{JITTER_MS:.0f} ms jitter: playout "
        f"30 ms {mode('on_jitter')}, 20 ms {mode('on_playout_20ms_jitter')}"
    )


def summary_line(figures: dict[str, dict[str, Any]]) -> str:
    latency, unit = figures["latency"], figures["unit"]
    m2e = latency["mouth_to_ear"]
    on, off = m2e["processing_on"], m2e["processing_off"]
    paired, network = latency["processing_on_against_off"], latency["network_only"]
    unit_on, unit_off = unit["processing_on"], unit["processing_off"]
    echo_on, echo_off = figures["echo"]["processing_on"], figures["echo"]["processing_off"]
    legs = on["legs_p50_ms"]
    speakers = [m2e[f"processing_{mode}"]["desk_speaker"] for mode in MODES]
    return (
        f"audio: mouth-to-ear p50 processing on {on['p50_ms']}ms / off {off['p50_ms']}ms "
        f"(+{paired['p50_added_ms']}ms, x{paired['p50_ratio']}; {on['count']}+{off['count']} clicks, "
        f"{on['missed_clicks'] + off['missed_clicks']} missed, "
        f"{sum(s['underruns'] for s in speakers)} underruns, {sum(s['overruns'] for s in speakers)} overruns; "
        f"legs p50 on: capture {legs['capture']} network {legs['network']} playback {legs['playback']}ms) "
        f"vs network-only p50 {network['p50_ms']}ms; {playout_text(m2e)}; "
        f"desk unit in a call on {unit_on['desk_cpu_pct_of_core']}% / "
        f"off {unit_off['desk_cpu_pct_of_core']}% of a core (processing "
        f"{unit_on['processing']['cost_us_per_10ms_frame']} us per 10 ms frame), RSS on "
        f"{unit_on['desk_memory_in_call']['rss_without_jack_shm_mb']} / off "
        f"{unit_off['desk_memory_in_call']['rss_without_jack_shm_mb']} MB "
        f"+ {unit_on['desk_memory_in_call']['jack_shm_mb']} MB of jackd's shared memory; "
        f"echo: ERLE from 2 s on {echo_on['first_call_erle_from_2s_db']} dB (first call) / off "
        f"{echo_off['first_call_erle_from_2s_db']} dB, double-talk loss on "
        f"{echo_on['double_talk_loss_db_median']} dB / off {echo_off['double_talk_loss_db_median']} dB"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0], "4 sound calls of 5 clicks, a 3 s CPU window per mode")
    settings = Settings.for_mode(args.quick)
    targets = {
        "mouth_to_ear_p50_ms_max": TARGET_MOUTH_TO_EAR_P50_MS,
        "unit_cpu_pct_of_core_max": TARGET_UNIT_CPU_PCT,
        "unit_rss_mb_max": TARGET_UNIT_RSS_MB,
    }
    return run_and_report(
        args, lambda workdir: run(settings, workdir), targets, environment, verdict, summary_line, RUN_TIMEOUT
    )


if __name__ == "__main__":
    sys.exit(main())
