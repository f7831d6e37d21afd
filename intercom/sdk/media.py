"""Where a call's sound comes from and goes to, and how its peer connection is built.

Until the audio issue brings sounddevice, a source is any aiortc audio track (a tone, a file,
silence) and a sink anything that reads the far end's track between ``start()`` and ``stop()``.
Each call gets a source and a sink of its own from the factories.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiortc import MediaStreamTrack
from aiortc.mediastreams import AudioStreamTrack

from ..media import MediaPolicy, RecordingSink


class AudioSink(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class CallAudio:
    """``source()`` makes the track a call sends; ``sink(track)`` consumes the track it receives.

    The defaults send silence and keep the last seconds received (:class:`RecordingSink`).
    """

    source: Callable[[], MediaStreamTrack] = AudioStreamTrack
    sink: Callable[[MediaStreamTrack], AudioSink] = RecordingSink
    policy: MediaPolicy = field(default_factory=MediaPolicy)
