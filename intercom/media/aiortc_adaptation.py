"""Every adaptation of aiortc and aioice internals, in one place.

Checked against aiortc 1.16.0 and aioice 0.13.0 (:data:`TESTED_WITH`). :func:`check_compatibility`
names what changed when either moves; ``tests/media/test_aiortc_adaptation.py`` runs it, and each
adaptation also refuses to install on an object that lacks what it replaces.

What is adapted, and why:

1. Host candidates. aioice offers every non-loopback interface and never 127.0.0.1, and its
   address list comes from a module-level function shared by every connection in the process.
   Here each aioice ``Connection`` gets its own ``get_component_candidates`` (an instance attribute
   wrapping the method) that gathers on the policy's addresses instead of the ones aioice passes.
   Only the connections of one peer connection change, so a hub and clients sharing a process may
   have different policies.

2. Receive buffering. ``RTCRtpReceiver`` builds ``JitterBuffer(capacity=16, prefetch=4)`` for audio
   (~80 ms one-way), and that buffer completes frame N only when packet N+1 arrives, so even
   ``prefetch=0`` costs a frame. Each audio receiver's private ``__jitter_buffer`` is replaced by a
   :class:`PlayoutBuffer` with the same ``add(packet) -> (pli, frame)`` contract: with 0 frames it
   hands on each packet as it arrives (late and duplicate packets are dropped), with N it is
   aiortc's buffer with ``prefetch=N``.

3. Opus passthrough. For a receiver that asks for it, the :class:`PlayoutBuffer` turns each frame
   into an ``av.Packet`` (payload, RTP timestamp as ``pts`` at 1/48000) and puts it straight on the
   remote track's private ``_queue``, returning nothing to the receiver, so its decoder thread
   stays idle and never builds a decoder. ``RTCRtpSender`` already sends an ``av.Packet`` from a
   track without encoding it (``Encoder.pack``). Nothing here touches the sender.

4. Closing during ICE. aioice's ``Connection.close()`` stops the consent checks only if they have
   started; when the check list has just completed but ``connect()`` has not yet woken up to read
   that, ``connect()`` starts them after the close and they run for the life of the process (a
   call hung up within ~20 ms of being answered left four such tasks). Each connection's
   ``query_consent`` becomes an instance attribute that returns at once once the connection is
   closing.

5. Opus decoding on the loop (see :mod:`.opus` for why). The :class:`PlayoutBuffer` of a receiver
   that decodes decodes Opus itself, to 48 kHz mono s16, and puts the frames on the remote track
   as passthrough puts packets, returning nothing to aiortc's decoder thread. It reads a packet's
   codec from the receiver's private ``__codecs``; other codecs still go to that thread.

6. Opus encoding on the loop (see :mod:`.opus`). ``addTrack`` gives the sender of an audio track an
   :class:`~.opus.OpusEncodedTrack` around it instead, which encodes while the transceiver's
   negotiated codec is Opus: the sender packs the packets as they are, as in adaptation 3, and
   never uses its executor. A sender sends no audio-level header extension for packets (as the
   hub's forwarding legs never did).

7. Closing during DTLS. ``RTCPeerConnection.close()`` stops each sender and receiver, and they do
   nothing if they have not started; but a ``__connect`` that was waiting for DTLS goes on to
   ``sender.send()`` and ``receiver.receive()`` once the handshake completes, after the close, and
   those start RTP and RTCP tasks that nothing stops (2 leaked tasks in 4 of 10 runs of a test
   that closes at different points of the handshake). Each sender's ``send`` and receiver's
   ``receive`` become instance attributes that do nothing once the peer connection is closing.
"""

from __future__ import annotations

import asyncio
import fractions
import importlib.metadata
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aioice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs.opus import OpusEncoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcicetransport import RTCIceGatherer
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtcsessiondescription import RTCSessionDescription
from aiortc.rtp import RtpPacket

from .opus import OpusEncodedTrack, opus_decoder

log = logging.getLogger(__name__)

TESTED_WITH = {"aiortc": "1.16.0", "aioice": "0.13.0"}

JITTER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"
CODECS_ATTRIBUTE = "_RTCRtpReceiver__codecs"
OPUS_TIME_BASE = fractions.Fraction(1, 48000)
MAX_MISORDER = 100  # a packet further behind than this starts a new sequence (as aiortc's buffer decides)
TRACK_QUEUE = 5  # packets or frames (100 ms) a remote track keeps for a slow reader before dropping the oldest


class AiortcIncompatible(RuntimeError):
    """aiortc or aioice no longer has an internal this module adapts."""


