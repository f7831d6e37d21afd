"""Two peer connections in one process, on 127.0.0.1 only, carrying tones both ways."""

from __future__ import annotations

import pytest

from intercom.media import MutableSource, ToneSource, playout_of

from ..conftest import STEP
from .helpers import MediaKit, negotiate, remote_audio


def near(frequency: float | None, expected: float) -> bool:
    return frequency is not None and abs(frequency - expected) <= 5.0


async def test_tones_cross_in_both_directions(media: MediaKit) -> None:
    caller, callee = media.pc(), media.pc()
    caller.addTrack(ToneSource(440))
    await negotiate(caller, callee, answer_with=ToneSource(660))
    at_callee, at_caller = media.sink(callee), media.sink(caller)

    await at_callee.wait_until(lambda: at_callee.dominant_frequency() is not None, STEP)
    await at_caller.wait_until(lambda: at_caller.dominant_frequency() is not None, STEP)

    assert at_callee.dominant_frequency() == pytest.approx(440, abs=5)
    assert at_caller.dominant_frequency() == pytest.approx(660, abs=5)


async def test_candidates_are_the_policys_host_addresses_only(media: MediaKit) -> None:
    caller, callee = media.pc(), media.pc()
    caller.addTrack(ToneSource(440))
    await negotiate(caller, callee)

    for pc in (caller, callee):
        candidates = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")]
        assert candidates, pc.localDescription.sdp
        assert all(" 127.0.0.1 " in line and " typ host" in line for line in candidates), candidates


async def test_endpoint_receivers_decode_with_the_policys_buffer(media: MediaKit) -> None:
    caller, callee = media.pc(), media.pc()
    caller.addTrack(ToneSource(440))
    await negotiate(caller, callee)
    at_callee = media.sink(callee)
    await at_callee.wait_for_audio(STEP)

    playout = playout_of(callee.getTransceivers()[0].receiver)
    assert playout is not None and playout.frames == 1 and not playout.passthrough
    assert playout.stats.decoded > 0 and playout.stats.passed_on == 0


async def test_muted_source_sends_silence_then_the_tone_again(media: MediaKit) -> None:
    caller, callee = media.pc(), media.pc()
    microphone = MutableSource(ToneSource(440))
    caller.addTrack(microphone)
    await negotiate(caller, callee)
    at_callee = media.sink(callee)
    await at_callee.wait_until(lambda: near(at_callee.dominant_frequency(0.2), 440), STEP)

    microphone.mute()
    # Silence has to keep arriving to fill the window: frames keep flowing while muted.
    await at_callee.wait_until(lambda: at_callee.is_silent(0.2), STEP)
    assert remote_audio(callee).readyState == "live"

    microphone.mute(False)
    await at_callee.wait_until(lambda: near(at_callee.dominant_frequency(0.2), 440), STEP)
