"""Where a call's sound comes from and goes to, and how its peer connection is built.

Until the audio issue brings sounddevice, a source is any aiortc audio track (a tone, a file,
silence) and a sink anything that reads the far end's track between ``start()`` and ``stop()``.
Each call gets a source and a sink of its own from the factories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from aiortc import MediaStreamTrack
from aiortc.mediastreams import AudioStreamTrack

from ..media import MediaPolicy, RecordingSink


class AudioSink(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class SoundDevice(Protocol):
    """A source or sink on a sound device (``MicrophoneTrack``, ``SpeakerSink``): it can move to
    another device mid-call and tells when its device fails."""

    device: str | None
    on_error: Callable[[Exception], None] | None

    async def switch(self, device: str | None) -> None: ...


@dataclass(frozen=True)
class CallAudio:
    """``source()`` makes the track a call sends; ``sink(track)`` consumes the track it receives.

    The defaults send silence and keep the last seconds received (:class:`RecordingSink`).
    """

    source: Callable[[], MediaStreamTrack] = AudioStreamTrack
    sink: Callable[[MediaStreamTrack], AudioSink] = RecordingSink
    policy: MediaPolicy = field(default_factory=MediaPolicy)

    @classmethod
    def sound_card(
        cls,
        microphone: str | None = None,
        speaker: str | None = None,
        microphone_gain: float = 1.0,
        speaker_gain: float = 1.0,
        policy: MediaPolicy | None = None,
    ) -> CallAudio:
        """Calls through the sound card. ``microphone`` and ``speaker`` are device ids as
        ``intercom devices`` lists them (``None``: PortAudio's default); each call looks its
        device up again when it opens it, so a card plugged back in elsewhere is still found.

        The speaker's ring buffer is the playout buffer here, so by default the receiver hands
        each packet on at once (``jitter_frames=0``): holding a frame there as well cost 20 ms
        mouth to ear (86.5 against 66.5 ms through a hub on loopback) and smoothed nothing more.
        """
        from ..media.sound import MicrophoneTrack, SpeakerSink  # PortAudio only for units that use it

        def source() -> MediaStreamTrack:
            return MicrophoneTrack(device=microphone, gain=microphone_gain)

        def sink(track: MediaStreamTrack) -> AudioSink:
            return SpeakerSink(track, device=speaker, gain=speaker_gain)

        return cls(source=source, sink=sink, policy=policy or MediaPolicy(jitter_frames=0))