class AdaptedPeerConnection(RTCPeerConnection):
    """An ``RTCPeerConnection`` whose transports, audio receivers and added audio tracks get this module's adaptations.

    Built by :func:`intercom.media.policy.new_peer_connection`; every transceiver is adapted before
    aiortc gathers candidates (start of ``setLocalDescription``) and before it starts receiving
    (end of ``setRemoteDescription``, which creates the transceivers of an offer and schedules
    the connection).
    """

    def __init__(
        self,
        configuration: RTCConfiguration,
        *,
        host_addresses: Sequence[str],
        jitter_frames: int,
        opus_passthrough: bool,
    ) -> None:
        super().__init__(configuration)
        self.closing = False
        self.host_addresses = tuple(host_addresses)
        self.jitter_frames = jitter_frames
        self.opus_passthrough = opus_passthrough

    def addTrack(self, track: MediaStreamTrack) -> RTCRtpSender:
        sender = super().addTrack(track)
        if track.kind == "audio":  # adaptation 6
            transceiver = next(transceiver for transceiver in self.getTransceivers() if transceiver.sender is sender)
            sender.replaceTrack(OpusEncodedTrack(track, lambda: negotiated_mime_type(transceiver) == "audio/opus"))
        return sender

    async def close(self) -> None:
        self.closing = True  # adaptation 7
        await super().close()

    async def setLocalDescription(self, sessionDescription: RTCSessionDescription) -> None:
        self._adapt()
        await super().setLocalDescription(sessionDescription)

    async def setRemoteDescription(self, sessionDescription: RTCSessionDescription) -> None:
        await super().setRemoteDescription(sessionDescription)
        self._adapt()

    def _adapt(self) -> None:
        gatherers = [transceiver.receiver.transport.transport.iceGatherer for transceiver in self.getTransceivers()]
        if self.sctp is not None:
            gatherers.append(self.sctp.transport.transport.iceGatherer)
        for gatherer in gatherers:
            no_consent_after_close(gatherer)
            if self.host_addresses:
                gather_on(gatherer, self.host_addresses)
        for transceiver in self.getTransceivers():
            not_after_close(self, transceiver.sender, "send")
            not_after_close(self, transceiver.receiver, "receive")
            if transceiver.kind == "audio":
                install_playout(transceiver.receiver, self.jitter_frames, self.opus_passthrough)


def not_after_close(connection: AdaptedPeerConnection, part: RTCRtpSender | RTCRtpReceiver, method: str) -> None:
    """Make ``part.<method>`` (a sender's ``send``, a receiver's ``receive``) do nothing once
    ``connection`` is closing (adaptation 7)."""
    if method in vars(part):
        return
    start = getattr(part, method)

    async def start_unless_closing(parameters: object) -> None:
        if not connection.closing:
            await start(parameters)

    setattr(part, method, start_unless_closing)


def gather_on(gatherer: RTCIceGatherer, addresses: Sequence[str]) -> None:
    """Make ``gatherer`` offer host candidates on ``addresses`` only (adaptation 1)."""
    connection = gatherer._connection
    if "get_component_candidates" in vars(connection):
        return
    if not callable(getattr(connection, "get_component_candidates", None)):
        raise AiortcIncompatible(f"aioice {aioice.__version__}: Connection.get_component_candidates is gone")
    gather = connection.get_component_candidates
    chosen = list(addresses)

    async def get_component_candidates(
        component: int, addresses: list[str], timeout: int = 5
    ) -> list[aioice.Candidate]:
        return await gather(component=component, addresses=chosen, timeout=timeout)

    connection.get_component_candidates = get_component_candidates


def no_consent_after_close(gatherer: RTCIceGatherer) -> None:
    """Keep a closed aioice connection from starting consent checks (adaptation 4)."""
    connection = gatherer._connection
    if "query_consent" in vars(connection):
        return
    if not hasattr(connection, "_closing") or not callable(getattr(connection, "query_consent", None)):
        raise AiortcIncompatible(f"aioice {aioice.__version__}: Connection._closing or query_consent is gone")
    query_consent = connection.query_consent

    async def query_consent_unless_closed() -> None:
        if not connection._closing:
            await query_consent()

    connection.query_consent = query_consent_unless_closed


@dataclass
class PlayoutStats:
    """Counts of what a :class:`PlayoutBuffer` did with the packets its receiver gave it."""

    received: int = 0
    late: int = 0  # dropped when handing on at once: a later packet had gone already, or a duplicate
    decoded: int = 0  # frames decoded: Opus here, other codecs by aiortc's decoder thread
    passed_on: int = 0  # Opus packets put on the remote track undecoded
    overflowed: int = 0  # packets or frames dropped from the remote track because it was not being read


