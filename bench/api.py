"""Voice API benchmark: call-flow REST latency next to ``/healthz``, and INVITE to the first RTP of a ``say`` step.

Run from the repository root::

    .venv/bin/python bench/api.py            # full run (about 25 s)
    .venv/bin/python bench/api.py --quick    # smoke test
    .venv/bin/python bench/api.py --json-out result.json

What it does, all on 127.0.0.1, each phase on a hub process of its own (a temporary data directory,
a key made by ``intercom keys create``):

1. rest: one ``httpx.AsyncClient`` (one kept-alive HTTP/1.1 connection, one request at a time)
   sends N ``POST /v1/call-flows`` (a flow of transfer, say, record and hangup, a new id each),
   N ``GET /v1/call-flows/{id}`` and, as the floor, N ``GET /healthz`` (same server, no key, no
   database), alternating in blocks; each request is timed from ``send()`` to the body read, and
   the hub's CPU is read per block of each kind;
2. say: an SDK client (``intercom.sdk.Client``, a token whose ``client.outgoing`` runs a flow whose
   first step says a fixed sentence) places calls one after another against ``intercom hub
   --ice-host 127.0.0.1``, each hung up as soon as the prompt's audio arrived. The first call's
   prompt is not cached (espeak-ng runs; it is also the hub process's first call) and is reported
   apart from the rest. Timed at the client: the INVITE frame handed to the WebSocket (just before
   the write), and the RTP packet carrying the first audio frame (a decoded frame with a sample >=
   ``AUDIO_PEAK``) reaching the client's Opus decoder; the client receives with ``jitter_frames=0``,
   so nothing holds the packet before that. Between the calls, the baseline: two peer connections in this
   process (``new_peer_connection`` with the loopback policy, no hub), one sending a tone, set up
   from the offer to the first audio at the other end: what ICE and DTLS cost any call;
3. say_hub_side: the same calls against a hub process that runs the same CLI through a script
   that wraps some hub methods to note ``time.monotonic()`` (no hub code changed): the INVITE
   frame arriving, the 200 sent, ICE and DTLS connected, the first prompt frame handed to the
   sender (``FlowAudio.first_audio_at``). Both processes read the same system-wide monotonic
   clock, so the client's and the hub's moments line up into one breakdown.

It prints one JSON object with every figure, the targets and pass/fail, then a one-line summary.
Exit status: 0 when every target is met, 1 when one is missed, 2 on error or timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from harness import (
    HOST,
    CpuWindow,
    cpu_seconds,
    create_key,
    fresh_hub,
    host_environment,
    hub_metric,
    package_versions,
    parse_args,
    percentile,
    run_and_report,
    wait_phase,
)
from websockets.asyncio.client import ClientConnection

import intercom.sdk.client as sdk_client
from intercom.auth import AccessKey, IncomingCapability, OutgoingCapability, mint_token
from intercom.hub import Storage, blocking
from intercom.hub.callflows import CallFlow, SayOptions
from intercom.media import MediaPolicy, RecordingSink, ToneSource, new_peer_connection, speak
from intercom.media.aiortc_adaptation import PlayoutBuffer
from intercom.media.tracks import AUDIO_PEAK, FRAME_SAMPLES
from intercom.sdk import CallAudio, CallStatus, Client
from intercom.transport.connection import SipConnection

PHASE_TIMEOUT = 120.0  # one phase; a hub that stops answering fails the run instead of hanging it
STEP_TIMEOUT = 10.0  # one request, or one call's wait for its audio or its hang-up

TARGET_SAY_FIRST_RTP_P50_MS = 150.0  # cached prompt, INVITE sent to its first audio packet at the client

LOOPBACK = (HOST,)
HUB_ARGS = ("--ice-host", HOST)
HUB_LAUNCH = " ".join(("intercom hub", *HUB_ARGS))
# The caller receives without a playout buffer, so its decoder sees each packet as it arrives.
CLIENT_POLICY = MediaPolicy(host_addresses=LOOPBACK, jitter_frames=0)
SENDER_POLICY = MediaPolicy(host_addresses=LOOPBACK)  # the tone's end of the baseline, as in bench/calls.py
SAY_FLOW = "say"
CALLER = "benchdoor"
SENTENCE = "Nobody is home. Please leave a message after the tone."
VOICE = SayOptions(payload=SENTENCE, language="en-GB", voice="female")
CALL_GAP_S = 0.1  # between calls: lets the hub close the previous call's media
TONE_HZ = 440.0

CALL_ID = re.compile(r"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.MULTILINE | re.IGNORECASE)
CSEQ_INVITE = re.compile(r"^CSeq[ \t]*:[ \t]*\d+[ \t]+INVITE\b", re.MULTILINE | re.IGNORECASE)

# The hub of the say_hub_side phase: ``intercom.cli.main`` with the arguments after the first,
# once a few hub methods are wrapped to note when they run. One JSON line per INVITE goes to the
# file named by the first argument when the hub is done with that call.
INSTRUMENTED_HUB = r"""
import contextvars, gc, json, re, sys, time

