"""Call.stats() figures from aiortc's stats report: jitter in ms, a round trip only once one is known."""

from __future__ import annotations

import asyncio
import datetime

import pytest
from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCOutboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
    RTCStatsReport,
)

from intercom.sdk.call_stats import collect

from ..units import STEP

NOW = datetime.datetime.now(datetime.UTC)


class Reporting:
    """Stands in for a peer connection: only ``getStats()`` is read."""

    def __init__(self, *reports: object) -> None:
        self.report = RTCStatsReport()
        for report in reports:
            self.report.add(report)

    async def getStats(self) -> RTCStatsReport:
        return self.report


def remote(round_trip: float | None) -> RTCRemoteInboundRtpStreamStats:
    return RTCRemoteInboundRtpStreamStats(
        timestamp=NOW, type="remote-inbound-rtp", id="r", ssrc=1, kind="audio", transportId="t",
        packetsReceived=9, packetsLost=1, jitter=0, roundTripTime=round_trip, fractionLost=0,
    )  # fmt: skip


@pytest.mark.parametrize(("round_trip", "expected"), [(None, None), (0.012, 12.0)])
async def test_figures_come_from_the_report(round_trip, expected):
    connection = Reporting(
        RTCOutboundRtpStreamStats(
            timestamp=NOW, type="outbound-rtp", id="o", ssrc=1, kind="audio", transportId="t",
            packetsSent=50, bytesSent=4000, trackId="x",
        ),
        RTCInboundRtpStreamStats(
            timestamp=NOW, type="inbound-rtp", id="i", ssrc=2, kind="audio", transportId="t",
            packetsReceived=48, packetsLost=2, jitter=96,
        ),
        remote(round_trip),
    )  # fmt: skip
    async with asyncio.timeout(STEP):
        stats = await collect("call-1", "confirmed", connection, source=object(), sink=None)  # type: ignore[arg-type]
    assert (stats.packets_sent, stats.bytes_sent, stats.packets_received, stats.packets_lost) == (50, 4000, 48, 2)
    assert stats.jitter_ms == 2.0  # 96 ticks of Opus's 48 kHz clock
    assert stats.round_trip_ms == expected
    assert stats.capture is None and stats.playback is None  # neither side is a sound card
