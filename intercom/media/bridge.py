"""Audio between two hub legs, forwarded as Opus packets, never decoded.

Decoding one leg and re-encoding for the other costs a full receive stage of delay and, in
aiortc, so much event-loop time that a process collapses at 5-10 calls (DESIGN.md). Both legs are
built with ``new_peer_connection(policy, opus_passthrough=True)``: their receivers hand on Opus
packets, and :class:`AudioBridge` puts each packet from one leg's receiver on the other leg's
sender, which sends an ``av.Packet`` as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .aiortc_adaptation import OPUS_TIME_BASE, PlayoutBuffer, negotiated_mime_type, playout_of
from .tasks import cancel_and_wait

OPUS_SILENCE = b"\xf8\xff\xfe"  # libopus's packet for 20 ms of digital silence (CELT, fullband)
FRAME_SAMPLES = 960
RELAY_QUEUE = 5  # packets (100 ms) a relay keeps if its sender falls behind, dropping the oldest

# Sees each packet a bridge forwards (to record a call): ``tap(0, packet)`` for A to B, 1 for B to A.
PacketTap = Callable[[int, av.Packet], None]


class PacketRelay(MediaStreamTrack):
    """The track a bridged leg's sender reads: the packets the bridge pushes, in order."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[av.Packet | None] = asyncio.Queue()
        self._next_pts = 0

    def push(self, packet: av.Packet) -> None:
        if self._queue.qsize() >= RELAY_QUEUE:
            self._queue.get_nowait()
        self._queue.put_nowait(packet)

    def release(self) -> None:
        """Let a sender waiting in :meth:`recv` go on, with one silent packet, to the track it has now.

        aiortc's sender ends for good if its track's ``recv`` raises, so a relay never does that
        to a waiting sender: it hands over a valid frame instead.
        """
        self._queue.put_nowait(None)
        self.stop()

    async def recv(self) -> av.Packet:
        if self.readyState != "live" and self._queue.empty():
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            packet = av.Packet(OPUS_SILENCE)
            packet.pts, packet.time_base = self._next_pts, OPUS_TIME_BASE
        self._next_pts = packet.pts + FRAME_SAMPLES
        return packet


@dataclass(frozen=True)
class _Leg:
    transceiver: RTCRtpTransceiver
    playout: PlayoutBuffer


class _Direction:
    """One way of a bridge: a task moving packets from one leg's remote track to the other's sender."""

    def __init__(self, source: _Leg, target: _Leg, name: str, tap: Callable[[av.Packet], None] | None) -> None:
        self.track = source.transceiver.receiver.track
        self.tap = tap
        self.sender = target.transceiver.sender
        self.previous = self.sender.track
        self.relay = PacketRelay()
        self.forwarded = 0
        source.playout.discard_queued()  # audio from before the bridge would only add delay
        self.sender.replaceTrack(self.relay)
        self.task = asyncio.create_task(self._pump(), name=name)

    async def _pump(self) -> None:
        try:
            while True:
                packet = await self.track.recv()
                self.relay.push(packet)
                self.forwarded += 1
                if self.tap is not None:
                    self.tap(packet)
        except MediaStreamError:
            pass  # that leg's audio ended; the other keeps its sender until stop()

    async def stop(self) -> None:
        await cancel_and_wait(self.task)
        if self.sender.track is self.relay:
            self.sender.replaceTrack(self.previous)
        self.relay.release()


class AudioBridge:
    """Connects the audio of two peer connections both ways, between :meth:`start` and :meth:`stop`.

    While running, each leg's sender sends the other leg's packets; :meth:`stop` gives each sender
    back the track it had before and leaves no task behind. ``tap`` sees every packet forwarded.
    """

    def __init__(self, leg_a: RTCPeerConnection, leg_b: RTCPeerConnection, tap: PacketTap | None = None) -> None:
        self.leg_a = leg_a
        self.leg_b = leg_b
        self.tap = tap
        self._directions: list[_Direction] = []

    @property
    def running(self) -> bool:
        return bool(self._directions)

    @property
    def forwarded(self) -> tuple[int, int]:
        """Packets forwarded so far from A to B and from B to A (zeros when stopped)."""
        if not self._directions:
            return 0, 0
        return self._directions[0].forwarded, self._directions[1].forwarded

    def start(self) -> None:
        """Start forwarding; the legs must have negotiated Opus, sendrecv, with passthrough receivers."""
        if self._directions:
            raise RuntimeError("the bridge is already running")
        a = _bridgeable_audio(self.leg_a, "leg A")
        b = _bridgeable_audio(self.leg_b, "leg B")
        tap = self.tap
        self._directions = [
            _Direction(a, b, "AudioBridge A->B", (lambda packet: tap(0, packet)) if tap else None),
            _Direction(b, a, "AudioBridge B->A", (lambda packet: tap(1, packet)) if tap else None),
        ]

    async def stop(self) -> None:
        directions, self._directions = self._directions, []
        for direction in directions:
            await direction.stop()


def _bridgeable_audio(leg: RTCPeerConnection, name: str) -> _Leg:
    transceiver = next((t for t in leg.getTransceivers() if t.kind == "audio"), None)
    if transceiver is None:
        raise ValueError(f"{name} has no audio transceiver")
    if transceiver.currentDirection != "sendrecv":
        raise ValueError(
            f"{name}'s audio is {transceiver.currentDirection or 'not negotiated'}, the bridge needs sendrecv"
        )
    playout = playout_of(transceiver.receiver)
    if playout is None or not playout.passthrough:
        raise ValueError(f"{name} decodes its audio: build it with new_peer_connection(policy, opus_passthrough=True)")
    mime_type = negotiated_mime_type(transceiver)
    if mime_type != "audio/opus":
        raise ValueError(f"{name} negotiated {mime_type}; the bridge forwards Opus only")
    return _Leg(transceiver, playout)


def offers_opus(sdp: str) -> bool:
    """Whether an SDP offers Opus, the one codec the bridge forwards."""
    return any(line.lower().startswith("a=rtpmap:") and " opus/48000" in line.lower() for line in sdp.splitlines())


def bridge_opus_only(leg: RTCPeerConnection) -> None:
    """Let a hub leg offer or accept Opus alone, so both legs of a bridge agree on it.

    Call it after ``addTransceiver`` (a leg that offers) or after ``setRemoteDescription`` (a
    leg that answers), before the description of its own is made.
    """
    opus = [codec for codec in RTCRtpSender.getCapabilities("audio").codecs if codec.mimeType.lower() == "audio/opus"]
    for transceiver in leg.getTransceivers():
        if transceiver.kind == "audio":
            transceiver.setCodecPreferences(opus)
