"""Opus encoded in a track on the event loop, so that a sender only packs it."""

from __future__ import annotations

import asyncio

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from intercom.media.opus import OpusEncodedTrack, opus_decoder
from intercom.media.tracks import TIME_BASE, ToneSource, audio_frame

from ..conftest import STEP
from .helpers import MediaKit, negotiate


class Frames(MediaStreamTrack):
    """Hands out the frames it was given, without pacing."""

    kind = "audio"

    def __init__(self, frames: list[av.AudioFrame | av.Packet]) -> None:
        super().__init__()
        self.frames = frames

    async def recv(self) -> av.AudioFrame | av.Packet:
        return self.frames.pop(0)


def tone_frames(count: int) -> list[av.AudioFrame | av.Packet]:
    tone = ToneSource(1000)
    return [audio_frame(tone.samples(960 * index), 960 * index) for index in range(count)]


async def read(track: MediaStreamTrack, count: int) -> list[av.AudioFrame | av.Packet]:
    async with asyncio.timeout(STEP):
        return [await track.recv() for _ in range(count)]


def decoded_peak_hz(packets: list[av.Packet]) -> float:
    decoder = opus_decoder()
    samples = np.concatenate([frame.to_ndarray()[0] for packet in packets for frame in decoder.decode(packet)])
    spectrum = np.abs(np.fft.rfft(samples[-4800:] * np.hanning(4800)))
    return float(np.argmax(spectrum) * 48000 / 4800)


async def test_encodes_each_20_ms_frame_into_one_opus_packet() -> None:
    packets = await read(OpusEncodedTrack(Frames(tone_frames(10)), lambda: True), 10)
    assert all(isinstance(packet, av.Packet) for packet in packets)
    assert [packet.pts - packets[0].pts for packet in packets] == [960 * index for index in range(10)]
    assert {packet.time_base for packet in packets} == {TIME_BASE}
    assert abs(decoded_peak_hz(packets) - 1000) <= 10


async def test_resamples_other_frames_to_20_ms_at_48_khz() -> None:
    # 10 ms stereo float frames at 44.1 kHz: two make one 20 ms packet (the resampler keeps the rest).
    tone = np.sin(2 * np.pi * 1000 * np.arange(441 * 40) / 44100).astype(np.float32) * 0.3
    frames: list[av.AudioFrame | av.Packet] = []
    for index in range(40):
        frame = av.AudioFrame.from_ndarray(np.vstack([tone[441 * index : 441 * (index + 1)]] * 2), "fltp", "stereo")
        frame.sample_rate, frame.pts = 44100, 441 * index
        frames.append(frame)
    packets = await read(OpusEncodedTrack(Frames(frames), lambda: True), 19)
    assert all(isinstance(packet, av.Packet) for packet in packets)
    assert abs(decoded_peak_hz(packets) - 1000) <= 10


async def test_passes_frames_on_while_another_codec_is_negotiated_and_packets_always() -> None:
    frames = tone_frames(1)
    relayed = av.Packet(b"\xf8\xff\xfe")
    assert await read(OpusEncodedTrack(Frames([*frames, relayed]), lambda: False), 2) == [*frames, relayed]


def test_stopping_it_stops_its_source() -> None:
    source = Frames([])
    OpusEncodedTrack(source, lambda: True).stop()
    assert source.readyState == "ended"


async def test_a_peer_connection_sends_an_added_track_as_opus_encoded_here(media: MediaKit) -> None:
    caller, callee = media.pc(), media.pc()
    tone = ToneSource(440)
    sender = caller.addTrack(tone)
    assert isinstance(sender.track, OpusEncodedTrack) and sender.track.source is tone
    await negotiate(caller, callee)
    at_callee = media.sink(callee)
    await at_callee.wait_until(lambda: at_callee.dominant_frequency(0.2) is not None, STEP)
    assert abs((at_callee.dominant_frequency(0.2) or 0) - 440) <= 5
