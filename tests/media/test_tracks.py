"""The synthetic sources and the sink, without a network in between."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from intercom.media import ClickSource, MutableSource, RecordingSink, ToneSource, click_latencies
from intercom.media.tracks import FRAME_SAMPLES

from ..conftest import STEP


async def test_tone_frames_are_20_ms_of_48_khz_mono_with_running_pts() -> None:
    tone = ToneSource(440)
    async with asyncio.timeout(STEP):
        frames = [await tone.recv() for _ in range(3)]
    assert [frame.pts for frame in frames] == [0, 960, 1920]
    assert {(frame.samples, frame.sample_rate, frame.layout.name, frame.format.name) for frame in frames} == {
        (FRAME_SAMPLES, 48000, "mono", "s16")
    }


async def test_sink_finds_the_tone_frequency() -> None:
    sink = RecordingSink(ToneSource(1234))
    sink.start()
    try:
        await sink.wait_until(lambda: sink.dominant_frequency(0.2) is not None, STEP)
        assert sink.dominant_frequency(0.2) == pytest.approx(1234, abs=5)
        assert not sink.is_silent(0.2) and sink.first_audio_at is not None
    finally:
        await sink.stop()


async def test_muting_zeroes_the_frames_and_keeps_their_timing() -> None:
    microphone = MutableSource(ToneSource(440))
    async with asyncio.timeout(STEP):
        loud = await microphone.recv()
        microphone.mute()
        quiet = await microphone.recv()
    assert np.abs(loud.to_ndarray()).max() > 1000
    assert not quiet.to_ndarray().any()
    assert (quiet.pts, quiet.samples, quiet.sample_rate) == (loud.pts + FRAME_SAMPLES, FRAME_SAMPLES, 48000)


async def test_clicks_are_detected_once_each() -> None:
    clicks = ClickSource(interval_s=0.1)
    sink = RecordingSink(clicks)
    sink.start()
    try:
        await sink.wait_until(lambda: len(sink.clicks) >= 3, STEP)
    finally:
        await sink.stop()
    latencies = click_latencies(clicks.sent_at, sink.clicks)
    assert len(latencies) >= 3 and all(0 <= latency < 0.01 for latency in latencies)


def test_click_latencies_skip_clicks_that_never_arrived() -> None:
    assert click_latencies([1.0, 2.0, 3.0], [1.05, 3.02]) == pytest.approx([0.05, 0.02])


async def test_waiting_on_a_silent_track_times_out() -> None:
    sink = RecordingSink(ClickSource(interval_s=10))
    sink.start()
    try:
        await sink.wait_until(lambda: len(sink.clicks) == 1, STEP)
        with pytest.raises(TimeoutError):
            await sink.wait_until(lambda: len(sink.clicks) == 2, 0.1)
    finally:
        await sink.stop()


async def test_the_sink_mixes_local_sound_into_what_arrives_next_clipping_rather_than_wrapping() -> None:
    sink = RecordingSink(ToneSource(1000, amplitude=0.9))
    sink.mix(np.full(1500, 20000, dtype=np.int16))  # over the first frame and a half: louder than int16 allows
    sink.start()
    try:
        await sink.wait_until(lambda: len(sink.recent(0.06)) == 3 * FRAME_SAMPLES, STEP)
    finally:
        async with asyncio.timeout(STEP):
            await sink.stop()
    heard = sink.recent(0.06)
    tone = 0.9 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(len(heard)) / 48000)
    assert heard[:1500] == pytest.approx(np.clip(tone[:1500] + 20000, -32768, 32767), abs=1)
    assert heard[1500:] == pytest.approx(tone[1500:], abs=1)