class PlayoutBuffer:
    """Stands in for an audio receiver's ``JitterBuffer`` (adaptations 2, 3 and 5)."""

    def __init__(self, receiver: RTCRtpReceiver, frames: int, passthrough: bool) -> None:
        self._receiver = receiver
        self._reorder = JitterBuffer(capacity=_capacity_for(frames), prefetch=frames) if frames else None
        self._last_sequence: int | None = None
        self._first_timestamp: int | None = None
        self._decoder: av.CodecContext | None = None
        self.frames = frames
        self.passthrough = passthrough
        self.stats = PlayoutStats()

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Take one RTP packet; return ``(pli, frame)`` as aiortc's buffer does (``pli`` is for video)."""
        self.stats.received += 1
        frame = self._reorder.add(packet)[1] if self._reorder is not None else self._at_once(packet)
        if frame is None:
            return False, None
        if self.passthrough:
            self.stats.passed_on += self._hand_on(self._packet(frame))
            return False, None
        self.stats.decoded += 1
        if not self._is_opus(packet):
            return False, frame
        for decoded in self._decode(frame):
            self._hand_on(decoded)
        return False, None

    def discard_queued(self) -> None:
        """Drop the packets waiting on the remote track, so a new reader starts with fresh audio."""
        queue = self._track_queue()
        if queue is None:
            return
        ended = False
        while not queue.empty():
            ended = queue.get_nowait() is None or ended
        if ended:
            queue.put_nowait(None)  # aiortc's end-of-track marker must survive

    def _at_once(self, packet: RtpPacket) -> JitterFrame | None:
        # Audio codecs send one frame per packet and aiortc leaves their payloads as they are.
        if self._last_sequence is not None:
            ahead = (packet.sequence_number - self._last_sequence) & 0xFFFF
            if ahead == 0 or ahead > 0xFFFF - MAX_MISORDER:
                self.stats.late += 1
                return None
        self._last_sequence = packet.sequence_number
        return JitterFrame(data=packet.payload, timestamp=packet.timestamp)

    def _packet(self, frame: JitterFrame) -> av.Packet:
        if self._first_timestamp is None:
            self._first_timestamp = frame.timestamp
        packet = av.Packet(frame.data)
        # Modulo 2**32 like RTP itself: the sender adds its own origin with the same wrap.
        packet.pts = (frame.timestamp - self._first_timestamp) & 0xFFFFFFFF
        packet.time_base = OPUS_TIME_BASE
        return packet

    def _is_opus(self, packet: RtpPacket) -> bool:
        codec = getattr(self._receiver, CODECS_ATTRIBUTE).get(packet.payload_type)
        return codec is not None and codec.mimeType.lower() == "audio/opus"

    def _decode(self, frame: JitterFrame) -> list[av.AudioFrame]:
        if self._decoder is None:
            self._decoder = opus_decoder()
        try:
            return self._decoder.decode(self._packet(frame))
        except av.FFmpegError as exc:  # as aiortc: skip the frame, keep the decoder's state
            log.warning("cannot decode an Opus frame: %s", exc)
            return []

    def _hand_on(self, item: av.Packet | av.AudioFrame) -> bool:
        """Put ``item`` on the remote track, dropping the oldest for a slow reader; False if not put."""
        queue = self._track_queue()
        if queue is None:
            return False
        if queue.qsize() >= TRACK_QUEUE:
            oldest = queue.get_nowait()
            if oldest is None:  # the track is ending
                queue.put_nowait(None)
                return False
            self.stats.overflowed += 1
        queue.put_nowait(item)
        return True

    def _track_queue(self) -> asyncio.Queue[object] | None:
        track = self._receiver.track
        if track is None or track.readyState != "live":
            return None
        return track._queue


def install_playout(receiver: RTCRtpReceiver, frames: int, passthrough: bool) -> None:
    """Give ``receiver`` a :class:`PlayoutBuffer` (once; later calls keep the first)."""
    if not hasattr(receiver, JITTER_ATTRIBUTE):
        raise AiortcIncompatible(f"aiortc {_version('aiortc')}: RTCRtpReceiver has no {JITTER_ATTRIBUTE}")
    if not isinstance(getattr(receiver, JITTER_ATTRIBUTE), PlayoutBuffer):
        setattr(receiver, JITTER_ATTRIBUTE, PlayoutBuffer(receiver, frames, passthrough))


def playout_of(receiver: RTCRtpReceiver) -> PlayoutBuffer | None:
    """The :class:`PlayoutBuffer` of ``receiver``, or None if it was not built by this module."""
    buffer = getattr(receiver, JITTER_ATTRIBUTE, None)
    return buffer if isinstance(buffer, PlayoutBuffer) else None


def packets_received(connection: RTCPeerConnection) -> int:
    """RTP packets the audio receivers of ``connection`` have taken so far.

    What a media timeout watches: the :class:`PlayoutBuffer` counts every packet it is given,
    bridged or not, so watching costs nothing per packet. A muted unit still sends (silence, see
    :class:`~.tracks.MutableSource`); only a peer that stopped sending leaves the count still.
    """
    playouts = (playout_of(transceiver.receiver) for transceiver in connection.getTransceivers())
    return sum(playout.stats.received for playout in playouts if playout is not None)


