"""The prompt track: paced frames carrying each prompt in order, silence between, interruptions at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from intercom.media import FlowAudio
from intercom.media.tracks import FRAME_SAMPLES

from ..conftest import STEP
from ..listening import assert_paced_20_ms_frames, pcm_of, read


def prompt(frames: float, start: int = 1) -> np.ndarray:
    """``frames`` frames' worth of samples counting up from ``start``: every sample tells where it came from."""
    return (start + np.arange(round(frames * FRAME_SAMPLES)) % 30000).astype(np.int16)


@pytest.fixture
async def audio() -> AsyncIterator[FlowAudio]:
    track = FlowAudio()
    yield track
    track.stop()


async def test_a_prompt_goes_out_in_paced_frames_in_order_then_silence(audio: FlowAudio) -> None:
    samples = prompt(2.5)
    reader = asyncio.create_task(read(audio, 5))
    async with asyncio.timeout(STEP):
        assert await audio.play(samples) is True
        assert not audio.playing
        frames, elapsed = await reader

    assert_paced_20_ms_frames(frames, elapsed)
    pcm = pcm_of(frames)
    assert np.array_equal(pcm[: len(samples)], samples)
    assert not pcm[len(samples) :].any()


async def test_nothing_to_play_is_digital_silence(audio: FlowAudio) -> None:
    frames, _ = await read(audio, 2)
    assert not pcm_of(frames).any()
    assert audio.first_audio_at is None and not audio.playing


async def test_plays_go_out_one_after_another_in_the_order_asked(audio: FlowAudio) -> None:
    first, second = prompt(2), prompt(1, start=5000)
    async with asyncio.timeout(STEP):
        played_first, played_second, (frames, _) = await asyncio.gather(
            audio.play(first), audio.play(second), read(audio, 4)
        )
    assert played_first is played_second is True
    assert np.array_equal(pcm_of(frames), np.concatenate([first, second, np.zeros(FRAME_SAMPLES, np.int16)]))


async def test_an_interruption_silences_the_next_frame_and_the_plays_return_false(audio: FlowAudio) -> None:
    async def listen() -> list[av.AudioFrame]:
        heard, _ = await read(audio, 2)
        audio.interrupt()
        rest, _ = await read(audio, 2)
        return heard + rest

    async with asyncio.timeout(STEP):
        playing, waiting, frames = await asyncio.gather(audio.play(prompt(10)), audio.play(prompt(3)), listen())

    assert playing is False and waiting is False and not audio.playing
    pcm = pcm_of(frames)
    assert np.array_equal(pcm[: 2 * FRAME_SAMPLES], prompt(2))
    assert not pcm[2 * FRAME_SAMPLES :].any()


async def test_a_cancelled_play_goes_off_at_once(audio: FlowAudio) -> None:
    play = asyncio.create_task(audio.play(prompt(10)))

    async def listen() -> list[av.AudioFrame]:
        heard, _ = await read(audio, 1)
        play.cancel()
        rest, _ = await read(audio, 2)
        return heard + rest

    listener = asyncio.create_task(listen())  # after the play, which so comes first
    async with asyncio.timeout(STEP):
        frames = await listener
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(STEP):
            await play
    pcm = pcm_of(frames)
    assert np.array_equal(pcm[:FRAME_SAMPLES], prompt(1))
    assert not pcm[FRAME_SAMPLES:].any() and not audio.playing


async def test_on_frame_sees_every_frame_as_it_goes_out(audio: FlowAudio) -> None:
    seen: list[np.ndarray] = []
    audio.on_frame = lambda samples: seen.append(samples.copy())
    reader = asyncio.create_task(read(audio, 3))
    async with asyncio.timeout(STEP):
        await audio.play(prompt(1.5))
        frames, _ = await reader
    assert np.array_equal(np.concatenate(seen), pcm_of(frames))


async def test_first_audio_at_is_when_the_first_loud_frame_went_out(audio: FlowAudio) -> None:
    quiet_then_loud = np.concatenate([np.zeros(FRAME_SAMPLES, np.int16), np.full(FRAME_SAMPLES, 5000, np.int16)])
    before = time.monotonic()
    reader = asyncio.create_task(read(audio, 2))
    async with asyncio.timeout(STEP):
        await audio.play(quiet_then_loud)
        await reader
    assert audio.first_audio_at is not None and before + 0.015 <= audio.first_audio_at <= time.monotonic()


async def test_stopping_the_track_ends_every_play(audio: FlowAudio) -> None:
    async def stop() -> None:
        audio.stop()

    async with asyncio.timeout(STEP):
        results = await asyncio.gather(audio.play(prompt(3)), audio.play(prompt(3)), stop())
        assert results[:2] == [False, False]
        assert await audio.play(prompt(1)) is False  # a stopped track plays nothing more
    with pytest.raises(MediaStreamError):
        await audio.recv()
