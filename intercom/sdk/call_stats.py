"""What ``Call.stats()`` reports: the call's RTP both ways, and its sound card's capture and playback.

The RTP figures come from aiortc's ``getStats()``; the device figures from the call's microphone
and speaker when they are a sound card (:class:`~intercom.audio.microphone.MicrophoneTrack`,
:class:`~intercom.audio.speaker.SpeakerSink`): blocks captured and dropped, and the speaker ring's
underruns (silence played) and overruns (oldest audio dropped), and the microphone's processing:
the echo canceller's ERLE and delay as this unit estimates them, and what the processing cost. An
installer reading a choppy call or an echoing one can tell the network from the device and the room
this way: :meth:`CallStats.sound_summary` is the line a unit logs when a call ends.
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

    def sound_summary(self) -> str | None:
        """One line on the call's sound card, None when it used none."""
        parts = [f"{self.packets_received} packets in ({self.packets_lost} lost), {self.packets_sent} out"]
        if self.playback is not None:
            played = self.playback
            parts.append(
                f"speaker {played.blocks_played} blocks, {played.underruns} underruns, {played.overruns} overruns"
            )
        if self.capture is not None:
            parts.append(f"microphone {self.capture.blocks_captured} blocks, {self.capture.blocks_dropped} dropped")
            processing = self.capture.processing
            if processing is not None:
                echo = processing.echo
                erle = "-" if echo.erle_db is None else f"{echo.erle_db:.0f} dB"
                delay = "-" if echo.delay_ms is None else f"{echo.delay_ms:.0f} ms"
                parts.append(
                    f"echo cancelled {erle} at {delay} (hint {processing.delay_hint_ms} ms), "
                    f"processing {processing.cost_us_per_frame:.0f} us a 10 ms frame, {processing.errors} errors"
                )
        if self.playback is None and self.capture is None:
            return None
        return "; ".join(parts)


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
