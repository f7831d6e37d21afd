"""MicrophoneTrack and SpeakerSink on a JACK dummy sound card, fed and heard by a JACK probe."""

from __future__ import annotations

import asyncio
import fractions
import itertools

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack

from intercom.audio import portaudio
from intercom.audio.devices import UnknownDevice
from intercom.audio.samples import SampleRing, apply_gain
from intercom.audio.speaker import SpeakerSink
from intercom.media import ToneSource
from intercom.media.tracks import FRAME_SAMPLES, FULL_SCALE, audio_frame

from ..units import STEP
from .jackkit import dominant_frequency

SECONDS = 0.3


async def read_frames(track: MediaStreamTrack, count: int) -> list[av.AudioFrame]:
    async with asyncio.timeout(STEP):
        return [await track.recv() for _ in range(count)]


async def frames_until(track: MediaStreamTrack, predicate, limit: int = 200) -> list[av.AudioFrame]:
    """Frames read until ``predicate`` holds for the last 0.3 s of them (at most ``limit`` frames)."""
    frames: list[av.AudioFrame] = []
    window = round(SECONDS * 48000 / FRAME_SAMPLES)
    async with asyncio.timeout(STEP):
        while len(frames) < limit:
            frames.append(await track.recv())
            if len(frames) >= window and predicate(samples_of(frames[-window:])):
                return frames
    raise AssertionError(f"no match in {limit} frames")


def samples_of(frames: list[av.AudioFrame]) -> np.ndarray:
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames]).astype(np.float64)


def near(frequency: float):
    return lambda samples: dominant_frequency(samples) == pytest.approx(frequency, abs=10)


# -- the microphone ---------------------------------------------------------------------------------


async def test_microphone_frames_carry_the_tone_jack_feeds_with_sample_counting_pts(probe, sound):
    microphone = sound.microphone()
    first = await read_frames(microphone, 1)  # opens the stream, so PortAudio's input port exists
    probe.feed(await probe.wait_for_port(is_input=True, timeout=STEP))
    probe.play(1000.0)
    frames = first + await frames_until(microphone, near(1000.0))
    for frame in frames:
        assert (frame.format.name, frame.layout.name, frame.sample_rate) == ("s16", "mono", 48000)
        assert frame.samples == FRAME_SAMPLES and frame.time_base == fractions.Fraction(1, 48000)
    assert [frame.pts for frame in frames] == [FRAME_SAMPLES * index for index in range(len(frames))]
    assert microphone.stats.blocks_dropped == 0


async def test_microphone_gain_scales_and_clips_and_may_change_while_running(probe, sound):
    microphone = sound.microphone(gain=0.5)
    await read_frames(microphone, 1)
    probe.feed(await probe.wait_for_port(is_input=True, timeout=STEP))
    probe.play(500.0, amplitude=0.4)
    frames = await frames_until(microphone, near(500.0))
    halved = samples_of(frames[-10:])
    assert np.abs(halved).max() == pytest.approx(0.2 * FULL_SCALE, rel=0.05)
    microphone.gain = 4.0
    frames = await frames_until(microphone, lambda samples: np.abs(samples).max() >= 32767)
    assert samples_of(frames[-5:]).max() == 32767  # 1.6 of full scale, clipped


async def test_a_reader_that_falls_behind_loses_the_oldest_blocks_and_pts_jumps_over_them(probe, sound):
    microphone = sound.microphone(queue_blocks=3)
    await read_frames(microphone, 1)
    await probe.wait_until(lambda: microphone.stats.blocks_captured >= 10, STEP)
    frames = await read_frames(microphone, 4)
    assert microphone.stats.blocks_dropped >= 6
    steps = {later.pts - earlier.pts for earlier, later in itertools.pairwise(frames)}
    assert steps == {FRAME_SAMPLES}
    assert frames[0].pts >= 7 * FRAME_SAMPLES  # the three kept are the newest of the ten


async def test_a_microphone_that_cannot_open_reports_it_and_sends_paced_silence(sound):
    errors: list[Exception] = []
    microphone = sound.microphone(device="no such microphone")
    microphone.on_error = errors.append
    loop = asyncio.get_running_loop()
    frames = await read_frames(microphone, 6)
    started = loop.time()
    frames += await read_frames(microphone, 10)
    assert loop.time() - started >= 0.15  # ten blocks of 20 ms, not as fast as the loop can go
    assert [type(error) for error in errors] == [UnknownDevice]  # told once, not at every retry
    assert microphone.readyState == "live" and microphone.stream is None
    assert not samples_of(frames).any()
    assert [frame.pts for frame in frames] == [FRAME_SAMPLES * index for index in range(16)]


# -- the speaker --------------------------------------------------------------------------------------


