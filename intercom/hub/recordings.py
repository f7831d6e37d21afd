"""One recording of a call: a WAV file in the data directory and its row in the call log.

A recording follows the party's audio through :class:`~intercom.hub.flow_media.FlowMedia`: what
the party says, what it hears, or both as the left and right channel. It is kept when stopped;
a recording with no audio at all (the caller left at once) is dropped rather than logged empty.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from ..media import WavRecorder
from .flow_media import Consumer, FlowMedia
from .records import LegRecord, RecordingKind, RecordingRecord, new_id

if TYPE_CHECKING:
    from .calls import FlowServices

log = logging.getLogger(__name__)


class Recording:
    def __init__(
        self, services: FlowServices, leg: LegRecord, kind: RecordingKind, media: FlowMedia, said: bool, heard: bool
    ) -> None:
        self.services = services
        self.leg = leg
        self.kind = kind
        self.id = new_id()
        services.recordings_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = services.recordings_dir / f"{self.id}.wav"
        self.channels = 2 if said and heard else 1
        self.writer = WavRecorder(self.path, channels=self.channels)
        self._consumers: list[tuple[list[Consumer], Consumer]] = []
        if said:
            self._attach(media.said, 0)
        if heard:
            self._attach(media.heard, 1 if said else 0)
        self.kept: RecordingRecord | None = None
        self._stopped = False

    def _attach(self, consumers: list[Consumer], channel: int) -> None:
        def consume(samples: np.ndarray) -> None:
            self.writer.add(samples, channel)

        consumers.append(consume)
        self._consumers.append((consumers, consume))

    def stop(self) -> RecordingRecord | None:
        """Stop and keep the file; the row written to the call log, ``None`` when nothing was heard."""
        if self._stopped:
            return self.kept
        self._stopped = True
        for consumers, consume in self._consumers:
            consumers.remove(consume)
        if self.writer.duration == 0:
            self.writer.abort()
            return None
        duration = self.writer.close()
        self.kept = RecordingRecord(
            id=self.id,
            call_id=self.leg.call_id,
            leg_id=self.leg.id,
            kind=self.kind,
            duration=round(duration, 3),
            channels=self.channels,
            path=str(self.path.relative_to(self.services.data_dir)),
        )
        self.services.call_log.new_recording(self.kept)
        log.info("call %s: %s recording %s kept, %.1f s", self.leg.call_id, self.kind, self.id, duration)
        return self.kept
