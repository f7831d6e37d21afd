"""What ``Call.stats()`` reports: the call's RTP both ways, and its sound card's capture and playback.

The RTP figures come from aiortc's ``getStats()``; the device figures from the call's microphone
and speaker when they are a sound card (:class:`~intercom.audio.microphone.MicrophoneTrack`,
:class:`~intercom.audio.speaker.SpeakerSink`): blocks captured and dropped, and the speaker ring's
underruns (silence played) and overruns (oldest audio dropped). An installer reading a choppy
call can tell the network from the device this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.stats import RTCInboundRtpStreamStats, RTCOutboundRtpStreamStats, RTCRemoteInboundRtpStreamStats

RTP_CLOCK_PER_MS = 48  # Opus's RTP clock is 48 kHz; aiortc reports jitter in its ticks


@dataclass(frozen=True)
class CallStats:
    id: str
    status: str | None
    packets_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    jitter_ms: float = 0.0
    round_trip_ms: float | None = None  # from the far end's receiver reports, once one came
    capture: Any = None  # CaptureStats of a sound-card microphone, else None
    playback: Any = None  # PlaybackStats of a sound-card speaker, else None


async def collect(call_id: str, status: str | None, media: RTCPeerConnection, source: Any, sink: Any) -> CallStats:
    figures: dict[str, Any] = {}
    for report in (await media.getStats()).values():
        if isinstance(report, RTCOutboundRtpStreamStats) and report.kind == "audio":
            figures.update(packets_sent=report.packetsSent, bytes_sent=report.bytesSent)
        elif isinstance(report, RTCRemoteInboundRtpStreamStats) and report.kind == "audio":
            if report.roundTripTime is not None:  # None until a report answers one of ours
                figures["round_trip_ms"] = report.roundTripTime * 1000
        elif isinstance(report, RTCInboundRtpStreamStats) and report.kind == "audio":
            figures.update(
                packets_received=report.packetsReceived,
                packets_lost=report.packetsLost,
                jitter_ms=report.jitter / RTP_CLOCK_PER_MS,
            )
    return CallStats(
        id=call_id,
        status=status,
        capture=getattr(source, "stats", None),
        playback=getattr(sink, "stats", None),
        **figures,
    )
