"""Call benchmark: post-dial delay and answer-to-audio over TLS and plain, one-way audio latency, hub CPU per call.

Run from the repository root::

    .venv/bin/python bench/calls.py            # full run (about 2 minutes)
    .venv/bin/python bench/calls.py --quick    # smoke test
    .venv/bin/python bench/calls.py --json-out result.json

What it does, all on 127.0.0.1:

1. creates a key (``intercom keys create``), the call flows (``intercom callflows create``: one
   ``transfer`` to ``client:<callee>`` per caller) and an ECDSA P-256 certificate (the kind a
   hub makes itself, issued by its own CA), then starts fresh hub processes for each phase, so that no phase runs
   on a hub another phase has warmed or grown: for the setup and latency phases one plain (ws://)
   and one over TLS (``--cert``, ``--key``; wss://, the clients trusting exactly that
   certificate), whose calls alternate. The SDK clients run in this process, each with its own
   WebSocket, as units would;
2. setup: N calls one after the other between two clients sending tones, per transport, plain
   and TLS in turn (which goes first swaps every call): post-dial delay (``start_call()`` to the
   callee's ``incoming`` event) and answer-to-audio (the callee's ``accept()``, made once the
   caller hears ringing, to the first non-silent far-end audio, at both ends), with the steps in
   between;
3. latency: one-way audio delay by click detection (a click every 200 ms from each end, the
   arrival times at the other end) through the hub with the SDK's defaults, plain and TLS (the
   audio itself is SRTP either way: TLS carries only the signalling), interleaved with
   direct peer-to-peer calls between two plain aiortc ``RTCPeerConnection``s (aiortc's default
   receiver, ``JitterBuffer(capacity=16, prefetch=4)``; only their host candidates are put on
   127.0.0.1 and the public STUN server left out, neither of which touches the audio path) and
   between two peer connections with the SDK's own policy, so that what the hub adds is visible;
4. load (plain only: no signalling crosses the hub while it measures, so TLS could change
   nothing it sees): K calls bridged at once for a fixed time, the hub's CPU time over wall time
   and per call, next to the CPU of this process (the load generator: it replays pre-encoded Opus
   so that it does not encode) and of everything else, and how much of what each end sent the
   other received.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver
from aiortc.codecs.opus import OpusEncoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from harness import (
    HOST,
    PLAIN,
    CpuWindow,
    Transport,
    cpu_seconds,
    create_key,
    fresh_hub,
    fresh_hubs,
    host_environment,
    package_versions,
    parse_args,
    percentile,
    rss_mb,
    run_and_report,
    tls_transport,
    wait_phase,
)

from intercom.auth import AccessKey, IncomingCapability, OutgoingCapability, mint_token
from intercom.media import ClickSource, MediaPolicy, RecordingSink, ToneSource, new_peer_connection, playout_of
from intercom.media.aiortc_adaptation import JITTER_ATTRIBUTE, gather_on
from intercom.media.tracks import FRAME_SAMPLES, SAMPLE_RATE, TIME_BASE, PacedTrack, audio_frame
from intercom.sdk import Call, CallAudio, CallStatus, Client, IncomingCall

LOOPBACK = (HOST,)
PHASE_TIMEOUT = 150.0  # one phase; a hub that stops answering fails the run instead of hanging it
STEP_TIMEOUT = 10.0  # any one wait inside a call: the offer, the answer, first audio, the hang-up

TARGET_POST_DIAL_P50_MS = 50.0
TARGET_TLS_POST_DIAL_RATIO = 1.3  # post-dial p50 over TLS at most this many times the plain one, same run
TARGET_ANSWER_TO_AUDIO_P50_MS = 200.0  # at each end
TARGET_HUB_ONE_WAY_P50_MS = 60.0
TARGET_HUB_CPU_PCT_PER_CALL = 8.0  # of one core

DOOR_HZ, DESK_HZ = 440.0, 880.0
CALL_GAP_S = 0.1  # between setup calls: lets the hub close the previous call's media
CLICK_INTERVAL_S = 0.2  # well above the slowest one-way delay expected (~100 ms), so clicks never mix
LATENCY_SETTLE_S = 1.0  # clicks of a call's first second are left out: ICE, DTLS, buffers filling
LATENCY_TAIL_S = 0.5  # the call runs this long after its last counted click, so that it can arrive
LOAD_SETTLE_S = 1.0
LOOP_LAG_TICK_S = 0.01
EXPECTED_FPS = SAMPLE_RATE / FRAME_SAMPLES  # 50 frames of 20 ms per second
MIN_DELIVERY = 0.95  # a load call flows when each end receives at least this share of what the other sent
LOOP_LAG_WARNING_MS = 20.0  # the generator's loop this late at p99 makes its sources skip frames

# The SDK's receive policy (jitter_frames left at its default), with loopback host candidates.
ENDPOINT_POLICY = MediaPolicy(host_addresses=LOOPBACK)
# The hub's media policy: what HubConfig's default gives, plus 127.0.0.1 host candidates.
HUB_POLICY = MediaPolicy(host_addresses=LOOPBACK, jitter_frames=0)

# The hub as its command runs it, offering 127.0.0.1 as its media's host candidate (--ice-host).
HUB_ARGS = ("--ice-host", "127.0.0.1")
HUB_LAUNCH = " ".join(("intercom hub", *HUB_ARGS))


# ``intercom callflows create`` once per flow, in one interpreter: the CLI's own code path
# without paying the interpreter's start-up for each of a dozen flows.
FLOW_CREATOR = """
import json
import sys