def negotiated_mime_type(transceiver: RTCRtpTransceiver) -> str | None:
    """The codec the transceiver sends and receives with (``"audio/opus"``), None before negotiation."""
    codecs = transceiver._codecs
    return codecs[0].mimeType.lower() if codecs else None


def _capacity_for(frames: int) -> int:
    capacity = 16  # aiortc's own for four frames; the buffer wants a power of two with room to spare
    while capacity < 4 * frames:
        capacity *= 2
    return capacity


def _version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def check_compatibility() -> None:
    """Raise :class:`AiortcIncompatible` listing every internal above that is missing or changed."""
    problems = [what for what, holds in _assumptions() if not _holds(holds)]
    if problems:
        found = ", ".join(f"{name} {_version(name)}" for name in TESTED_WITH)
        tested = ", ".join(f"{name} {version}" for name, version in TESTED_WITH.items())
        raise AiortcIncompatible(
            f"intercom.media.aiortc_adaptation was written for {tested}; with {found} these no longer hold:\n- "
            + "\n- ".join(problems)
        )


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:
        return False


def _parameters(function: Callable[..., object]) -> list[str]:
    return list(inspect.signature(function).parameters)


def _source(function: Callable[..., object]) -> str:
    return inspect.getsource(function)


def _assumptions() -> list[tuple[str, Callable[[], bool]]]:
    connection = aioice.Connection
    receiver = RTCRtpReceiver
    return [
        (
            "aioice Connection.get_component_candidates(component, addresses, timeout) exists",
            lambda: _parameters(connection.get_component_candidates) == ["self", "component", "addresses", "timeout"],
        ),
        (
            "aioice Connection.gather_candidates calls self.get_component_candidates(addresses=...)",
            lambda: "self.get_component_candidates(" in _source(connection.gather_candidates),
        ),
        (
            "aioice Connection.connect starts self.query_consent(), and close() sets self._closing",
            lambda: (
                "self.query_consent()" in _source(connection.connect)
                and "self._closing = True" in _source(connection.close)
            ),
        ),
        (
            "RTCIceGatherer keeps its aioice Connection in _connection",
            lambda: isinstance(RTCIceGatherer(iceServers=[])._connection, connection),
        ),
        (
            f"RTCRtpReceiver keeps a JitterBuffer in {JITTER_ATTRIBUTE}",
            lambda: "self.__jitter_buffer = JitterBuffer(" in _source(receiver.__init__),
        ),
        (
            f"RTCRtpReceiver maps payload types to codecs in {CODECS_ATTRIBUTE}",
            lambda: "self.__codecs[codec.payloadType] = codec" in _source(receiver.receive),
        ),
        (
            "RTCRtpReceiver._handle_rtp_packet frames audio with self.__jitter_buffer.add(packet)",
            lambda: "self.__jitter_buffer.add(packet)" in _source(receiver._handle_rtp_packet),
        ),
        (
            "JitterBuffer(capacity, prefetch, is_video) and JitterFrame(data, timestamp)",
            lambda: (
                _parameters(JitterBuffer.__init__) == ["self", "capacity", "prefetch", "is_video"]
                and _parameters(JitterFrame.__init__) == ["self", "data", "timestamp"]
            ),
        ),
        (
            "RemoteStreamTrack reads its frames from an asyncio.Queue in _queue",
            lambda: isinstance(RemoteStreamTrack("audio")._queue, asyncio.Queue),
        ),
        (
            "RTCRtpSender packs an av.Packet from its track without encoding it (Encoder.pack)",
            lambda: (
                "self.__encoder.pack(data)" in _source(RTCRtpSender._next_encoded_frame)
                and _parameters(OpusEncoder.pack) == ["self", "packet"]
            ),
        ),
        (
            "RTCPeerConnection connects with sender.send(parameters) and receiver.receive(parameters)",
            lambda: (
                "await transceiver.sender.send(" in _source(RTCPeerConnection._RTCPeerConnection__connect)
                and "await transceiver.receiver.receive(" in _source(RTCPeerConnection._RTCPeerConnection__connect)
                and _parameters(RTCRtpSender.send) == ["self", "parameters"]
                and _parameters(RTCRtpReceiver.receive) == ["self", "parameters"]
            ),
        ),
        (
            "RTCRtpTransceiver keeps the negotiated codecs in _codecs",
            lambda: (
                "self._codecs" in _source(RTCRtpTransceiver.__init__)
                and "transceiver._codecs = common" in _source(RTCPeerConnection.setRemoteDescription)
            ),
        ),
    ]