async def test_speaker_plays_a_tone_source_to_jack(probe, sound):
    sink = sound.speaker(ToneSource(660.0))
    sink.start()
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP))
    await probe.wait_until(lambda: probe.dominant_frequency(SECONDS) == pytest.approx(660.0, abs=10), STEP)
    stats = sink.stats
    assert stats.blocks_played > 0 and stats.frames_received > 0
    assert stats.max_buffered_ms <= 40.0
    assert stats.device_latency_ms <= 40.0


async def test_speaker_gain_scales_what_is_played(probe, sound):
    sink = sound.speaker(ToneSource(660.0, amplitude=0.4), gain=0.5)
    sink.start()
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP))
    await probe.wait_until(lambda: probe.dominant_frequency(SECONDS) is not None, STEP)
    await probe.wait_until(lambda: sink.stats.blocks_played >= 15, STEP)
    await probe.wait_until(lambda: probe.rms(0.1) > 0.1, STEP)  # the ring filled: no partial silence
    assert probe.rms(0.1) == pytest.approx(0.2 / np.sqrt(2), rel=0.05)


class ForeignTone(MediaStreamTrack):
    """A 1 kHz tone as 10 ms frames at 44.1 kHz, stereo float planar, or as Opus packets of a passthrough."""

    kind = "audio"

    def __init__(self, opus: bool = False) -> None:
        super().__init__()
        self.rate = 48000 if opus else 44100
        self.size = 960 if opus else 441
        self._source = ToneSource(1000.0)
        self._encoder: av.CodecContext | None = None
        if opus:
            self._encoder = av.CodecContext.create("libopus", "w")
            self._encoder.sample_rate, self._encoder.layout, self._encoder.format = 48000, "mono", "s16"
            self._pending: list[av.Packet] = []
        self._pts = 0
        self._started = 0.0

    async def recv(self) -> av.AudioFrame | av.Packet:
        if self._encoder is not None:
            while not self._pending:
                self._pending += self._encoder.encode(await self._source.recv())
            return self._pending.pop(0)
        loop = asyncio.get_running_loop()
        self._started = self._started or loop.time()
        await asyncio.sleep(self._started + (self._pts + self.size) / self.rate - loop.time())  # real time, no drift
        t = (self._pts + np.arange(self.size)) / self.rate
        tone = (0.3 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = self.rate, self._pts, fractions.Fraction(1, self.rate)
        self._pts += self.size
        return frame


@pytest.mark.parametrize("opus", [False, True], ids=["44k1-stereo-float", "opus-packets"])
async def test_speaker_converts_what_it_is_given(probe, sound, opus):
    sink = sound.speaker(ForeignTone(opus))
    sink.start()
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP))
    await probe.wait_until(lambda: sink.stats.blocks_played >= 15, STEP)  # steady: no silence before it in view
    assert probe.dominant_frequency(SECONDS) == pytest.approx(1000.0, abs=10)
    assert probe.rms(0.1) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)


class SteadyTone(MediaStreamTrack):
    """A 440 Hz tone whose 20 ms frames come every ``interval`` s: a far end too slow or too fast."""

    kind = "audio"

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        await asyncio.sleep(self.interval)  # the pace of this source, not a wait for anything
        samples = 0.3 * FULL_SCALE * np.sin(2 * np.pi * 440 * (self._pts + np.arange(FRAME_SAMPLES)) / 48000)
        self._pts += FRAME_SAMPLES
        return audio_frame(samples, self._pts)


async def test_a_slow_track_underruns_and_silence_fills_the_gaps(probe, sound):
    sink = sound.speaker(SteadyTone(interval=0.04))
    sink.start()
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP))
    await probe.wait_until(lambda: sink.underruns >= 10, STEP)
    assert sink.overruns == 0
    assert 0.4 < sink.underruns / (sink.underruns + sink.blocks_played) < 0.7  # half the blocks, or a bit more
    assert probe.dominant_frequency(0.3) is not None  # and the other half plays


async def test_a_fast_track_overruns_dropping_the_oldest_and_buffering_stays_within_40_ms(probe, sound):
    sink = sound.speaker(SteadyTone(interval=0.01))
    sink.start()
    await probe.wait_until(lambda: sink.overruns >= 5, STEP)
    stats = sink.stats
    assert stats.max_buffered_ms == 40.0 and stats.samples_dropped >= 5 * FRAME_SAMPLES
    assert stats.underruns == 0


class FewFrames(MediaStreamTrack):
    """Once :attr:`go` is set, ``count`` frames of a tone as fast as they are read, then none (a far
    end that went quiet)."""

    kind = "audio"

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count
        self.sent = 0
        self.go = asyncio.Event()
        self._quiet = asyncio.Event()  # never set: recv() waits until the reader is cancelled

    async def recv(self) -> av.AudioFrame:
        await self.go.wait()
        if self.sent == self.count:
            await self._quiet.wait()
        samples = (
            0.3 * FULL_SCALE * np.sin(2 * np.pi * 440 * (self.sent * FRAME_SAMPLES + np.arange(FRAME_SAMPLES)) / 48000)
        )
        self.sent += 1
        return audio_frame(samples, (self.sent - 1) * FRAME_SAMPLES)