from intercom.cli import main

storage = json.loads(sys.argv[1])
for path in sys.argv[2:]:
    if main(["--log-level", "warning", "callflows", "create", *storage, "--file", path]) != 0:
        sys.exit(1)
"""


@dataclass
class Settings:
    """How much each phase does: the full run, or a quick smoke test."""

    calls: int
    warmup_calls: int
    latency_rounds: int
    latency_seconds: float  # the counted part of each latency call
    load_calls: int
    load_seconds: float
    idle_seconds: float

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        return cls(5, 1, 1, 2.0, 3, 4.0, 1.0) if quick else cls(30, 2, 3, 3.5, 10, 10.0, 2.0)


# --- processes ---------------------------------------------------------------------------------


def create_flows(data_dir: Path, workdir: Path, flows: dict[str, str], database: Sequence[str] = ()) -> None:
    """One call flow per caller, ``transfer`` to ``client:<callee>``, stored by ``intercom callflows create``
    (``database``: the ``--database`` flags of a PostgreSQL shared by several hubs, else SQLite in ``data_dir``)."""
    paths = []
    for flow_id, callee in flows.items():
        steps = [{"id": "ring", "action": "transfer", "options": {"destination": f"client:{callee}", "timeout": 30}}]
        path = workdir / f"flow-{flow_id}.json"
        path.write_text(json.dumps({"id": flow_id, "title": flow_id, "steps": steps}))
        paths.append(str(path))
    argv = [sys.executable, "-c", FLOW_CREATOR, json.dumps(["--data-dir", str(data_dir), *database]), *paths]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or done.stdout.split() != list(flows):
        raise RuntimeError(f"intercom callflows create failed: {done.stderr.strip() or done.stdout.strip()}")


# --- audio for the load calls ------------------------------------------------------------------


def tone_packets(frequency_hz: float, seconds: int = 1) -> list[bytes]:
    """``seconds`` of a tone as aiortc's sender encodes it (its own ``OpusEncoder``), to replay in a loop.

    A whole number of seconds of a whole number of hertz loops without a phase jump.
    """
    encoder = OpusEncoder()
    tone = ToneSource(frequency_hz)
    count = round(seconds * EXPECTED_FPS)
    payloads: list[bytes] = []
    for index in range(count + 10):  # the encoder's look-ahead holds back the first packets
        pts = index * FRAME_SAMPLES
        encoded, _ = encoder.encode(audio_frame(tone.samples(pts), pts))
        payloads.extend(encoded)
    tone.stop()
    return payloads[-count:]


class OpusLoopSource(PacedTrack):
    """Pre-encoded Opus packets on the wall clock, 20 ms apart: what a unit sends, without encoding it here.

    aiortc's sender sends an ``av.Packet`` as it is, so the load generator spends no CPU on Opus
    encoding and can drive more calls than it could with live tones.
    """

    def __init__(self, payloads: list[bytes]) -> None:
        super().__init__()
        self._payloads = payloads

    async def recv(self) -> av.Packet:
        pts = await self._next_pts()
        packet = av.Packet(self._payloads[pts // FRAME_SAMPLES % len(self._payloads)])
        packet.pts = pts
        packet.time_base = TIME_BASE
        return packet

    @property
    def sent(self) -> int:
        """Packets handed to the sender so far (a late reader skips some: they count as not sent)."""
        return self._pts // FRAME_SAMPLES


class CountingSink:
    """Reads a remote track and counts its frames: the cheapest sink that still drains the receiver."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await self.track.recv()
                self.frames += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# --- clients and calls -------------------------------------------------------------------------


