"""Recording: the WAV writer (channels fed unevenly, silence watched) and the listener that feeds it."""

from __future__ import annotations

import asyncio
import wave
from collections import deque
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from intercom.media import PacketListener, ToneSource, WavRecorder, repair_wav
from intercom.media.opus import opus_encoder
from intercom.media.recorder import WAV_HEADER_BYTES, wav_header
from intercom.media.tracks import FRAME_SAMPLES, audio_frame

from ..conftest import STEP
from ..listening import RATE, peaks


def feed(recorder: WavRecorder, samples: np.ndarray, chunk: int, channel: int = 0) -> None:
    for start in range(0, len(samples), chunk):
        recorder.add(samples[start : start + chunk], channel)


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """(channels, samples as rows of one frame each) of a 48 kHz 16-bit WAV."""
    with wave.open(str(path), "rb") as file:
        assert (file.getframerate(), file.getsampwidth()) == (RATE, 2)
        channels = file.getnchannels()
        pcm = np.frombuffer(file.readframes(file.getnframes()), dtype="<i2")
    return channels, pcm.reshape(-1, channels)


def tone(seconds: float, hz: float = 1000.0) -> np.ndarray:
    return (8000 * np.sin(2 * np.pi * hz * np.arange(round(seconds * RATE)) / RATE)).astype(np.int16)


def test_mono_samples_come_back_as_written(tmp_path: Path) -> None:
    samples = np.random.default_rng(1).integers(-32768, 32767, 5000, dtype=np.int16)
    recorder = WavRecorder(tmp_path / "message.wav")
    feed(recorder, samples, 777)

    assert recorder.close() == pytest.approx(5000 / RATE)
    channels, pcm = read_wav(tmp_path / "message.wav")
    assert channels == 1 and np.array_equal(pcm[:, 0], samples)
    with pytest.raises(ValueError, match="closed"):
        recorder.add(samples)


