"""Opus on the event loop: the encoding and decoding that aiortc does in threads of its own.

aiortc encodes each 20 ms frame in the loop's default executor and decodes in a thread per
receiver, and each hand-over costs the loop more than the codec work itself: a future, a wake-up
through the loop's self-pipe, and for decoding a task as well. Encoding a mono 20 ms frame takes
~130 us and decoding one ~30 us, so an endpoint does both on the loop (adaptations 5 and 6 in
:mod:`.aiortc_adaptation`), in mono: the intercom's microphones and speakers are mono, and aiortc's
stereo would encode two equal channels and decode two for the speaker to mix down again. In
``bench/audio.py`` the desk unit in a call went from ~9.8 to ~5.4 % of a core, its main thread
from ~6.0 to ~4.8 % although it now runs both codecs (aiortc 1.16.0, medians of six runs).
"""

from __future__ import annotations

import fractions
from collections import deque
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamTrack

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms, as aiortc packs Opus
BIT_RATE = 96000  # aiortc's
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


def opus_decoder() -> av.CodecContext:
    """A libopus decoder to 48 kHz mono s16 (a stereo stream is mixed down by libopus)."""
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = SAMPLE_RATE
    decoder.layout = "mono"
    decoder.format = "s16"
    return decoder


class FrameDecoder:
    """What a sink reads from a track, as audio frames: an ``av.AudioFrame`` as it is, an Opus
    ``av.Packet`` (a passthrough receiver's) decoded, with a decoder made at the first packet."""

    def __init__(self) -> None:
        self._decoder: av.CodecContext | None = None

    def frames(self, item: av.AudioFrame | av.Packet) -> list[av.AudioFrame]:
        if not isinstance(item, av.Packet):
            return [item]
        if self._decoder is None:
            self._decoder = opus_decoder()
        return self._decoder.decode(item)


def opus_encoder() -> av.CodecContext:
    """A libopus encoder of 48 kHz mono s16, with aiortc's bit rate and application."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.bit_rate = BIT_RATE
    encoder.format = "s16"
    encoder.layout = "mono"
    encoder.options = {"application": "voip"}
    encoder.sample_rate = SAMPLE_RATE
    encoder.time_base = TIME_BASE
    return encoder


class OpusEncodedTrack(MediaStreamTrack):
    """Passes ``source`` on as Opus packets, encoded in ``recv()``, while ``encodes()`` says so.

    A sender packs an ``av.Packet`` as it is, so the frames never reach its executor. Frames that
    are not 20 ms of 48 kHz mono s16 go through a resampler first, as in aiortc's encoder. While
    ``encodes()`` is false (another codec was negotiated) frames pass on unchanged.
    """

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, encodes: Callable[[], bool]) -> None:
        super().__init__()
        self.source = source
        self.encodes = encodes
        self._encoder: av.CodecContext | None = None
        self._resampler: av.AudioResampler | None = None
        self._packets: deque[av.Packet] = deque()

    async def recv(self) -> av.Packet | av.AudioFrame:
        while not self._packets:
            frame = await self.source.recv()
            if not isinstance(frame, av.AudioFrame) or not self.encodes():
                return frame
            for whole in self._whole_frames(frame):
                self._packets.extend(self._encode(whole))
        return self._packets.popleft()

    def stop(self) -> None:
        super().stop()
        self.source.stop()

    def _whole_frames(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        if (
            frame.samples == FRAME_SAMPLES
            and frame.sample_rate == SAMPLE_RATE
            and frame.format.name == "s16"
            and frame.layout.name == "mono"
        ):
            return [frame]
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=FRAME_SAMPLES)
        return self._resampler.resample(frame)

    def _encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        if self._encoder is None:
            self._encoder = opus_encoder()
        return self._encoder.encode(frame)