class Endpoint:
    """One SDK client in this process: the audio sources its calls were given, and the calls it was offered."""

    def __init__(
        self,
        identity: str,
        port: int,
        key: AccessKey,
        source: Callable[[], MediaStreamTrack],
        sink: Callable[[MediaStreamTrack], Any],
        outgoing: str | None = None,
        transport: Transport = PLAIN,
    ) -> None:
        capabilities: list[IncomingCapability | OutgoingCapability] = [IncomingCapability(identity)]
        if outgoing is not None:
            capabilities.append(OutgoingCapability(outgoing, identity))
        self.token = mint_token(key, capabilities, ttl=3600)
        self.sources: list[MediaStreamTrack] = []  # newest last; a client has one call at a time here

        def make_source() -> MediaStreamTrack:
            track = source()
            self.sources.append(track)
            return track

        # No call-progress tones: they sound on the unit's own speaker, through the sink factory,
        # and would add sinks (and, with a sound card, playback ports) to what is measured.
        audio = CallAudio(source=make_source, sink=sink, policy=ENDPOINT_POLICY, tones=None)
        self.client = Client(
            host=f"{HOST}:{port}",
            refresh_token=lambda: self.token,
            secure=transport.secure,
            ssl_context=transport.client_context,
            audio=audio,
        )
        self.offers: asyncio.Queue[tuple[float, IncomingCall]] = asyncio.Queue()
        self.client.on("incoming", lambda incoming: self.offers.put_nowait((time.monotonic(), incoming)))

    async def connect(self) -> None:
        async with asyncio.timeout(STEP_TIMEOUT):
            await self.client.setup(jwt=self.token)

    async def next_offer(self) -> tuple[float, IncomingCall]:
        async with asyncio.timeout(STEP_TIMEOUT):
            return await self.offers.get()


async def connect_all(endpoints: list[Endpoint]) -> None:
    await asyncio.gather(*(endpoint.connect() for endpoint in endpoints))