from intercom.cli import main
from intercom.hub import steps
from intercom.hub.call_service import CallService
from intercom.hub.calls import HubCall
from intercom.hub.legs import CallerLeg
from intercom.media import FlowAudio
from intercom.transport.connection import SipConnection

OUT = open(sys.argv[1], "a", buffering=1)
CALL_ID = re.compile(r"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.MULTILINE | re.IGNORECASE)
STAMPS = contextvars.ContextVar("stamps")
ARRIVED = {}  # Call-ID -> when its INVITE frame reached the SIP connection
now = time.monotonic

PAUSES = []  # (end, seconds) of the latest garbage collections
collecting = [0.0]
def note_collection(phase, info):
    if phase == "start":
        collecting[0] = now()
    else:
        end = now()
        PAUSES.append((end, end - collecting[0]))
        del PAUSES[:-1000]
gc.callbacks.append(note_collection)

receive = SipConnection.receive
def timed_receive(self, frame):
    head = frame[:7] if isinstance(frame, str) else frame[:7].decode(errors="replace")
    if head == "INVITE ":
        text = frame if isinstance(frame, str) else frame.decode(errors="replace")
        found = CALL_ID.search(text)
        if found:
            ARRIVED[found.group(1)] = now()
    return receive(self, frame)
SipConnection.receive = timed_receive

invite = CallService.invite
async def timed_invite(self, connection, transaction, request):
    stamps = {"call_id": request.call_id, "frame_received": ARRIVED.pop(request.call_id, None), "handler": now()}
    STAMPS.set(stamps)
    try:
        await invite(self, connection, transaction, request)
    finally:
        stamps["ended"] = now()
        audio = stamps.pop("_audio", None)
        if audio is not None:
            stamps["first_frame"] = getattr(audio, "bench_first_frame", None)
            stamps["first_prompt_frame"] = getattr(audio, "bench_first_prompt", None)
            stamps["first_audio"] = audio.first_audio_at
        start, stop = stamps["frame_received"] or stamps["handler"], stamps.get("first_audio") or stamps["ended"]
        pauses = [seconds for end, seconds in PAUSES if start <= end <= stop]
        stamps["gc_seconds_to_first_audio"], stamps["gc_longest"] = sum(pauses), max(pauses, default=0.0)
        OUT.write(json.dumps(stamps) + "\n")
CallService.invite = timed_invite

# Sends are noted just before the write: a note taken after it can come late, when the kernel
# runs the woken reader (the client, on this machine's other core or this one) first.
send_response = SipConnection.send_response
def timed_send_response(self, transaction, response):
    stamps = STAMPS.get(None)
    if stamps is not None and response.status_code == 200 and "INVITE" in (response.headers.get("CSeq") or ""):
        stamps.setdefault("ok_sent", now())
    send_response(self, transaction, response)
SipConnection.send_response = timed_send_response

answer = CallerLeg.answer
async def timed_answer(self, *args, **kwargs):
    stamps = STAMPS.get(None)
    if stamps is None:
        return await answer(self, *args, **kwargs)
    stamps["answer_started"] = now()
    pc = self.media
    pc.on("iceconnectionstatechange", lambda: stamps.setdefault("ice_" + pc.iceConnectionState, now()))
    pc.on("connectionstatechange", lambda: stamps.setdefault("connection_" + pc.connectionState, now()))
    set_remote, set_local = pc.setRemoteDescription, pc.setLocalDescription
    async def remote(description):
        await set_remote(description)
        stamps["remote_description_set"] = now()
    async def local(description):
        stamps["answer_created"] = now()
        await set_local(description)
        stamps["local_description_set"] = now()
    pc.setRemoteDescription, pc.setLocalDescription = remote, local
    try:
        await answer(self, *args, **kwargs)
    finally:
        del pc.setRemoteDescription, pc.setLocalDescription
CallerLeg.answer = timed_answer

establish = HubCall.establish
async def timed_establish(self):
    media = await establish(self)
    stamps = STAMPS.get(None)
    if stamps is not None and media is not None:
        stamps.setdefault("_audio", media.audio)
    return media
HubCall.establish = timed_establish

say = steps.ACTIONS["say"]
async def timed_say(run):
    stamps = STAMPS.get(None)
    if stamps is not None:
        stamps.setdefault("say_started", now())
    return await say(run)
steps.ACTIONS["say"] = timed_say

speak = steps.speak
async def timed_speak(*args, **kwargs):
    samples = await speak(*args, **kwargs)
    stamps = STAMPS.get(None)
    if stamps is not None:
        stamps.setdefault("prompt_ready", now())
    return samples
steps.speak = timed_speak

next_samples = FlowAudio._next_samples  # called once per frame the sender pulls, once it is due
def timed_next_samples(self):
    if getattr(self, "bench_first_frame", None) is None:
        self.bench_first_frame = now()
    samples = next_samples(self)
    if samples is not None and getattr(self, "bench_first_prompt", None) is None:
        self.bench_first_prompt = now()
    return samples
FlowAudio._next_samples = timed_next_samples

sys.exit(main(sys.argv[2:]))
"""


@dataclass
class Settings:
    """How much each phase does: the full run, or a quick smoke test."""

    requests: int  # per kind of request
    warmup: int  # per kind, not counted
    blocks: int
    calls: int  # cached say calls per phase, after the first (uncached) one

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        return cls(50, 5, 5, 5) if quick else cls(500, 20, 10, 30)


# --- statistics --------------------------------------------------------------------------------


def summarise_ms(samples_s: list[float]) -> dict[str, float | int | None]:
    if not samples_s:
        return {"n": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None, "min_ms": None, "max_ms": None}
    values = sorted(sample * 1000 for sample in samples_s)
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.50), 2),
        "p90_ms": round(percentile(values, 0.90), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "mean_ms": round(sum(values) / len(values), 2),
        "min_ms": round(values[0], 2),
        "max_ms": round(values[-1], 2),
    }


def span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def in_ms(row: dict[str, float | None]) -> dict[str, float | None]:
    return {name: None if value is None else round(value * 1000, 2) for name, value in row.items()}


def summarise_rows(rows: list[dict[str, float | None]]) -> dict[str, dict[str, float | int | None]]:
    """Each column of ``rows`` summarised; a moment that was not seen leaves its column shorter (``n``)."""
    names = list(rows[0]) if rows else []
    return {name: summarise_ms([value for row in rows if (value := row[name]) is not None]) for name in names}


# --- phase 1: REST -----------------------------------------------------------------------------


def flow_body(index: int) -> dict[str, Any]:
    """A door's flow as an installer would write it: ring two desks, then take a message."""
    return {
        "id": f"bench-{index:05d}",
        "title": "Front door",
        "steps": [
            {
                "id": "ring",
                "action": "transfer",
                "options": {"destination": "client:desk,client:kitchen", "timeout": 20},
            },
            {"id": "nobody", "action": "say", "options": {"payload": SENTENCE, "language": "en-GB", "voice": "female"}},
            {
                "id": "message",
                "action": "record",
                "options": {
                    "maxLength": 60,
                    "timeout": 5,
                    "finishOnKey": "#",
                    "onFinish": "https://example.com/voicemail",
                },
            },
            {"id": "bye", "action": "hangup"},
        ],
    }


@dataclass
class RestSeries:
    """One kind of request: how to build it, what it must answer, and what it took."""

    expected: int
    build: Callable[[], httpx.Request]
    check: Callable[[httpx.Response], None] = lambda response: None
    samples: list[float] = field(default_factory=list)
    hub_cpu_s: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    async def run(self, http: httpx.AsyncClient, count: int, hub_pid: int, keep: bool = True) -> None:
        """Time ``send()`` to the body read only: building and checking happen outside the clock."""
        cpu_before = cpu_seconds(hub_pid)
        for _ in range(count):
            request = self.build()
            started = time.perf_counter()
            response = await http.send(request)
            elapsed = time.perf_counter() - started
            if keep:
                self.samples.append(elapsed)
            self.statuses[response.status_code] += 1
            try:
                if response.status_code != self.expected:
                    raise RuntimeError(
                        f"{request.method} {request.url.path}: {response.status_code} {response.text[:200]}"
                    )
                self.check(response)
            except Exception as exc:
                self.errors.append(str(exc))
        if keep:
            self.hub_cpu_s += cpu_seconds(hub_pid) - cpu_before

    def summary(self) -> dict[str, object]:
        return {
            **summarise_ms(self.samples),
            "hub_cpu_us_per_request": round(self.hub_cpu_s * 1e6 / max(1, len(self.samples)), 1),
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "errors": len(self.errors),
            "first_errors": self.errors[:3],
        }


async def measure_rest(port: int, hub_pid: int, key: AccessKey, settings: Settings) -> dict[str, object]:
    """healthz, create and get, in turn block after block, so that all three see the same machine."""
    auth = {"Authorization": f"AccessKey {key.secret}"}
    created: list[str] = []
    counter = iter(range(1_000_000))
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=STEP_TIMEOUT) as http:

        def create() -> httpx.Request:
            return http.build_request("POST", "/v1/call-flows", json=flow_body(next(counter)), headers=auth)

        def check_created(response: httpx.Response) -> None:
            sent = json.loads(response.request.content)["id"]
            if response.json()["data"][0]["id"] != sent:
                raise RuntimeError(f"POST /v1/call-flows stored another id than {sent}")
            created.append(sent)

        gets = iter(range(1_000_000))

        def get() -> httpx.Request:
            flow_id = created[next(gets) % len(created)]
            return http.build_request("GET", f"/v1/call-flows/{flow_id}", headers=auth)

        def check_got(response: httpx.Response) -> None:
            asked = response.request.url.path.rsplit("/", 1)[1]
            flow = response.json()["data"][0]
            if flow["id"] != asked or len(flow["steps"]) != 4:
                raise RuntimeError(f"GET /v1/call-flows/{asked} answered another flow")

        series = {
            "healthz": RestSeries(200, lambda: http.build_request("GET", "/healthz")),
            "create": RestSeries(201, create, check_created),
            "get": RestSeries(200, get, check_got),
        }
        for kind in series.values():  # warm-up: answers checked and counted, times not kept
            await kind.run(http, settings.warmup, hub_pid, keep=False)
        per_block = max(1, settings.requests // settings.blocks)
        cpu = CpuWindow(hub_pid)
        while len(series["get"].samples) < settings.requests:
            for kind in series.values():
                await kind.run(http, min(per_block, settings.requests - len(kind.samples)), hub_pid)
        cpu.stop()
    healthz_p50 = percentile(sorted(series["healthz"].samples), 0.5)
    body = json.dumps(flow_body(0)).encode()
    notes = [
        "the load generator used most of a core: httpx's own time is in every figure"
        if cpu.generator_bound
        else "the load generator had CPU to spare",
        *cpu.other_load_notes(),
    ]
    return {
        "client": "one httpx.AsyncClient: one kept-alive HTTP/1.1 connection, one request at a time",
        "timed": "send() to the response body read; requests built and answers checked outside the clock",
        "requests_per_kind": settings.requests,
        "warmup_per_kind": settings.warmup,
        "blocks": settings.blocks,
        "flow_body_bytes": len(body),
        "flow_steps": [step["action"] for step in flow_body(0)["steps"]],
        **{name: kind.summary() for name, kind in series.items()},
        "p50_x_healthz": {
            name: round(percentile(sorted(series[name].samples), 0.5) / healthz_p50, 2) for name in ("create", "get")
        },
        "hub_cpu_core_share": round(cpu.hub_share, 3),
        "bench_cpu_core_share": round(cpu.bench_share, 3),
        "other_cpu_core_share": round(cpu.other_share, 3),
        "elapsed_s": round(cpu.elapsed, 2),
        "notes": notes,
    }


# --- phases 2 and 3: a say step's first audio --------------------------------------------------


@dataclass
class CallProbe:
    """The moments of one call at the client (``time.monotonic()``, s)."""

    started: float  # just before start_call(), or the baseline's offer creation
    call_id: str | None = None
    invite_sent: float | None = None  # the INVITE frame written to the WebSocket
    ok_received: float | None = None  # the hub's 200 to it read from the WebSocket
    offer_made: float | None = None  # baseline: the offer's local description set (ICE gathered)
    answer_applied: float | None = None  # baseline: the answer set as remote description
    states: dict[str, float] = field(default_factory=dict)  # ice_* and connection_* of the client's peer connection
    first_packet: float | None = None  # the first RTP packet of the call at the decoder
    first_rtp: float | None = None  # the first RTP packet whose frame is audio, at the decoder
    sink: RecordingSink | None = None
    heard: asyncio.Event = field(default_factory=asyncio.Event)

    def watch(self, pc: RTCPeerConnection) -> None:
        def note(kind: str, state: Callable[[], str]) -> Callable[[], None]:
            return lambda: self.states.setdefault(f"{kind}_{state()}", time.monotonic())

        pc.on("iceconnectionstatechange", note("ice", lambda: pc.iceConnectionState))
        pc.on("connectionstatechange", note("connection", lambda: pc.connectionState))

    def decoded(self, arrived: float, frames: list[av.AudioFrame]) -> None:
        if self.first_packet is None:
            self.first_packet = arrived
        if self.first_rtp is None and any(peak(frame) >= AUDIO_PEAK for frame in frames):
            self.first_rtp = arrived
            self.heard.set()


def peak(frame: av.AudioFrame) -> int:
    return int(np.abs(frame.to_ndarray().astype(np.int32)).max(initial=0))


class ClientProbes:
    """Wraps, in this process only, where the client's moments happen: the WebSocket's send (the
    INVITE leaving), the SIP connection's receive (the 200 arriving), the SDK's peer connection
    factory (ICE and DTLS states) and the receive buffer's Opus decoding (the RTP packet carrying
    the first audio). Calls run one at a time, so what happens belongs to :attr:`current`."""

    def __init__(self) -> None:
        self.current: CallProbe | None = None
        self.tracks: dict[MediaStreamTrack, CallProbe] = {}  # received tracks whose audio is watched

    def sink(self, track: MediaStreamTrack) -> RecordingSink:
        """The SDK's sink factory: the default sink, with its track's packets watched."""
        sink = RecordingSink(track)
        if self.current is not None:
            self.tracks[track] = self.current
            self.current.sink = sink
        return sink

    @contextlib.contextmanager
    def installed(self) -> Iterator[ClientProbes]:
        probes = self
        send, receive, make_pc, decode = (
            ClientConnection.send,
            SipConnection.receive,
            sdk_client.new_peer_connection,
            PlayoutBuffer._decode,
        )

        async def timed_send(websocket: ClientConnection, message: Any, *args: Any, **kwargs: Any) -> None:
            # Noted just before the write: a note taken after it can come late, when the kernel
            # runs the woken reader (the hub) before this process gets the CPU back.
            probe = probes.current
            if probe is not None and probe.invite_sent is None and (call_id := invite_call_id(message)):
                probe.invite_sent, probe.call_id = time.monotonic(), call_id
            await send(websocket, message, *args, **kwargs)

        def timed_receive(connection: SipConnection, frame: str | bytes) -> None:
            probe = probes.current
            if probe is not None and probe.ok_received is None and probe.call_id is not None:
                text = frame if isinstance(frame, str) else frame.decode(errors="replace")
                found = CALL_ID.search(text)
                if text.startswith("SIP/2.0 200") and CSEQ_INVITE.search(text) and found and found[1] == probe.call_id:
                    probe.ok_received = time.monotonic()
            receive(connection, frame)

        def watched_pc(policy: MediaPolicy, **kwargs: Any) -> RTCPeerConnection:
            pc = make_pc(policy, **kwargs)
            if probes.current is not None:
                probes.current.watch(pc)
            return pc

        def timed_decode(buffer: PlayoutBuffer, frame: Any) -> list[av.AudioFrame]:
            arrived = time.monotonic()
            frames = decode(buffer, frame)
            probe = probes.tracks.get(buffer._receiver.track)  # type: ignore[arg-type]
            if probe is not None:
                probe.decoded(arrived, frames)
            return frames

        ClientConnection.send = timed_send  # type: ignore[method-assign]
        SipConnection.receive = timed_receive  # type: ignore[method-assign]
        sdk_client.new_peer_connection = watched_pc  # type: ignore[assignment]
        PlayoutBuffer._decode = timed_decode  # type: ignore[method-assign]
        try:
            yield self
        finally:
            ClientConnection.send = send  # type: ignore[method-assign]
            SipConnection.receive = receive  # type: ignore[method-assign]
            sdk_client.new_peer_connection = make_pc
            PlayoutBuffer._decode = decode  # type: ignore[method-assign]


def invite_call_id(message: object) -> str | None:
    """The Call-ID of an INVITE's text frame, None for any other frame."""
    if not isinstance(message, str) or not message.startswith("INVITE "):
        return None
    found = CALL_ID.search(message)
    return found[1] if found else None


async def first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def say_call(client: Client, probes: ClientProbes) -> CallProbe:
    """One call into the say flow, hung up once the prompt's first audio packet arrived."""
    probe = probes.current = CallProbe(started=time.monotonic())
    call = client.start_call()
    over = asyncio.Event()
    call.on("status", lambda status: over.set() if status in (CallStatus.FAILED, CallStatus.ENDED) else None)
    try:
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                await first_of(probe.heard, over)
        except TimeoutError:
            raise TimeoutError(f"no audio within {STEP_TIMEOUT:.0f} s (call {call.status})") from None
        if probe.first_rtp is None:
            raise RuntimeError(f"the call {call.status} before its prompt was heard")
    finally:
        probes.current = None
        async with asyncio.timeout(STEP_TIMEOUT):
            await call.disconnect()
        for track in [track for track, watched in probes.tracks.items() if watched is probe]:
            del probes.tracks[track]
    if probe.call_id != call.id:
        raise RuntimeError(f"the INVITE timed was {probe.call_id}, not the call's {call.id}")
    return probe


def client_row(probe: CallProbe) -> dict[str, float | None]:
    """What the client saw of one call; the first entry is the figure the target is about."""
    connected = probe.states.get("connection_connected")
    return {
        "invite_sent_to_first_audio_rtp": span(probe.invite_sent, probe.first_rtp),
        "invite_sent_to_first_audio_at_sink": span(
            probe.invite_sent, probe.sink.first_audio_at if probe.sink else None
        ),
        "start_call_to_invite_sent": span(probe.started, probe.invite_sent),  # the client's offer: not in the figure
        "invite_sent_to_200_received": span(probe.invite_sent, probe.ok_received),
        "200_received_to_ice_completed": span(probe.ok_received, probe.states.get("ice_completed")),
        "ice_completed_to_connected": span(probe.states.get("ice_completed"), connected),
        "connected_to_first_audio_rtp": span(connected, probe.first_rtp),
        "first_rtp_to_first_audio_rtp": span(probe.first_packet, probe.first_rtp),
    }


def hub_row(probe: CallProbe, hub: dict[str, Any]) -> dict[str, float | None]:
    """One call's breakdown from both ends (one monotonic clock); the first entry is the hub's own figure."""
    connected = hub.get("connection_connected")
    return {
        "hub_invite_received_to_first_prompt_frame": span(hub["frame_received"], hub.get("first_audio")),
        "client_invite_sent_to_hub_received": span(probe.invite_sent, hub["frame_received"]),
        "invite_received_to_handler": span(hub["frame_received"], hub["handler"]),
        "handler_to_say_step": span(hub["handler"], hub.get("say_started")),
        "say_step_to_answer_started": span(hub.get("say_started"), hub.get("answer_started")),
        "answer_set_remote_description": span(hub.get("answer_started"), hub.get("remote_description_set")),
        "answer_create_answer": span(hub.get("remote_description_set"), hub.get("answer_created")),
        "answer_set_local_description": span(hub.get("answer_created"), hub.get("local_description_set")),
        "local_description_to_200_sent": span(hub.get("local_description_set"), hub.get("ok_sent")),
        "invite_received_to_200_sent": span(hub["frame_received"], hub.get("ok_sent")),
        "200_sent_to_client_received": span(hub.get("ok_sent"), probe.ok_received),
        "200_sent_to_ice_completed": span(hub.get("ok_sent"), hub.get("ice_completed")),
        "ice_completed_to_dtls_connected": span(hub.get("ice_completed"), connected),
        "200_sent_to_connected": span(hub.get("ok_sent"), connected),
        "connected_to_first_frame_pulled": span(connected, hub.get("first_frame")),
        "first_frame_pulled_to_first_prompt_audio": span(hub.get("first_frame"), hub.get("first_audio")),
        "200_sent_to_prompt_ready": span(hub.get("ok_sent"), hub.get("prompt_ready")),
        "hub_prompt_frame_to_client_rtp": span(hub.get("first_audio"), probe.first_rtp),
        "hub_gc_pauses_to_first_prompt_frame": hub["gc_seconds_to_first_audio"],  # within the hub's figure
        "client_invite_sent_to_first_audio_rtp": span(probe.invite_sent, probe.first_rtp),
    }


# The baseline: no hub, no signalling. The receiving end offers, as the caller does.


async def p2p_setup(probes: ClientProbes) -> CallProbe:
    """Two peer connections in this process, SDP handed over directly; one sends a tone."""
    probe = CallProbe(started=time.monotonic())
    receiver, sender = new_peer_connection(CLIENT_POLICY), new_peer_connection(SENDER_POLICY)
    silence, tone = AudioStreamTrack(), ToneSource(TONE_HZ)
    probe.watch(receiver)
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            receiver.addTrack(silence)
            await receiver.setLocalDescription(await receiver.createOffer())
            probe.offer_made = time.monotonic()
            await sender.setRemoteDescription(receiver.localDescription)
            sender.addTrack(tone)
            await sender.setLocalDescription(await sender.createAnswer())
            await receiver.setRemoteDescription(sender.localDescription)
            probe.answer_applied = time.monotonic()
            # The received track exists from here, and no packet can arrive before ICE and DTLS.
            probes.tracks[receiver.getReceivers()[0].track] = probe
            await probe.heard.wait()
    finally:
        probes.tracks.pop(receiver.getReceivers()[0].track, None)
        await receiver.close()
        await sender.close()
        silence.stop()
        tone.stop()
    return probe


def p2p_row(probe: CallProbe) -> dict[str, float | None]:
    connected = probe.states.get("connection_connected")
    return {
        "offer_creation_to_first_audio_rtp": span(probe.started, probe.first_rtp),
        "offer_made_to_first_audio_rtp": span(probe.offer_made, probe.first_rtp),
        "offer_creation_to_offer_made": span(probe.started, probe.offer_made),
        "offer_made_to_answer_applied": span(probe.offer_made, probe.answer_applied),
        "answer_applied_to_ice_completed": span(probe.answer_applied, probe.states.get("ice_completed")),
        "ice_completed_to_connected": span(probe.states.get("ice_completed"), connected),
        "connected_to_first_audio_rtp": span(connected, probe.first_rtp),
    }


# --- hub state between calls ------------------------------------------------------------------


async def until_idle(port: int, key: AccessKey) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while await hub_metric(port, "intercom_calls", key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the hub still runs a call {STEP_TIMEOUT:.0f} s after the hang-up")
        await asyncio.sleep(0.02)


async def hub_stamps(path: Path, call_id: str) -> dict[str, Any]:
    """The instrumented hub's line for ``call_id``, written once it is done with the call."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        with contextlib.suppress(FileNotFoundError):
            for line in path.read_text().splitlines():
                stamps = json.loads(line)
                if stamps["call_id"] == call_id:
                    return stamps
        if time.monotonic() > deadline:
            raise TimeoutError(f"the instrumented hub wrote nothing for call {call_id}")
        await asyncio.sleep(0.02)


async def connected_client(port: int, key: AccessKey, probes: ClientProbes) -> Client:
    token = mint_token(key, [IncomingCapability(CALLER), OutgoingCapability(SAY_FLOW, CALLER)], ttl=3600)
    # No call-progress tones: they would add sinks of their own and nothing of the hub.
    audio = CallAudio(source=AudioStreamTrack, sink=probes.sink, policy=CLIENT_POLICY, tones=None)
    client = Client(host=f"{HOST}:{port}", refresh_token=lambda: token, secure=False, audio=audio)
    async with asyncio.timeout(STEP_TIMEOUT):
        await client.setup(jwt=token)
    return client


async def destroy(client: Client) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(STEP_TIMEOUT):
            await client.destroy()


async def measure_say(port: int, hub_pid: int, key: AccessKey, settings: Settings) -> dict[str, object]:
    """The first call (uncached prompt), then N calls, each followed by one baseline set-up."""
    probes = ClientProbes()
    rows: list[dict[str, float | None]] = []
    p2p_rows: list[dict[str, float | None]] = []
    hub_cpu_s = 0.0  # over the cached calls, from start_call() until the hub has closed the call
    with probes.installed():
        client = await connected_client(port, key, probes)
        try:
            first = client_row(await say_call(client, probes))
            await until_idle(port, key)
            for _ in range(settings.calls):
                await asyncio.sleep(CALL_GAP_S)
                cpu_before = cpu_seconds(hub_pid)
                rows.append(client_row(await say_call(client, probes)))
                await until_idle(port, key)
                hub_cpu_s += cpu_seconds(hub_pid) - cpu_before
                await asyncio.sleep(CALL_GAP_S)
                p2p_rows.append(p2p_row(await p2p_setup(probes)))
        finally:
            await destroy(client)
    return {
        "hub_launch": HUB_LAUNCH,
        "figure": (
            "invite_sent_to_first_audio_rtp: the INVITE frame handed to the client's WebSocket (just before "
            "the write) -> the RTP packet carrying the prompt's first audio frame (a sample >= AUDIO_PEAK once "
            "decoded) reaching the client's Opus decoder; the client's offer (start_call_to_invite_sent) is "
            "before it"
        ),
        "calls_cached": settings.calls,
        "first_call_uncached_ms": in_ms(first),
        "cached": summarise_rows(rows),
        "hub_cpu_ms_per_cached_call": round(hub_cpu_s * 1000 / max(1, settings.calls), 1),
        "p2p_baseline": {
            "what": (
                "two new_peer_connection in this process, no hub: the receiving end (jitter_frames=0) offers, "
                "the other answers and sends a 440 Hz tone; SDP handed over directly; one after each say call"
            ),
            "setups": len(p2p_rows),
            **summarise_rows(p2p_rows),
        },
    }


async def measure_say_hub_side(port: int, key: AccessKey, settings: Settings, stamps: Path) -> dict[str, object]:
    """The same calls against the instrumented hub: the hub's moments next to the client's."""
    probes = ClientProbes()
    rows: list[dict[str, float | None]] = []
    with probes.installed():
        client = await connected_client(port, key, probes)
        try:
            probe = await say_call(client, probes)
            first = hub_row(probe, await hub_stamps(stamps, probe.call_id or ""))
            for _ in range(settings.calls):
                await asyncio.sleep(CALL_GAP_S)
                probe = await say_call(client, probes)
                rows.append(hub_row(probe, await hub_stamps(stamps, probe.call_id or "")))
        finally:
            await destroy(client)
    return {
        "hub_launch": f"{HUB_LAUNCH}, run by intercom.cli.main after wrapping hub methods to note time.monotonic()",
        "figure": (
            "hub_invite_received_to_first_prompt_frame: the INVITE frame handed to the hub's SIP connection -> "
            "the first prompt frame with a sample >= AUDIO_PEAK handed to the sender (FlowAudio.first_audio_at), "
            "before Opus encoding and SRTP; hub_prompt_frame_to_client_rtp is the rest of the way to the client"
        ),
        "clock": "time.monotonic() in both processes: CLOCK_MONOTONIC, one clock for the whole machine",
        "calls_cached": settings.calls,
        "first_call_uncached_ms": in_ms(first),
        "cached": summarise_rows(rows),
    }


# --- the run -----------------------------------------------------------------------------------


async def prompt_facts(workdir: Path) -> dict[str, object]:
    """The sentence as the hub's espeak-ng speaks it: how long, and where its first audio frame is
    (frames before it would be the sentence's own lead-in, paced out at 20 ms each)."""
    samples = await speak(SENTENCE, VOICE.espeak_voice, VOICE.voice, workdir / "prompt")
    frames = samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    loud = np.flatnonzero(np.abs(frames.astype(np.int32)).max(axis=1) >= AUDIO_PEAK)
    return {
        "sentence": SENTENCE,
        "language": VOICE.language,
        "voice": VOICE.voice,
        "seconds": round(len(samples) / 48000, 2),
        "frames_before_first_audio": int(loud[0]) if len(loud) else None,
    }


def store_say_flow(data_dir: Path) -> None:
    steps = [
        {"id": "greet", "action": "say", "options": {"payload": SENTENCE, "language": VOICE.language}},
        {"id": "bye", "action": "hangup"},
    ]
    storage = Storage(data_dir)
    try:
        blocking(storage.create_call_flow(CallFlow.model_validate({"id": SAY_FLOW, "title": SAY_FLOW, "steps": steps})))
    finally:
        storage.close()


def espeak_version() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, timeout=10)
        return done.stdout.strip() or None
    return None


def environment() -> dict[str, object]:
    return {
        **host_environment(),
        "loadavg_at_end": os.getloadavg(),
        "hub_launch": HUB_LAUNCH,
        "client_policy": {"host_addresses": list(CLIENT_POLICY.host_addresses), "jitter_frames": 0},
        "espeak_ng": espeak_version(),
        **package_versions(
            ("intercom", "aiortc", "aioice", "av", "websockets", "uvicorn", "fastapi", "starlette", "pydantic", "httpx")
        ),
    }


async def run(settings: Settings, workdir: Path) -> dict[str, object]:
    """Every phase against a hub process of its own; the prompt cache is emptied before each say phase."""
    data_dir = workdir / "data"
    key = create_key(data_dir)
    store_say_flow(data_dir)
    prompt = await prompt_facts(workdir)
    # This process's own full collections (57 ms once, seen with gc.callbacks) stalled a timed
    # request: what is alive now (aiortc, httpx, numpy...) is left out of them from here on.
    gc.collect()
    gc.freeze()
    async with fresh_hub(data_dir, workdir, "rest") as (port, pid):
        rest = await wait_phase("rest", measure_rest(port, pid, key, settings), PHASE_TIMEOUT)
    shutil.rmtree(data_dir / "cache", ignore_errors=True)
    async with fresh_hub(data_dir, workdir, "say", HUB_ARGS) as (port, pid):
        say = await wait_phase("say", measure_say(port, pid, key, settings), PHASE_TIMEOUT)
    shutil.rmtree(data_dir / "cache", ignore_errors=True)
    stamps = workdir / "hub-stamps.jsonl"
    entry = ("-c", INSTRUMENTED_HUB, str(stamps))
    async with fresh_hub(data_dir, workdir, "say-hub-side", HUB_ARGS, entry=entry) as (port, _):
        hub_side = await wait_phase("say_hub_side", measure_say_hub_side(port, key, settings, stamps), PHASE_TIMEOUT)
    return {"rest": rest, "say": {"prompt": prompt, **say}, "say_hub_side": hub_side}


def figure(phase: dict[str, Any], name: str) -> float | None:
    return phase["cached"][name]["p50_ms"]


def verdict(figures: dict[str, dict[str, Any]]) -> dict[str, bool]:
    rest, say = figures["rest"], figures["say"]
    first_rtp = figure(say, "invite_sent_to_first_audio_rtp")
    passed = {
        "say_first_rtp": first_rtp is not None and first_rtp <= TARGET_SAY_FIRST_RTP_P50_MS,
        "rest_answers": all(rest[kind]["errors"] == 0 for kind in ("healthz", "create", "get")),
    }
    return {**passed, "all": all(passed.values())}


def summary_line(figures: dict[str, dict[str, Any]]) -> str:
    rest, say, hub = figures["rest"], figures["say"], figures["say_hub_side"]
    create, get, healthz = rest["create"], rest["get"], rest["healthz"]
    p2p = say["p2p_baseline"]
    return (
        f"api: create p50 {create['p50_ms']}ms p99 {create['p99_ms']}ms, get p50 {get['p50_ms']}ms "
        f"p99 {get['p99_ms']}ms (healthz p50 {healthz['p50_ms']}ms); "
        f"say first RTP p50 {figure(say, 'invite_sent_to_first_audio_rtp')}ms "
        f"(target <= {TARGET_SAY_FIRST_RTP_P50_MS:.0f}; uncached first call "
        f"{say['first_call_uncached_ms']['invite_sent_to_first_audio_rtp']}ms; hub-side "
        f"{figure(hub, 'hub_invite_received_to_first_prompt_frame')}ms) "
        f"vs p2p setup {p2p['offer_creation_to_first_audio_rtp']['p50_ms']}ms "
        f"(from the offer made {p2p['offer_made_to_first_audio_rtp']['p50_ms']}ms)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.splitlines()[0], "50 requests of each kind, 5 cached say calls per phase")
    settings = Settings.for_mode(args.quick)
    targets = {
        "say_invite_sent_to_first_audio_rtp_p50_ms_max_cached": TARGET_SAY_FIRST_RTP_P50_MS,
        "rest_errors_max": 0,
    }
    return run_and_report(args, lambda workdir: run(settings, workdir), targets, environment, verdict, summary_line)


if __name__ == "__main__":
    sys.exit(main())
