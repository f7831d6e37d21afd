"""One recording of a call: a WAV file in the data directory and its row in the call log.

A recording follows the party's audio through :class:`~intercom.hub.flow_media.FlowMedia`: what
the party says, what it hears, or both as the left and right channel. It is kept when stopped;
a recording with no audio at all (the caller left at once) is dropped rather than logged empty.

It stops early, keeping what it has, and the call goes on, when it reaches its maximum length,
when the data directory's free space falls below the floor (looked at every second of audio), or
when the disk refuses the file (read-only, full); none starts below the floor. Each says why in
one log line, in the row's ``cut``, and in ``intercom_recordings_cut_total``.

Its row is written as its file is made, with status "recording", and the file is playable at
every moment (:class:`~intercom.media.WavRecorder`): a hub killed or cut off mid-recording finds
the row at its next start, repairs the file and lists it (:func:`recover_recordings`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import numpy as np

from ..media import WavRecorder, repair_wav
from .flow_media import Consumer, FlowMedia
from .records import LegRecord, RecordingKind, RecordingRecord, new_id
from .retention import MB, free_bytes
from .storage_fault import RECORDINGS

if TYPE_CHECKING:
    from pathlib import Path

    from .call_log import CallLog
    from .calls import FlowServices

log = logging.getLogger(__name__)

FREE_SPACE_CHECK_SECONDS = 1.0  # of audio between two looks at the free space (one statvfs)


class Recording:
    def __init__(
        self, services: FlowServices, leg: LegRecord, kind: RecordingKind, media: FlowMedia, said: bool, heard: bool
    ) -> None:
        self.services = services
        self.leg = leg
        self.kind = kind
        self.id = new_id()
        self.path = services.recordings_dir / f"{self.id}.wav"
        self.channels = 2 if said and heard else 1
        self.cut: str | None = None  # why it stopped early, once it has
        self.kept: RecordingRecord | None = None
        self._stopped = False
        self._consumers: list[tuple[list[Consumer], Consumer]] = []
        self._free_checked_at = 0.0  # seconds of audio
        self.writer: WavRecorder | None = None
        self.row: RecordingRecord | None = None
        self._media, self._said, self._heard = media, said, heard

    async def start(self) -> None:
        """Its row, then its file, then the audio flows in; on a refusing disk it is cut at once."""
        try:
            self.services.recordings_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self._free_space_low():
                return
            self.row = await self._started()
            self.writer = WavRecorder(
                self.path, channels=self.channels, sync_seconds=self.services.recording_sync_seconds
            )
        except OSError as exc:
            self._disk_refused(exc)
            await self._drop_row()
            return
        if self._said:
            self._attach(self._media.said, 0)
        if self._heard:
            self._attach(self._media.heard, 1 if self._said else 0)

    @property
    def silent_seconds(self) -> float:
        """How long the party has been quiet (for a voicemail's end on silence)."""
        return self.writer.silent_seconds if self.writer is not None else 0.0

    async def _started(self) -> RecordingRecord:
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
        await self.services.call_log.recording_started(row)
        return row

    async def _drop_row(self) -> None:
        if self.row is not None:
            await self.services.call_log.recording_dropped(self.row)

    def _attach(self, consumers: list[Consumer], channel: int) -> None:
        def consume(samples: np.ndarray) -> None:
            if self.cut is None and self.writer is not None:
                try:
                    self.writer.add(samples, channel)
                except OSError as exc:
                    self._disk_refused(exc)
                    return
                self._check_limits(self.writer.duration)

        consumers.append(consume)
        self._consumers.append((consumers, consume))

    def _check_limits(self, duration: float) -> None:
        limit = self.services.storage_limits.recording_max_seconds
        if duration >= limit:
            self._stop_early("max_length", f"it reached the maximum length of {limit:g} s (recording_max_seconds)")
        elif duration - self._free_checked_at >= FREE_SPACE_CHECK_SECONDS:
            self._free_checked_at = duration
            try:
                self._free_space_low()
            except OSError as exc:
                self._disk_refused(exc)

    def _free_space_low(self) -> bool:
        floor = self.services.storage_limits.min_free_bytes
        free = free_bytes(self.services.recordings_dir)
        if free >= floor:
            return False
        why = f"{free // MB} MB free in the data directory, below the floor of {floor // MB} MB (min_free_mb)"
        self.services.fault.failed(RECORDINGS, why)
        self._stop_early("free_space", why)
        return True

    def _disk_refused(self, exc: OSError) -> None:
        self.services.fault.failed(RECORDINGS, exc)
        self._stop_early("write_error", f"the disk refused it ({exc.strerror or exc})")

    def _stop_early(self, reason: str, why: str) -> None:
        if self.cut is not None:
            return
        self.cut = why
        self.services.recordings_cut[reason] += 1
        seconds = self.writer.duration if self.writer is not None else 0.0
        log.warning(
            "call %s: %s recording %s stopped at %.1f s: %s", self.leg.call_id, self.kind, self.id, seconds, why
        )

    async def stop(self) -> RecordingRecord | None:
        """Stop and keep the file; the row written to the call log, ``None`` when nothing was heard."""
        if self._stopped:
            return self.kept
        self._stopped = True
        for consumers, consume in self._consumers:
            consumers.remove(consume)
        if self.writer is None or self.row is None:
            return None
        if self.writer.duration == 0:
            self.writer.abort()
            await self._drop_row()
            return None
        try:
            duration = self.writer.close()
        except OSError as exc:
            self._disk_refused(exc)
            with contextlib.suppress(OSError):
                self.writer.abort()
            await self._drop_row()
            return None
        if self.cut is None:
            self.services.fault.recovered(RECORDINGS)
        self.kept = self.row.model_copy(update={"duration": round(duration, 3), "status": "done", "cut": self.cut})
        await self.services.call_log.new_recording(self.kept)
        log.info("call %s: %s recording %s kept, %.1f s", self.leg.call_id, self.kind, self.id, duration)
        return self.kept


async def recover_recordings(call_log: CallLog, data_dir: Path) -> int:
    """At start-up: the recordings a stopped hub left running are repaired and kept, with the
    audio their file holds (see :func:`~intercom.media.repair_wav`); one without audio goes. How
    many were kept. A file that cannot be repaired now (a read-only card) is left for the next start.
    """
    kept = 0
    for row in await call_log.storage.unfinished(RecordingRecord, ("done",)):
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
            await call_log.recording_dropped(row)
            log.warning("%s: the hub stopped before it held any audio; dropped", which)
            continue
        await call_log.new_recording(row.model_copy(update={"duration": round(duration, 3), "status": "done"}))
        kept += 1
        log.warning("%s: the hub stopped while it ran; repaired, %.1f s kept", which, duration)
    return kept