async def destroy_all(endpoints: list[Endpoint]) -> None:
    async def destroy(endpoint: Endpoint) -> None:
        async with asyncio.timeout(STEP_TIMEOUT):
            await endpoint.client.destroy()

    await asyncio.gather(*(destroy(endpoint) for endpoint in endpoints), return_exceptions=True)


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = STEP_TIMEOUT) -> None:
    """Poll ``condition``; only for waits whose moment is not what is measured."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.005)


@dataclass
class Placed:
    """A call from ``start_call()`` to both ends answered, with the moments along the way (monotonic s)."""

    call: Call
    answered: Call
    started_at: float  # just before start_call()
    offered_at: float  # the callee's 'incoming' event
    accept_at: float  # just before accept(), once the caller heard ringing
    caller_statuses: dict[str, float] = field(default_factory=dict)
    callee_statuses: dict[str, float] = field(default_factory=dict)


async def place_call(caller: Endpoint, callee: Endpoint) -> Placed:
    statuses: dict[str, float] = {}
    started_at = time.monotonic()
    call = caller.client.start_call()
    call.on("status", lambda status: statuses.setdefault(str(status.value), time.monotonic()))
    offered_at, incoming = await caller_waits(callee.next_offer(), call)
    # A person answers a ringing phone: accept once the caller hears it ring (the callee's 180 relayed).
    await wait_for(lambda: still_up(call) and "ringing" in statuses, "the caller to hear ringing")
    accept_at = time.monotonic()
    answered = incoming.accept()  # returns the call at once; the answer is made in the background
    answered_statuses: dict[str, float] = {}
    answered.on("status", lambda status: answered_statuses.setdefault(str(status.value), time.monotonic()))
    await wait_for(lambda: still_up(call) and call.sink is not None, "the caller to get the answer")
    await wait_for(lambda: still_up(answered) and answered.sink is not None, "the callee's answer")
    return Placed(call, answered, started_at, offered_at, accept_at, statuses, answered_statuses)


def still_up(call: Call) -> bool:
    """True; raises if the call failed or ended while the bench waits for its next step."""
    if call.status in (CallStatus.FAILED, CallStatus.ENDED):
        raise RuntimeError(f"the call {call.status.value} before it was set up")
    return True


async def caller_waits(offer: Awaitable[tuple[float, IncomingCall]], call: Call) -> tuple[float, IncomingCall]:
    try:
        return await offer
    except TimeoutError:
        raise TimeoutError(f"no incoming call within {STEP_TIMEOUT:.0f} s (caller status {call.status})") from None


async def hang_up(placed: Placed) -> None:
    async with asyncio.timeout(STEP_TIMEOUT):
        await placed.call.disconnect()
    await wait_for(lambda: placed.answered.status is CallStatus.ENDED, "the callee to see the hang-up")


# --- statistics --------------------------------------------------------------------------------


def summarise_ms(samples_s: list[float]) -> dict[str, float | int | None]:
    if not samples_s:
        return {"count": 0, "p50_ms": None, "p90_ms": None, "min_ms": None, "max_ms": None}
    values = sorted(sample * 1000 for sample in samples_s)
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 0.50), 1),
        "p90_ms": round(percentile(values, 0.90), 1),
        "min_ms": round(values[0], 1),
        "max_ms": round(values[-1], 1),
    }


def window_latencies(sent: list[float], received: list[float], start: float, end: float) -> tuple[list[float], int]:
    """For each click sent in ``[start, end]``: its delay to the first click received after it and
    before the next one was sent; and how many of them never arrived (``click_latencies`` with a window)."""
    latencies, missed = [], 0
    for index, sent_at in enumerate(sent):
        if not start <= sent_at <= end:
            continue
        position = bisect.bisect_left(received, sent_at)
        next_sent = sent[index + 1] if index + 1 < len(sent) else float("inf")
        if position < len(received) and received[position] < next_sent:
            latencies.append(received[position] - sent_at)
        else:
            missed += 1
    return latencies, missed


# --- setup: post-dial delay and answer-to-audio ------------------------------------------------


async def measure_setup(
    hubs: dict[Transport, tuple[int, int]], key: AccessKey, settings: Settings
) -> dict[str, object]:
    """Calls one after the other between two tone clients per hub, each hung up once both ends hear
    the other; the hubs take turns call by call, and which goes first swaps every call."""
    pairs = {
        transport: (
            Endpoint(
                "door", port, key, lambda: ToneSource(DOOR_HZ), RecordingSink, outgoing="door", transport=transport
            ),
            Endpoint("desk", port, key, lambda: ToneSource(DESK_HZ), RecordingSink, transport=transport),
        )
        for transport, (port, _) in hubs.items()
    }
    endpoints = [endpoint for pair in pairs.values() for endpoint in pair]
    rows: dict[str, list[dict[str, float | None]]] = {transport.name: [] for transport in pairs}
    await connect_all(endpoints)
    try:
        order = list(pairs)
        for index in range(settings.warmup_calls + settings.calls):
            for transport in order:
                row = await setup_call(*pairs[transport])
                if index >= settings.warmup_calls:
                    rows[transport.name].append(row)
                await asyncio.sleep(CALL_GAP_S)
            order.reverse()
    finally:
        await destroy_all(endpoints)
    figures = {name: setup_figures(rows[name]) for name in rows}
    plain, tls = figures["plain"], figures["tls"]
    heard_plain, heard_tls = plain["answer_to_audio"], tls["answer_to_audio"]
    return {
        "calls": settings.calls,
        "warmup_calls": settings.warmup_calls,
        "order": "plain and TLS alternate call by call; which goes first swaps every call",
        **figures,
        "tls_over_plain": {
            "post_dial_p50": ratio(tls["post_dial"]["p50_ms"], plain["post_dial"]["p50_ms"]),
            "post_dial_p90": ratio(tls["post_dial"]["p90_ms"], plain["post_dial"]["p90_ms"]),
            "caller_hears_callee_p50": ratio(
                heard_tls["caller_hears_callee"]["p50_ms"], heard_plain["caller_hears_callee"]["p50_ms"]
            ),
            "callee_hears_caller_p50": ratio(
                heard_tls["callee_hears_caller"]["p50_ms"], heard_plain["callee_hears_caller"]["p50_ms"]
            ),
        },
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 2) if numerator is not None and denominator else None


async def setup_call(door: Endpoint, desk: Endpoint) -> dict[str, float | None]:
    """One call from ``door`` to ``desk``, hung up once both ends hear the other: its moments."""
    placed = await place_call(door, desk)
    heard: dict[str, float | None] = {}
    for side, sink in (("caller", placed.call.sink), ("callee", placed.answered.sink)):
        assert isinstance(sink, RecordingSink)
        try:
            heard[side] = await sink.wait_for_audio(STEP_TIMEOUT) - placed.accept_at
        except (TimeoutError, MediaStreamError):
            heard[side] = None
    await hang_up(placed)
    statuses = placed.caller_statuses
    return {
        "post_dial": placed.offered_at - placed.started_at,
        "invite_sent": statuses["connecting"] - placed.started_at,  # the caller's offer made
        "ringing": statuses["ringing"] - placed.started_at,
        "callee_answered": placed.callee_statuses["accepted"] - placed.accept_at,  # its 200 sent
        "caller_answered": statuses["accepted"] - placed.accept_at,  # the hub's 200 at the caller
        "caller_hears": heard["caller"],
        "callee_hears": heard["callee"],
    }


def setup_figures(rows: list[dict[str, float | None]]) -> dict[str, Any]:
    def column(name: str) -> list[float]:
        return [value for row in rows if (value := row[name]) is not None]

    missing = {side: sum(row[f"{side}_hears"] is None for row in rows) for side in ("caller", "callee")}
    return {
        "post_dial": summarise_ms(column("post_dial")),
        "answer_to_audio": {
            "caller_hears_callee": summarise_ms(column("caller_hears")),
            "callee_hears_caller": summarise_ms(column("callee_hears")),
            "no_audio_within_s": STEP_TIMEOUT,
            "missing": missing,
        },
        "steps": {
            "start_call_to_invite_sent": summarise_ms(column("invite_sent")),
            "start_call_to_ringing": summarise_ms(column("ringing")),
            "accept_to_callee_answered": summarise_ms(column("callee_answered")),
            "accept_to_caller_answered": summarise_ms(column("caller_answered")),
        },
    }


# --- latency: clicks through the hub, and direct --------------------------------------------


def plain_aiortc() -> RTCPeerConnection:
    """aiortc's own peer connection: default receiver and jitter buffer. An explicit empty ICE
    server list only keeps it from adding a public STUN server (no internet here)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def sdk_policy() -> RTCPeerConnection:
    return new_peer_connection(ENDPOINT_POLICY)


