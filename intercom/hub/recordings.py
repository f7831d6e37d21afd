"""One recording of a call: a WAV file in the data directory and its row in the call log.

A recording follows the party's audio through :class:`~intercom.hub.flow_media.FlowMedia`: what
the party says, what it hears, or both as the left and right channel. It is kept when stopped;
a recording with no audio at all (the caller left at once) is dropped rather than logged empty.

Its row is written as its file is made, with status "recording", and the file is playable at
every moment (:class:`~intercom.media.WavRecorder`): a hub killed or cut off mid-recording finds
the row at its next start, repairs the file and lists it (:func:`recover_recordings`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from ..media import WavRecorder, repair_wav
from .flow_media import Consumer, FlowMedia
from .records import LegRecord, RecordingKind, RecordingRecord, new_id

if TYPE_CHECKING:
    from pathlib import Path

    from .call_log import CallLog
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
        services.recordings_dir.mkdir(parents=True, exist_ok=True)
        self.path = services.recordings_dir / f"{self.id}.wav"
        self.channels = 2 if said and heard else 1
        self.row = self._started()
        self.writer = WavRecorder(self.path, channels=self.channels, sync_seconds=services.recording_sync_seconds)
        self._consumers: list[tuple[list[Consumer], Consumer]] = []
        if said:
            self._attach(media.said, 0)
        if heard:
            self._attach(media.heard, 1 if said else 0)
        self.kept: RecordingRecord | None = None
        self._stopped = False

    def _started(self) -> RecordingRecord:
        """The row, before the file: no file of ours is ever left without one."""
        row = RecordingRecord(
            id=self.id,
            call_id=self.leg.call_id,
            leg_id=self.leg.id,
            kind=self.kind,
            channels=self.channels,
            path=str(self.path.relative_to(self.services.data_dir)),
            status="recording",
        )
        self.services.call_log.recording_started(row)
        return row

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
            self.services.call_log.recording_dropped(self.row)
            return None
        duration = self.writer.close()
        self.kept = self.row.model_copy(update={"duration": round(duration, 3), "status": "done"})
        self.services.call_log.new_recording(self.kept)
        log.info("call %s: %s recording %s kept, %.1f s", self.leg.call_id, self.kind, self.id, duration)
        return self.kept


def recover_recordings(call_log: CallLog, data_dir: Path) -> int:
    """At start-up: the recordings a stopped hub left running are repaired and kept, with the
    audio their file holds (see :func:`~intercom.media.repair_wav`); one without audio goes. How
    many were kept. A file that cannot be repaired now (a read-only card) is left for the next start.
    """
    kept = 0
    for row in call_log.storage.unfinished(RecordingRecord, ("done",)):
        path, which = data_dir / row.path, f"recording {row.id} of call {row.call_id}"
        try:
            duration = repair_wav(path, row.channels)
        except FileNotFoundError:
            duration = 0.0
        except OSError as exc:
            log.warning("%s: cannot be repaired now (%s); left for the next start", which, exc)
            continue
        if duration == 0:
            path.unlink(missing_ok=True)
            call_log.recording_dropped(row)
            log.warning("%s: the hub stopped before it held any audio; dropped", which)
            continue
        call_log.new_recording(row.model_copy(update={"duration": round(duration, 3), "status": "done"}))
        kept += 1
        log.warning("%s: the hub stopped while it ran; repaired, %.1f s kept", which, duration)
    return kept