@pytest.mark.parametrize("channels", [1, 2])
def test_the_file_is_playable_while_recording_up_to_the_last_sync(tmp_path: Path, channels: int) -> None:
    """What a SIGKILL between two syncs leaves: a WAV of every frame up to the last sync."""
    samples = np.random.default_rng(2).integers(-32768, 32767, (RATE, channels), dtype=np.int16)
    recorder = WavRecorder(tmp_path / "message.wav", channels=channels, sync_seconds=0.1)
    for channel in range(channels):
        feed(recorder, samples[: RATE * 35 // 100, channel], 960, channel)  # 0.35 s: synced at 0.1, 0.2, 0.3

    got_channels, pcm = read_wav(tmp_path / "message.wav")
    assert got_channels == channels and len(pcm) == RATE * 3 // 10
    assert np.array_equal(pcm, samples[: len(pcm)])
    for channel in range(channels):
        feed(recorder, samples[RATE * 35 // 100 :, channel], 960, channel)
    recorder.close()
    assert np.array_equal(read_wav(tmp_path / "message.wav")[1], samples)


def test_without_a_sync_interval_the_header_counts_only_once_closed(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "message.wav")
    feed(recorder, tone(0.5), 960)
    assert len(read_wav(tmp_path / "message.wav")[1]) == 0
    recorder.close()
    assert len(read_wav(tmp_path / "message.wav")[1]) == RATE // 2


def test_stereo_channels_fed_unevenly_are_interleaved_and_the_one_behind_padded(tmp_path: Path) -> None:
    left = np.arange(1, 3001, dtype=np.int16)
    right = -np.arange(1, 1001, dtype=np.int16)
    recorder = WavRecorder(tmp_path / "call.wav", channels=2)
    feed(recorder, right[:400], 333, channel=1)  # the second side first, in other chunks
    feed(recorder, left, 700)
    feed(recorder, right[400:], 333, channel=1)

    assert recorder.duration == pytest.approx(3000 / RATE)
    assert recorder.close() == pytest.approx(3000 / RATE)
    channels, pcm = read_wav(tmp_path / "call.wav")
    assert channels == 2
    assert np.array_equal(pcm[:, 0], left)
    assert np.array_equal(pcm[:, 1], np.concatenate([right, np.zeros(2000, np.int16)]))


def test_silent_seconds_count_quiet_frames_of_channel_0_since_the_last_loud_one(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "voicemail.wav", channels=2)
    assert (recorder.heard_audio, recorder.silent_seconds) == (False, 0.0)

    feed(recorder, np.zeros(RATE // 2, np.int16), 500)
    feed(recorder, tone(1.0), 500, channel=1)  # the other side's sound is not the caller's
    assert recorder.heard_audio is False and recorder.silent_seconds == pytest.approx(0.5, abs=0.02)

    feed(recorder, tone(0.5), 500)
    assert recorder.heard_audio is True and recorder.silent_seconds == 0.0
    feed(recorder, np.zeros(RATE, np.int16), 500)
    assert recorder.silent_seconds == pytest.approx(1.0, abs=0.02)
    feed(recorder, tone(0.1), 500)
    assert recorder.silent_seconds < 0.02
    recorder.abort()


def test_an_aborted_recording_leaves_no_file(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "message.wav", sync_seconds=0.01)
    recorder.add(tone(0.1))
    recorder.abort()
    assert not list(tmp_path.iterdir())


def torn_copy(original: bytes, path: Path, cut: int, header: bytes | None = None) -> None:
    """What a power cut may leave of ``original``: cut anywhere, its header torn (replaced) or not."""
    torn = bytearray(original[:cut])
    if header is not None:
        torn[: len(header)] = header[:cut]
    path.write_bytes(bytes(torn))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("cut", [0, 1, 17, 43, 44, 45, 46, 47, 48, 1001, 9603, 19_201, 19_244])
@pytest.mark.parametrize("header", ["kept", "zeroed", "garbage", "counting nothing"])
def test_a_torn_file_is_repaired_to_the_whole_frames_it_holds(tmp_path: Path, channels: int, cut: int, header: str):
    samples = np.random.default_rng(cut).integers(-32768, 32767, (4800, channels), dtype=np.int16)
    recorder = WavRecorder(tmp_path / "whole.wav", channels=channels)
    for channel in range(channels):
        recorder.add(samples[:, channel], channel)
    recorder.close()
    original = (tmp_path / "whole.wav").read_bytes()
    torn_header = {
        "kept": None,
        "zeroed": bytes(WAV_HEADER_BYTES),
        "garbage": np.random.default_rng(0).bytes(WAV_HEADER_BYTES),
        "counting nothing": wav_header(channels, 0),
    }[header]
    torn = tmp_path / "torn.wav"
    torn_copy(original, torn, cut, torn_header)

    duration = repair_wav(torn, channels)

    whole_frames = max(0, min(cut, len(original)) - WAV_HEADER_BYTES) // (2 * channels)
    assert duration == pytest.approx(whole_frames / RATE)
    got_channels, pcm = read_wav(torn)
    assert got_channels == channels and np.array_equal(pcm, samples[:whole_frames])
    assert torn.stat().st_size == WAV_HEADER_BYTES + whole_frames * 2 * channels


def test_repairing_a_whole_file_changes_nothing_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    recorder = WavRecorder(tmp_path / "whole.wav", channels=2)
    feed(recorder, tone(0.2), 500)
    recorder.close()
    before = (tmp_path / "whole.wav").read_bytes()
    assert repair_wav(tmp_path / "whole.wav", 2) == pytest.approx(0.2)
    assert (tmp_path / "whole.wav").read_bytes() == before
    with pytest.raises(FileNotFoundError):
        repair_wav(tmp_path / "gone.wav", 1)


class Finite(MediaStreamTrack):
    """What a receiver hands on (Opus packets or frames), as fast as asked, then the track's end."""

    kind = "audio"

    def __init__(self, items: list[av.Packet] | list[av.AudioFrame]) -> None:
        super().__init__()
        self.items: deque[av.Packet | av.AudioFrame] = deque(items)
        self.taken = 0

    async def recv(self) -> av.Packet | av.AudioFrame:
        if not self.items:
            self.stop()
            raise MediaStreamError
        self.taken += 1
        return self.items.popleft()


def opus_tone(frames: int, hz: float = 1000.0) -> list[av.Packet]:
    source, encoder = ToneSource(hz), opus_encoder()
    pts = [index * FRAME_SAMPLES for index in range(frames)]
    return [packet for at in pts for packet in encoder.encode(audio_frame(source.samples(at), at))]


async def listen_to_the_end(listener: PacketListener) -> None:
    listener.start()
    try:
        async with asyncio.timeout(STEP):
            await listener.ended.wait()
    finally:
        await listener.stop()


async def test_opus_packets_reach_the_sink_decoded() -> None:
    packets = opus_tone(25)
    heard: list[np.ndarray] = []
    await listen_to_the_end(PacketListener(Finite(packets), sink=heard.append))

    assert len(heard) == len(packets) and {(len(s), s.dtype.name) for s in heard} == {(FRAME_SAMPLES, "int16")}
    assert peaks(np.concatenate(heard)[-RATE // 5 :], 1) == pytest.approx([1000], abs=1)


async def test_without_a_sink_everything_is_read_and_dropped_and_a_sink_can_step_out() -> None:
    packets = opus_tone(20)
    heard: list[np.ndarray] = []

    def five_frames(samples: np.ndarray) -> None:
        heard.append(samples)
        if len(heard) == 5:
            listener.sink = None

    track = Finite(packets)
    listener = PacketListener(track, sink=five_frames)
    await listen_to_the_end(listener)
    assert len(heard) == 5 and track.taken == len(packets)

    silent_track = Finite(opus_tone(10))
    await listen_to_the_end(PacketListener(silent_track))
    assert silent_track.taken == 10


async def test_decoded_frames_pass_as_they_are_until_stopped() -> None:
    source = ToneSource(440)
    got_three = asyncio.Event()
    heard: list[np.ndarray] = []

    def sink(samples: np.ndarray) -> None:
        heard.append(samples)
        if len(heard) == 3:
            got_three.set()

    listener = PacketListener(source, sink=sink)
    listener.start()
    try:
        async with asyncio.timeout(STEP):
            await got_three.wait()
    finally:
        await listener.stop()
        source.stop()
    assert np.array_equal(heard[0], source.samples(0).astype(np.int16))
    assert not listener.ended.is_set()