def loopback_candidates(pc: RTCPeerConnection) -> None:
    """Host candidates on 127.0.0.1 (aioice never offers it); the receive path is left alone."""
    for transceiver in pc.getTransceivers():
        gather_on(transceiver.receiver.transport.transport.iceGatherer, LOOPBACK)


def describe_receiver(receiver: RTCRtpReceiver) -> dict[str, object]:
    """What buffers the audio a receiver hands to its decoder: evidence of the baseline's defaults."""
    playout = playout_of(receiver)
    if playout is not None:
        return {"buffer": "intercom PlayoutBuffer", "jitter_frames": playout.frames, "passthrough": playout.passthrough}
    buffer = getattr(receiver, JITTER_ATTRIBUTE)
    if type(buffer) is JitterBuffer:
        return {"buffer": "aiortc JitterBuffer", "capacity": buffer.capacity, "prefetch": buffer._prefetch}
    return {"buffer": type(buffer).__name__}


@dataclass
class ClickRun:
    """The click latencies of one path, both directions, over all its calls."""

    forward: list[float] = field(default_factory=list)  # caller (offerer) to callee
    backward: list[float] = field(default_factory=list)
    missed: int = 0
    calls: int = 0
    receiver: dict[str, object] | None = None

    def add(self, start: float, seconds: float, ends: list[tuple[ClickSource, RecordingSink]]) -> None:
        """``ends``: (what A sent, what B heard), (what B sent, what A heard)."""
        for (source, sink), into in zip(ends, (self.forward, self.backward), strict=True):
            latencies, missed = window_latencies(source.sent_at, sink.clicks, start, start + seconds)
            into.extend(latencies)
            self.missed += missed
        self.calls += 1

    def summary(self) -> dict[str, object]:
        return {
            **summarise_ms(self.forward + self.backward),
            "caller_to_callee_p50_ms": summarise_ms(self.forward)["p50_ms"],
            "callee_to_caller_p50_ms": summarise_ms(self.backward)["p50_ms"],
            "missed_clicks": self.missed,
            "calls": self.calls,
            **({"receiver": self.receiver} if self.receiver else {}),
        }


async def hub_click_call(door: Endpoint, desk: Endpoint, seconds: float, run: ClickRun) -> None:
    placed = await place_call(door, desk)
    try:
        start = placed.callee_statuses["accepted"] + LATENCY_SETTLE_S
        await asyncio.sleep(start + seconds + LATENCY_TAIL_S - time.monotonic())
        caller_source, callee_source = door.sources[-1], desk.sources[-1]
        caller_sink, callee_sink = placed.call.sink, placed.answered.sink
        assert isinstance(caller_source, ClickSource) and isinstance(callee_source, ClickSource)
        assert isinstance(caller_sink, RecordingSink) and isinstance(callee_sink, RecordingSink)
        run.add(start, seconds, [(caller_source, callee_sink), (callee_source, caller_sink)])
    finally:
        await hang_up(placed)


async def direct_click_call(make_pc: Callable[[], RTCPeerConnection], seconds: float, run: ClickRun) -> None:
    """Two peer connections in this process, the SDP handed over directly, a click source at each end."""
    a, b = make_pc(), make_pc()
    source_a, source_b = ClickSource(CLICK_INTERVAL_S), ClickSource(CLICK_INTERVAL_S)
    sinks: list[RecordingSink] = []
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            a.addTrack(source_a)
            loopback_candidates(a)
            await a.setLocalDescription(await a.createOffer())
            await b.setRemoteDescription(a.localDescription)
            b.addTrack(source_b)
            loopback_candidates(b)
            await b.setLocalDescription(await b.createAnswer())
            await a.setRemoteDescription(b.localDescription)
        sink_a, sink_b = RecordingSink(a.getReceivers()[0].track), RecordingSink(b.getReceivers()[0].track)
        sinks = [sink_a, sink_b]
        for sink in sinks:
            sink.start()
        start = time.monotonic() + LATENCY_SETTLE_S
        await asyncio.sleep(start + seconds + LATENCY_TAIL_S - time.monotonic())
        run.add(start, seconds, [(source_a, sink_b), (source_b, sink_a)])
        run.receiver = describe_receiver(b.getReceivers()[0])
    finally:
        for sink in sinks:
            await sink.stop()
        await a.close()
        await b.close()
        source_a.stop()
        source_b.stop()


