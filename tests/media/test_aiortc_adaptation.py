"""The guard on aiortc's internals, and the receive-side buffer that replaces aiortc's."""

from __future__ import annotations

import asyncio
import importlib.metadata
from types import SimpleNamespace

import aioice
import av
import pytest
from aiortc.codecs.opus import OpusEncoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import RtpPacket

from intercom.media import AiortcIncompatible, MediaPolicy, check_compatibility, new_peer_connection
from intercom.media.aiortc_adaptation import TESTED_WITH, TRACK_QUEUE, PlayoutBuffer
from intercom.media.tracks import ToneSource, audio_frame

from ..conftest import STEP
from .helpers import negotiate


def test_aiortc_internals_are_where_the_adaptations_expect_them() -> None:
    check_compatibility()  # raises AiortcIncompatible listing each broken assumption


@pytest.mark.parametrize("distribution", sorted(TESTED_WITH))
def test_installed_version_is_the_one_the_adaptations_were_checked_against(distribution: str) -> None:
    installed = importlib.metadata.version(distribution)
    assert installed == TESTED_WITH[distribution], (
        f"{distribution} {installed} is installed but intercom/media/aiortc_adaptation.py was checked against "
        f"{TESTED_WITH[distribution]}: read what the module adapts, run tests/media, then update TESTED_WITH"
    )


def rtp(sequence_number: int, payload: bytes = b"\xfc\x01") -> RtpPacket:
    packet = RtpPacket(
        payload_type=111, sequence_number=sequence_number, timestamp=960 * sequence_number, payload=payload
    )
    packet._data = payload  # type: ignore[attr-defined]  # what the receiver sets before handing a packet on
    return packet


OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def buffer(
    frames: int = 0, passthrough: bool = False, codecs: dict[int, RTCRtpCodecParameters] | None = None
) -> tuple[PlayoutBuffer, RemoteStreamTrack]:
    """A buffer on a stand-in receiver; ``codecs``: its payload types (none: every packet goes to aiortc)."""
    track = RemoteStreamTrack("audio")
    receiver = SimpleNamespace(track=track, _RTCRtpReceiver__codecs=codecs or {})
    return PlayoutBuffer(receiver, frames, passthrough), track  # type: ignore[arg-type]


def test_hands_each_packet_on_as_it_arrives() -> None:
    playout, _ = buffer()
    pli, frame = playout.add(rtp(10, b"ten"))
    assert pli is False and frame is not None
    assert (frame.data, frame.timestamp) == (b"ten", 9600)


def test_drops_late_and_duplicate_packets_but_follows_a_new_sequence() -> None:
    playout, _ = buffer()
    handed_on = [playout.add(rtp(seq))[1] is not None for seq in (10, 12, 11, 12, 40000, 40001)]
    assert handed_on == [True, True, False, False, True, True]
    assert playout.stats.late == 2


def test_follows_sequence_numbers_across_the_wrap() -> None:
    playout, _ = buffer()
    assert [playout.add(rtp(seq))[1] is not None for seq in (65534, 65535, 0, 1)] == [True] * 4


def test_frames_mean_packets_held_back() -> None:
    playout, _ = buffer(frames=2)
    out = [playout.add(rtp(seq))[1] for seq in range(5)]
    assert [frame is not None for frame in out] == [False, False, True, True, True]
    assert [frame.timestamp for frame in out if frame is not None] == [0, 960, 1920]


def test_decodes_opus_itself_into_mono_frames_on_the_track() -> None:
    encoder, tone = OpusEncoder(), ToneSource(440)
    payloads = [encoder.encode(audio_frame(tone.samples(pts), pts))[0][0] for pts in (0, 960, 1920)]
    playout, track = buffer(codecs={111: OPUS})
    assert [playout.add(rtp(seq, payload)) for seq, payload in enumerate(payloads)] == [(False, None)] * 3
    frames = [track._queue.get_nowait() for _ in range(3)]
    assert all(isinstance(frame, av.AudioFrame) for frame in frames)
    assert {(frame.format.name, frame.layout.name, frame.sample_rate, frame.samples) for frame in frames} == {
        ("s16", "mono", 48000, 960)
    }
    assert [frame.pts for frame in frames] == [0, 960, 1920]
    assert playout.stats.decoded == 3 and playout.stats.passed_on == 0


def test_passthrough_puts_opus_packets_on_the_track_with_rtp_time() -> None:
    playout, track = buffer(passthrough=True)
    assert playout.add(rtp(7, b"seven")) == (False, None)
    assert playout.add(rtp(8, b"eight")) == (False, None)
    first, second = track._queue.get_nowait(), track._queue.get_nowait()
    assert isinstance(first, av.Packet) and bytes(first) == b"seven"
    assert (first.pts, second.pts, first.time_base.denominator) == (0, 960, 48000)
    assert playout.stats.passed_on == 2 and playout.stats.decoded == 0


def test_passthrough_keeps_only_the_newest_packets_for_a_slow_reader() -> None:
    playout, track = buffer(passthrough=True)
    for seq in range(TRACK_QUEUE + 3):
        playout.add(rtp(seq))
    assert track._queue.qsize() == TRACK_QUEUE
    assert track._queue.get_nowait().pts == 3 * 960
    assert playout.stats.overflowed == 3


def test_discarding_keeps_the_end_of_track_marker() -> None:
    playout, track = buffer(passthrough=True)
    playout.add(rtp(1))
    track._queue.put_nowait(None)
    playout.discard_queued()
    assert track._queue.qsize() == 1 and track._queue.get_nowait() is None


def test_the_guard_names_what_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def get_component_candidates(self: object, component: int, addresses: list[str]) -> list[object]:
        return []

    monkeypatch.setattr(aioice.Connection, "get_component_candidates", get_component_candidates)
    with pytest.raises(AiortcIncompatible, match=r"(?s)aiortc 1\.16\.0.*get_component_candidates\(component"):
        check_compatibility()


async def test_closing_during_ice_checks_leaves_no_consent_task() -> None:
    policy = MediaPolicy(host_addresses=("127.0.0.1",))
    for step in range(12):  # close at different points of ICE and DTLS (adaptations 4 and 7): races a few ms wide
        offerer, answerer = new_peer_connection(policy), new_peer_connection(policy)
        offerer.addTransceiver("audio")
        await negotiate(offerer, answerer)
        await asyncio.sleep(step * 0.004)
        async with asyncio.timeout(STEP):
            await offerer.close()
            await answerer.close()
    # aioice's connect() may still be waking up; whatever it starts then must end by itself.
    others = asyncio.all_tasks() - {asyncio.current_task()}
    _, pending = await asyncio.wait(others, timeout=STEP) if others else (set(), set())
    assert [task.get_coro().__qualname__ for task in pending] == []
