"""Where a call's sound comes from and goes to, how its peer connection is built, and its tones.

A source is any aiortc audio track (the microphone, a tone, a file, silence) and a sink anything
that reads a track between ``start()`` and ``stop()``. Each call gets a source and a sink of its
own from the factories; each call-progress tone (ringback, the ring) gets a sink of its own too,
so tones sound on the unit's own speaker and never go out to the far end.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import AudioStreamTrack

from ..audio.processing import ALL_PROCESSING, ProcessingSettings
from ..audio.samples import PLAYOUT_MS
from ..media import MediaPolicy, RecordingSink
from ..media.tones import EU, SoundFile, TonePlan, plan_for


class AudioSink(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def mix(self, samples: np.ndarray) -> None:
        """Play ``samples`` (48 kHz mono int16) over the track's audio, as soon as may be."""


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

    ``tones`` is the region's tone plan for ringback, busy, congestion and key feedback (``None``:
    no tones at all, the ring included); ``ring`` a sound file to ring with instead of the plan's
    built-in ring. The defaults send silence, keep the last seconds received
    (:class:`RecordingSink`) and play the European (CEPT) tones.
    """

    source: Callable[[], MediaStreamTrack] = AudioStreamTrack
    sink: Callable[[MediaStreamTrack], AudioSink] = RecordingSink
    policy: MediaPolicy = field(default_factory=MediaPolicy)
    tones: TonePlan | None = EU
    ring: SoundFile | None = None

    @classmethod
    def sound_card(
        cls,
        microphone: str | None = None,
        speaker: str | None = None,
        microphone_gain: float = 1.0,
        speaker_gain: float = 1.0,
        policy: MediaPolicy | None = None,
        region: str = "eu",
        ring_file: str | os.PathLike[str] | None = None,
        tones: bool = True,
        processing: ProcessingSettings = ALL_PROCESSING,
        playout_ms: float = PLAYOUT_MS,
    ) -> CallAudio:
        """Calls through the sound card. ``microphone`` and ``speaker`` are device ids as
        ``intercom devices`` lists them (``None``: PortAudio's default); each call looks its
        device up again when it opens it, so a card plugged back in elsewhere is still found.

        Tones follow ``region``'s plan (ValueError for a region without one) and ring with
        ``ring_file`` if given, which is read here: a file that cannot be played raises
        :class:`~intercom.media.tones.WavError` now, not when the first call rings. ``tones=False``
        plays none; both settings are checked all the same.

        The speaker's ring buffer is the playout buffer here, so by default the receiver hands
        each packet on at once (``jitter_frames=0``): holding a frame there as well cost 20 ms
        mouth to ear (86.5 against 66.5 ms through a hub on loopback) and smoothed nothing more.

        ``processing`` chooses the steps run on what the microphone captures (all by default: echo
        cancellation, noise suppression, automatic gain, high-pass filter). One processor serves
        every call of this ``CallAudio``, fed by every speaker sink it makes (tones included), so
        that the canceller stays converged on the room between calls.

        ``playout_ms`` is how much received audio the speaker holds before it plays (30 ms: two
        frames; 20 ms: one, 20 ms less mouth to ear but an underrun for every frame late by more
        than the slack the device leaves it, so for a quiet wired LAN). ValueError outside 20-40 ms.
        """
        from ..audio.microphone import MicrophoneTrack  # PortAudio only for units that use it
        from ..audio.processing import SoundProcessor
        from ..audio.speaker import SpeakerSink

        processor = SoundProcessor(processing) if processing.any else None

        def source() -> MediaStreamTrack:
            return MicrophoneTrack(device=microphone, gain=microphone_gain, processor=processor)

        def sink(track: MediaStreamTrack) -> AudioSink:
            return SpeakerSink(track, device=speaker, gain=speaker_gain, processor=processor, playout_ms=playout_ms)

        plan = plan_for(region)
        ring = SoundFile.read(ring_file) if ring_file is not None else None
        policy = policy or MediaPolicy(jitter_frames=0)
        return cls(source=source, sink=sink, policy=policy, tones=plan if tones else None, ring=ring)