async def measure_latency(
    hubs: dict[Transport, tuple[int, int]], key: AccessKey, settings: Settings
) -> dict[str, object]:
    """Through each hub, direct with aiortc's defaults, direct with the SDK's policy: in turn, round
    after round, so that all of them see the same machine (a shared VM's speed drifts over seconds)."""
    pairs = {
        transport: (
            Endpoint("clickdoor", port, key, clicks, RecordingSink, outgoing="clicks", transport=transport),
            Endpoint("clickdesk", port, key, clicks, RecordingSink, transport=transport),
        )
        for transport, (port, _) in hubs.items()
    }
    endpoints = [endpoint for pair in pairs.values() for endpoint in pair]
    await connect_all(endpoints)
    through = {transport.name: ClickRun() for transport in pairs}
    direct_default, direct_sdk = ClickRun(), ClickRun()
    try:
        for _ in range(settings.latency_rounds):
            for transport, (door, desk) in pairs.items():
                await hub_click_call(door, desk, settings.latency_seconds, through[transport.name])
            await direct_click_call(plain_aiortc, settings.latency_seconds, direct_default)
            await direct_click_call(sdk_policy, settings.latency_seconds, direct_sdk)
    finally:
        await destroy_all(endpoints)
    hub_p50 = summarise_ms(through["plain"].forward + through["plain"].backward)["p50_ms"]
    tls_p50 = summarise_ms(through["tls"].forward + through["tls"].backward)["p50_ms"]
    default_p50 = summarise_ms(direct_default.forward + direct_default.backward)["p50_ms"]
    sdk_p50 = summarise_ms(direct_sdk.forward + direct_sdk.backward)["p50_ms"]
    return {
        "click_interval_s": CLICK_INTERVAL_S,
        "counted_seconds_per_call": settings.latency_seconds,
        "rounds": settings.latency_rounds,
        "through_hub": {**through["plain"].summary(), "endpoint_jitter_frames": ENDPOINT_POLICY.jitter_frames},
        "through_hub_tls": {**through["tls"].summary(), "endpoint_jitter_frames": ENDPOINT_POLICY.jitter_frames},
        "direct_aiortc_default": direct_default.summary(),
        "direct_sdk_policy": direct_sdk.summary(),
        "ratio_hub_to_direct_default_p50": ratio(hub_p50, default_p50),
        "ratio_hub_tls_to_plain_p50": ratio(tls_p50, hub_p50),
        "hub_added_p50_ms": round(hub_p50 - sdk_p50, 1) if hub_p50 is not None and sdk_p50 is not None else None,
    }


def clicks() -> ClickSource:
    return ClickSource(CLICK_INTERVAL_S)


# --- load: hub CPU per bridged call ------------------------------------------------------------


async def sample_loop_lag(until: float, lags: list[float]) -> None:
    """How late this event loop wakes from a 10 ms sleep: the load generator's own health."""
    while (before := time.monotonic()) < until:
        await asyncio.sleep(LOOP_LAG_TICK_S)
        lags.append(time.monotonic() - before - LOOP_LAG_TICK_S)