@pytest.mark.parametrize(("playout_ms", "frames_to_play"), [(20, 1), (30, 2), (40, 2)])
async def test_the_speaker_plays_once_it_holds_its_playout(probe, sound, playout_ms, frames_to_play):
    tracks = [FewFrames(count) for count in (frames_to_play - 1, frames_to_play)]
    short, enough = (sound.speaker(track, playout_ms=playout_ms) for track in tracks)
    for sink in (short, enough):
        sink.start()
    await probe.wait_until(lambda: short.stream is not None and enough.stream is not None, STEP)
    for track in tracks:  # a frame that comes before the device opened is dropped
        track.go.set()
    await probe.wait_until(lambda: enough.blocks_played == frames_to_play, STEP)
    start = probe.position  # five more device blocks: the short one still holds too little to play
    await probe.wait_until(lambda: probe.position >= start + 5 * FRAME_SAMPLES, STEP)
    assert short.stats.frames_received == frames_to_play - 1 and short.blocks_played == 0


@pytest.mark.parametrize("playout_ms", [10, 19.9, 41])
def test_a_playout_the_ring_cannot_hold_is_refused(playout_ms):
    with pytest.raises(ValueError, match=f"once it holds 20-40 ms, not {playout_ms}"):
        SpeakerSink(ToneSource(440.0), playout_ms=playout_ms)


async def test_stop_closes_the_streams_and_ends_the_reader(probe, sound):
    microphone = sound.microphone()
    sink = sound.speaker(microphone)
    sink.start()
    await probe.wait_until(lambda: sink.stats.frames_received >= 3, STEP)
    assert len(probe.foreign_ports(True)) == len(probe.foreign_ports(False)) == 1
    microphone.stop()  # the sink, waiting in recv(), sees the track end
    await probe.wait_until(lambda: sink.ended, STEP)
    async with asyncio.timeout(STEP):
        await sink.stop()
    assert microphone.stream is None and sink.stream is None
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("SpeakerSink(")]
    await probe.wait_for_no_ports(STEP)  # PortAudio's ports went with the streams


class CountedTone(ToneSource):
    def __init__(self, frequency_hz: float, wanted: int) -> None:
        super().__init__(frequency_hz)
        self.wanted = wanted
        self.read = asyncio.Event()
        self.count = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        self.count += 1
        if self.count >= self.wanted:
            self.read.set()
        return frame


async def test_a_speaker_that_cannot_open_still_reads_its_track():
    source = CountedTone(440.0, wanted=3)
    sink = SpeakerSink(source, device="no such speaker")
    told = asyncio.Event()
    sink.on_error = lambda error: told.set()
    sink.start()
    try:
        async with asyncio.timeout(STEP):
            await told.wait()
            source.read.clear()
            source.wanted = source.count + 3  # frames read after the failure too
            await source.read.wait()
        assert isinstance(sink.error, UnknownDevice) and sink.stream is None
    finally:
        await sink.stop()
        source.stop()


# -- the pieces, without a device --------------------------------------------------------------------


def test_ring_keeps_the_newest_samples_and_reads_them_in_order_across_the_wrap():
    ring = SampleRing(5)
    assert ring.write(np.arange(3, dtype=np.int16)) == 0
    out = np.full(2, -1, dtype=np.int16)
    assert ring.read_into(out) == 2 and out.tolist() == [0, 1]
    assert ring.write(np.arange(10, 16, dtype=np.int16)) == 2  # 2, 10..15 is 7 samples for 5 places
    out = np.full(7, -1, dtype=np.int16)
    assert ring.read_into(out) == 5 and out.tolist() == [11, 12, 13, 14, 15, 0, 0]
    assert ring.write(np.arange(20, 28, dtype=np.int16)) == 3 and len(ring) == 5
    out = np.zeros(5, dtype=np.int16)
    assert ring.read_into(out) == 5 and out.tolist() == [23, 24, 25, 26, 27]


def test_gain_is_identity_at_one_and_clips_to_int16():
    samples = np.array([-20000, -1, 0, 1, 20000], dtype=np.int16)
    assert apply_gain(samples, 1.0) is samples
    assert apply_gain(samples, 2.0).tolist() == [-32768, -2, 0, 2, 32767]
    assert apply_gain(samples, 0.5).dtype == np.int16


async def test_a_card_that_came_while_a_stream_is_open_is_refused_saying_why(probe, sound, monkeypatch):
    microphone = sound.microphone()
    await read_frames(microphone, 1)  # its stream is open
    cards, jack = portaudio.sound_system_state()
    monkeypatch.setattr(portaudio, "sound_system_state", lambda: (cards + " 1 [Device]: USB-Audio\n", jack))
    with pytest.raises(UnknownDevice, match="can be opened once none is"):
        async with asyncio.timeout(STEP):
            await microphone.switch("USB-Audio")
    assert microphone.stream is not None and microphone.stream.active  # kept its device
