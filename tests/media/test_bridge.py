"""caller <-> hub leg A ... AudioBridge ... hub leg B <-> callee: four peer connections on 127.0.0.1."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from intercom.media import AudioBridge, ToneSource, playout_of

from ..conftest import STEP
from .helpers import HUB, MediaKit, negotiate


@dataclass
class Call:
    caller: RTCPeerConnection
    leg_a: RTCPeerConnection
    leg_b: RTCPeerConnection
    callee: RTCPeerConnection


async def call(
    media: MediaKit,
    caller_says: MediaStreamTrack,
    callee_says: MediaStreamTrack,
    hub_says: MediaStreamTrack | None = None,
) -> Call:
    """The caller offers to leg A, leg B offers to the callee, as the hub's B2BUA does."""
    caller, callee = media.pc(), media.pc()
    leg_a, leg_b = media.pc(HUB, opus_passthrough=True), media.pc(HUB, opus_passthrough=True)
    caller.addTrack(caller_says)
    leg_a.addTransceiver(hub_says or "audio", direction="sendrecv")
    await negotiate(caller, leg_a)
    leg_b.addTransceiver("audio", direction="sendrecv")
    await negotiate(leg_b, callee, answer_with=callee_says)
    return Call(caller, leg_a, leg_b, callee)


def near(frequency: float | None, expected: float) -> bool:
    return frequency is not None and abs(frequency - expected) <= 5.0


async def test_tones_cross_the_bridge_both_ways_undecoded(media: MediaKit) -> None:
    c = await call(media, ToneSource(440), ToneSource(660))
    bridge = media.bridge(c.leg_a, c.leg_b)
    at_caller, at_callee = media.sink(c.caller), media.sink(c.callee)

    await at_callee.wait_until(lambda: at_callee.dominant_frequency() is not None, STEP)
    await at_caller.wait_until(lambda: at_caller.dominant_frequency() is not None, STEP)

    assert at_callee.dominant_frequency() == pytest.approx(440, abs=5)
    assert at_caller.dominant_frequency() == pytest.approx(660, abs=5)
    a_to_b, b_to_a = bridge.forwarded
    assert a_to_b > 0 and b_to_a > 0
    for leg in (c.leg_a, c.leg_b):
        playout = playout_of(leg.getTransceivers()[0].receiver)
        assert playout is not None and playout.passthrough
        assert playout.stats.passed_on > 0
        assert playout.stats.decoded == 0, "a hub leg handed frames to aiortc's decoder"


async def test_stop_gives_the_senders_back_their_own_tracks(media: MediaKit) -> None:
    c = await call(media, ToneSource(440), ToneSource(660), hub_says=ToneSource(1000))
    at_caller = media.sink(c.caller)
    await at_caller.wait_until(lambda: near(at_caller.dominant_frequency(0.2), 1000), STEP)

    bridge = media.bridge(c.leg_a, c.leg_b)
    await at_caller.wait_until(lambda: near(at_caller.dominant_frequency(0.2), 660), STEP)

    async with asyncio.timeout(STEP):
        await bridge.stop()
    assert not bridge.running and bridge.forwarded == (0, 0)
    await at_caller.wait_until(lambda: near(at_caller.dominant_frequency(0.2), 1000), STEP)


async def test_a_leg_that_decodes_is_refused(media: MediaKit) -> None:
    caller, leg_a = media.pc(), media.pc(HUB)  # no opus_passthrough
    leg_b, callee = media.pc(HUB, opus_passthrough=True), media.pc()
    caller.addTrack(ToneSource(440))
    leg_a.addTransceiver("audio", direction="sendrecv")
    await negotiate(caller, leg_a)
    leg_b.addTransceiver("audio", direction="sendrecv")
    await negotiate(leg_b, callee, answer_with=ToneSource(660))

    with pytest.raises(ValueError, match="leg A decodes its audio"):
        AudioBridge(leg_a, leg_b).start()


async def test_a_leg_not_negotiated_is_refused(media: MediaKit) -> None:
    leg_a, leg_b = media.pc(HUB, opus_passthrough=True), media.pc(HUB, opus_passthrough=True)
    with pytest.raises(ValueError, match="leg A has no audio transceiver"):
        AudioBridge(leg_a, leg_b).start()
    leg_a.addTransceiver("audio")
    with pytest.raises(ValueError, match="leg A's audio is not negotiated"):
        AudioBridge(leg_a, leg_b).start()


async def test_nothing_is_left_running_after_close(media: MediaKit) -> None:
    c = await call(media, ToneSource(440), ToneSource(660))
    media.bridge(c.leg_a, c.leg_b)
    at_callee = media.sink(c.callee)
    await at_callee.wait_for_audio(STEP)

    await media.close()

    tasks, threads = await media.leftovers()
    assert tasks == []
    assert threads == set()