async def measure_load(port: int, hub_pid: int, key: AccessKey, settings: Settings) -> dict[str, object]:
    """K calls bridged at once; CPU of the hub, of this process and of the rest over a fixed window."""
    count = settings.load_calls
    caller_audio, callee_audio = tone_packets(DOOR_HZ), tone_packets(DESK_HZ)
    callers = [
        Endpoint(f"loadcaller{i}", port, key, lambda: OpusLoopSource(caller_audio), CountingSink, outgoing=f"load{i}")
        for i in range(count)
    ]
    callees = [
        Endpoint(f"loadcallee{i}", port, key, lambda: OpusLoopSource(callee_audio), CountingSink) for i in range(count)
    ]
    await connect_all(callers + callees)
    placed: list[Placed] = []
    try:
        await asyncio.sleep(0.5)
        idle_cpu, idle_start = cpu_seconds(hub_pid), time.monotonic()
        await asyncio.sleep(settings.idle_seconds)
        idle_share = (cpu_seconds(hub_pid) - idle_cpu) / (time.monotonic() - idle_start)
        rss_idle = rss_mb(hub_pid)
        for caller, callee in zip(callers, callees, strict=True):
            placed.append(await place_call(caller, callee))
        # Each call carries two flows of audio: the callee's source to the caller's sink, and back.
        flows: list[tuple[OpusLoopSource, CountingSink]] = []
        for call, caller, callee in zip(placed, callers, callees, strict=True):
            for source, sink in ((callee.sources[-1], call.call.sink), (caller.sources[-1], call.answered.sink)):
                assert isinstance(source, OpusLoopSource) and isinstance(sink, CountingSink)
                flows.append((source, sink))
        await wait_for(lambda: all(sink.frames > 0 for _, sink in flows), "audio at every end of the load calls")
        await asyncio.sleep(LOAD_SETTLE_S)
        before = [(source.sent, sink.frames) for source, sink in flows]
        cpu = CpuWindow(hub_pid)
        lags: list[float] = []
        await sample_loop_lag(cpu.started + settings.load_seconds, lags)
        cpu.stop()
        after = [(source.sent, sink.frames) for source, sink in flows]
        rss_loaded = rss_mb(hub_pid)
        for call in placed:
            if call.call.status is not CallStatus.CONFIRMED:
                raise RuntimeError(f"a load call is {call.call.status} during the measurement")
    finally:
        for call in placed:
            with contextlib.suppress(Exception):
                await hang_up(call)
        await destroy_all(callers + callees)
    elapsed, hub_share = cpu.elapsed, cpu.hub_share
    sent = [(end[0] - begin[0]) / elapsed for begin, end in zip(before, after, strict=True)]
    received = [(end[1] - begin[1]) / elapsed for begin, end in zip(before, after, strict=True)]
    # What each far end received of what its source sent: frames a stalled generator skipped
    # were never sent, so a shortfall here is lost between the two clients (the hub, mostly).
    delivered = [got / max(put, 1e-9) for put, got in zip(sent, received, strict=True)]
    # Flows go two per call, in call order: a call flows when both of its directions do.
    flowing = sum(min(delivered[i : i + 2]) >= MIN_DELIVERY for i in range(0, len(delivered), 2))
    lags_ms = sorted(lag * 1000 for lag in lags)
    notes = [
        "the load generator used most of a core: the figures may be limited by it"
        if cpu.generator_bound
        else "the load generator had CPU to spare"
    ]
    if percentile(lags_ms, 0.99) >= LOOP_LAG_WARNING_MS:
        notes.append(
            f"the load generator's event loop stalled (p99 {percentile(lags_ms, 0.99):.0f} ms): "
            "its sources skipped frames, so fewer than 50 frames/s were sent"
        )
    notes += cpu.other_load_notes()
    return {
        "calls": count,
        "duration_s": settings.load_seconds,
        "elapsed_s": round(elapsed, 3),
        "opus_payload_bytes_mean": round(sum(map(len, caller_audio + callee_audio)) / (2 * len(caller_audio)), 1),
        "hub_cpu_core_share": round(hub_share, 3),
        "hub_cpu_pct_per_call": round(hub_share * 100 / count, 2),
        "hub_idle_cpu_core_share": round(idle_share, 3),
        "hub_cpu_pct_per_call_above_idle": round((hub_share - idle_share) * 100 / count, 2),
        "hub_rss_idle_mb": round(rss_idle, 1),
        "hub_rss_loaded_mb": round(rss_loaded, 1),
        "hub_rss_per_call_mb": round((rss_loaded - rss_idle) / count, 2),
        "frames_per_s_sent_per_source": spread(sent, EXPECTED_FPS),
        "frames_per_s_received_per_end": spread(received, EXPECTED_FPS),
        "delivered_share_per_direction": spread(delivered, 1.0, digits=3),
        "calls_flowing": flowing,
        "bench_cpu_core_share": round(cpu.bench_share, 3),
        "bench_loop_lag_ms": {
            "p50": round(percentile(lags_ms, 0.5), 2),
            "p99": round(percentile(lags_ms, 0.99), 2),
            "max": round(lags_ms[-1], 2),
        },
        "other_cpu_core_share": round(cpu.other_share, 3),
        "generator_bound": cpu.generator_bound,
        "notes": notes,
    }


def spread(values: list[float], expected: float, digits: int = 1) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "expected": expected,
        "min": round(ordered[0], digits),
        "p50": round(percentile(ordered, 0.5), digits),
        "max": round(ordered[-1], digits),
    }


# --- the run -----------------------------------------------------------------------------------


def environment() -> dict[str, object]:
    return {
        **host_environment(),
        "loadavg_at_end": os.getloadavg(),
        "hub_launch": HUB_LAUNCH,
        "hub_launch_tls": f"{HUB_LAUNCH} --cert CERT --key KEY (setup and latency phases)",
        "endpoint_policy": {
            "host_addresses": list(ENDPOINT_POLICY.host_addresses),
            "jitter_frames": ENDPOINT_POLICY.jitter_frames,
        },
        "hub_policy": {"host_addresses": list(HUB_POLICY.host_addresses), "jitter_frames": HUB_POLICY.jitter_frames},
        **package_versions(("intercom", "aiortc", "aioice", "av", "websockets", "uvicorn", "fastapi", "numpy")),
    }


async def run(settings: Settings, workdir: Path) -> dict[str, object]:
    """Run every phase, each against hub processes of its own, and return the figures."""
    data_dir = workdir / "data"
    key = create_key(data_dir)
    flows = {"door": "desk", "clicks": "clickdesk"}
    flows.update({f"load{i}": f"loadcallee{i}" for i in range(settings.load_calls)})
    create_flows(data_dir, workdir, flows)
    transports = (PLAIN, tls_transport(workdir))
    async with fresh_hubs(data_dir, workdir, "setup", transports, HUB_ARGS) as hubs:
        setup = await wait_phase("setup", measure_setup(hubs, key, settings), PHASE_TIMEOUT)
    async with fresh_hubs(data_dir, workdir, "latency", transports, HUB_ARGS) as hubs:
        latency = await wait_phase("latency", measure_latency(hubs, key, settings), PHASE_TIMEOUT)
    async with fresh_hub(data_dir, workdir, "load", HUB_ARGS) as (port, pid):
        load = await wait_phase("load", measure_load(port, pid, key, settings), PHASE_TIMEOUT)
    return {"setup": setup, "latency": latency, "load": load}


def verdict(figures: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """The absolute targets hold over both transports; TLS's post-dial delay within its ratio of plain."""
    setup, latency, load = figures["setup"], figures["latency"], figures["load"]
    transports = ("plain", "tls")
    tls_post_dial = setup["tls_over_plain"]["post_dial_p50"]
    passed = {
        "post_dial": all(setup[name]["post_dial"]["p50_ms"] <= TARGET_POST_DIAL_P50_MS for name in transports),
        "tls_post_dial": tls_post_dial is not None and tls_post_dial <= TARGET_TLS_POST_DIAL_RATIO,
        "answer_to_audio": all(heard_in_time(setup[name]["answer_to_audio"]) for name in transports),
        "latency": all(
            (p50 := latency[path]["p50_ms"]) is not None and p50 <= TARGET_HUB_ONE_WAY_P50_MS
            for path in ("through_hub", "through_hub_tls")
        ),
        "hub_cpu": load["hub_cpu_pct_per_call"] <= TARGET_HUB_CPU_PCT_PER_CALL
        and load["calls_flowing"] == load["calls"],
    }
    return {**passed, "all": all(passed.values())}


def heard_in_time(heard: dict[str, Any]) -> bool:
    ends = (heard["caller_hears_callee"]["p50_ms"], heard["callee_hears_caller"]["p50_ms"])
    return all(p50 is not None and p50 <= TARGET_ANSWER_TO_AUDIO_P50_MS for p50 in ends) and not any(
        heard["missing"].values()
    )


def summary_line(figures: dict[str, dict[str, Any]]) -> str:
    setup, latency, load = figures["setup"], figures["latency"], figures["load"]
    plain, tls = setup["plain"], setup["tls"]
    heard, heard_tls = plain["answer_to_audio"], tls["answer_to_audio"]
    hub, hub_tls, direct = latency["through_hub"], latency["through_hub_tls"], latency["direct_aiortc_default"]
    return (
        f"calls: post-dial p50 {plain['post_dial']['p50_ms']}ms (p90 {plain['post_dial']['p90_ms']}), "
        f"TLS {tls['post_dial']['p50_ms']}ms (p90 {tls['post_dial']['p90_ms']}; "
        f"{setup['tls_over_plain']['post_dial_p50']}x plain); "
        f"answer-to-audio p50 caller {heard['caller_hears_callee']['p50_ms']}ms "
        f"callee {heard['callee_hears_caller']['p50_ms']}ms, "
        f"TLS {heard_tls['caller_hears_callee']['p50_ms']} / {heard_tls['callee_hears_caller']['p50_ms']}ms; "
        f"one-way p50 {hub['p50_ms']}ms through hub (TLS {hub_tls['p50_ms']}ms) vs {direct['p50_ms']}ms "
        f"direct aiortc default ({latency['ratio_hub_to_direct_default_p50']}x); "
        f"hub {load['hub_cpu_pct_per_call']}% of a core per call @{load['calls']} calls "
        f"(bench {load['bench_cpu_core_share']:.2f} core, {load['calls_flowing']}/{load['calls']} flowing)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0], "5 calls, 1 latency round, 3 calls of load for 4 s")
    settings = Settings.for_mode(args.quick)
    targets = {
        "post_dial_p50_ms_max": TARGET_POST_DIAL_P50_MS,
        "post_dial_p50_tls_max_x_plain": TARGET_TLS_POST_DIAL_RATIO,
        "answer_to_audio_p50_ms_max_each_end": TARGET_ANSWER_TO_AUDIO_P50_MS,
        "through_hub_one_way_p50_ms_max": TARGET_HUB_ONE_WAY_P50_MS,
        "hub_cpu_pct_of_core_per_call_max": TARGET_HUB_CPU_PCT_PER_CALL,
    }
    return run_and_report(args, lambda workdir: run(settings, workdir), targets, environment, verdict, summary_line)


if __name__ == "__main__":
    sys.exit(main())
