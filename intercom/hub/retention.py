"""What the hub's data directory may hold, and the pruning that keeps it there: a unit on a wall
for years must never fill its SD card.

Recordings have a quota in bytes; above it the oldest go first, by kind: whole-call recordings
(``call``), then a transfer's (``transfer``), and voicemails (``ivr``) last, since a voicemail
is a message someone left for the resident and a whole-call recording only a copy of a talk both
sides heard. A pruned recording keeps its row in the call log with ``prunedAt`` set (the Voice
API answers 410 Gone for its file), so the log still says a recording was made. The call log
(calls, with their legs and recordings, files included) and the webhook deliveries are pruned by
age and by count. Everything is deleted a small batch at a time, the event loop free between two.

Each recording also has a maximum length and stops (the call goes on) when the data directory's
free space falls below a floor: see :mod:`intercom.hub.recordings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .records import RecordingRecord
from .storage_fault import CALL_LOG, PARTS, RECORDINGS

if TYPE_CHECKING:
    from .call_log import CallLog
    from .storage import Storage

log = logging.getLogger(__name__)

PRUNE_ORDER = ("call", "transfer", "ivr")  # recording kinds, the first to go first
CUT_REASONS = ("max_length", "free_space", "write_error")  # why a recording stopped before its step
DAY = 86_400.0
MB = 1 << 20


@dataclass(frozen=True)
class StorageLimits:
    """The data directory's limits. The defaults suit an 8-32 GB SD card holding the image
    (~1.6 GB): see docs/storage.md for the arithmetic."""

    recordings_quota_bytes: int = 1024 * MB  # ~3 h of voicemail (96 kB/s), ~1.5 h of stereo whole-call audio
    recording_max_seconds: float = 600.0  # one recording: 55 MB mono, 110 MB stereo at most
    min_free_bytes: int = 256 * MB  # below it no recording starts and running ones stop
    calls_max_age_days: float = 365.0
    calls_max_rows: int = 50_000  # a busy door's ~20 calls a day for years, ~100 MB of rows
    deliveries_max_age_days: float = 30.0
    deliveries_max_rows: int = 20_000
    prune_interval_seconds: float = 60.0  # how often the quota and the log's limits are enforced
    prune_batch: int = 50  # rows deleted at once: ~10 ms of the event loop on a Pi-class SD card
    retry_seconds: float = 5.0  # how soon rows a failing disk held back are tried again

    @classmethod
    def of(
        cls,
        *,
        recordings_quota_mb: int | None = None,
        recording_max_seconds: float | None = None,
        min_free_mb: int | None = None,
        calls_max_age_days: float | None = None,
        calls_max_rows: int | None = None,
        deliveries_max_age_days: float | None = None,
        deliveries_max_rows: int | None = None,
    ) -> StorageLimits:
        """The limits in the units of ``intercom hub``'s flags and the unit's env file (their names:
        :data:`intercom.hub_flags.STORAGE_LIMITS`); ``None`` keeps the default."""
        given = {
            "recordings_quota_bytes": recordings_quota_mb and recordings_quota_mb * MB,
            "recording_max_seconds": recording_max_seconds,
            "min_free_bytes": min_free_mb and min_free_mb * MB,
            "calls_max_age_days": calls_max_age_days,
            "calls_max_rows": calls_max_rows,
            "deliveries_max_age_days": deliveries_max_age_days,
            "deliveries_max_rows": deliveries_max_rows,
        }
        return cls(**{name: value for name, value in given.items() if value is not None})

    def describe(self) -> list[str]:
        """The limits in words, a line each, with the setting that changes them."""
        return [
            f"recordings quota {self.recordings_quota_bytes // MB} MB (recordings_quota_mb); "
            f"pruned first: {', '.join(PRUNE_ORDER)}",
            f"one recording at most {self.recording_max_seconds:g} s (recording_max_seconds)",
            f"recording stops below {self.min_free_bytes // MB} MB free (min_free_mb)",
            f"calls kept {self.calls_max_age_days:g} days (calls_max_age_days), "
            f"at most {self.calls_max_rows} (calls_max_rows)",
            f"webhook deliveries kept {self.deliveries_max_age_days:g} days (deliveries_max_age_days), "
            f"at most {self.deliveries_max_rows} (deliveries_max_rows)",
        ]


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding ``path``."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def recordings_bytes(recordings_dir: Path) -> int:
    """The size of every file under the recordings folder, those being written included."""
    total = 0
    for folder, _, names in os.walk(recordings_dir):
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # a recording renamed or pruned as we look
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


@dataclass
class PruneCounts:
    recordings: int = 0
    calls: int = 0
    deliveries: int = 0
    unlock_events: int = 0  # the doors' reports, kept within the call log's limits


class Retention:
    """The background work that keeps the data directory within :class:`StorageLimits`, and
    writes the call-log rows a failing disk held back once it works again."""

    def __init__(self, storage: Storage, call_log: CallLog, limits: StorageLimits) -> None:
        self.storage = storage
        self.call_log = call_log
        self.limits = limits
        self.recordings_dir = storage.data_dir / "recordings"
        self.pruned = PruneCounts()  # since start-up, for /metrics
        self.recordings_bytes = recordings_bytes(self.recordings_dir)

    async def run(self) -> None:
        """Forever: rows held back retried every ``retry_seconds``, limits enforced every
        ``prune_interval_seconds`` (and once at start-up)."""
        loop = asyncio.get_running_loop()
        pruned_at = -float("inf")
        while True:
            try:
                await self.call_log.write_held_back()
                self._recheck_recordings()
                if loop.time() - pruned_at >= self.limits.prune_interval_seconds:
                    pruned_at = loop.time()
                    await self.prune()
            except Exception:  # a bad round must not stop the next ones
                log.exception("pruning the data directory failed; trying again")
            await asyncio.sleep(min(self.limits.retry_seconds, self.limits.prune_interval_seconds))

    def _recheck_recordings(self) -> None:
        """Recordings failed (a full or read-only disk): clear the fault once there is room above
        the floor and a file can be written again, without waiting for the next recording."""
        if RECORDINGS not in self.storage.fault.parts:
            return
        probe = self.recordings_dir / ".probe"
        try:
            if free_bytes(self.storage.data_dir) < self.limits.min_free_bytes:
                return
            self.recordings_dir.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"\0")
            probe.unlink()
        except OSError:
            return
        self.storage.fault.recovered(RECORDINGS)

    async def prune(self, now: float | None = None) -> PruneCounts:
        """One round: the recordings quota, then the call log and the deliveries; what went."""
        now = time.time() if now is None else now
        counts = PruneCounts(recordings=await self._prune_recordings(now))
        if CALL_LOG in self.storage.fault.parts:
            return counts  # the database cannot be written: deleting would fail the same way
        limits, batch = self.limits, self.limits.prune_batch
        while True:
            calls, files = await self.storage.prune_calls(
                now - limits.calls_max_age_days * DAY, limits.calls_max_rows, batch
            )
            for path in files:
                self._remove(path)
            counts.calls += calls
            if calls < batch:
                break
            await asyncio.sleep(0)
        while (deliveries := await self.storage.prune_deliveries(
            now - limits.deliveries_max_age_days * DAY, limits.deliveries_max_rows, batch
        )) > 0:  # fmt: skip
            counts.deliveries += deliveries
            await asyncio.sleep(0)
        while (unlock_events := await self.storage.prune_unlock_events(
            now - limits.calls_max_age_days * DAY, limits.calls_max_rows, batch
        )) > 0:  # fmt: skip
            counts.unlock_events += unlock_events
            await asyncio.sleep(0)
        self.recordings_bytes = recordings_bytes(self.recordings_dir)
        for name in ("recordings", "calls", "deliveries", "unlock_events"):
            setattr(self.pruned, name, getattr(self.pruned, name) + getattr(counts, name))
        if counts.calls or counts.deliveries:
            log.info(
                "pruned %d call(s) and %d webhook deliveries (older than %g / %g days or beyond %d / %d rows)",
                counts.calls,
                counts.deliveries,
                limits.calls_max_age_days,
                limits.deliveries_max_age_days,
                limits.calls_max_rows,
                limits.deliveries_max_rows,
            )
        return counts

    async def _prune_recordings(self, now: float) -> int:
        quota = self.limits.recordings_quota_bytes
        used = self.recordings_bytes = recordings_bytes(self.recordings_dir)
        pruned = 0
        for kind in PRUNE_ORDER:
            while used > quota:
                oldest = await self.storage.kept_recordings(kind, self.limits.prune_batch)
                if not oldest:
                    break
                for recording in oldest:
                    if used <= quota:
                        break
                    used -= self._remove(recording.path)
                    recording.pruned_at = now
                    await self.storage.try_put(recording)
                    pruned += 1
                await asyncio.sleep(0)
        self.recordings_bytes = max(used, 0)
        if pruned:
            log.warning(
                "pruned %d recording(s), the oldest first, to keep within the recordings quota of %g MB "
                "(recordings_quota_mb)",
                pruned,
                quota / MB,
            )
        return pruned

    async def delete_recording(self, recording: RecordingRecord) -> None:
        """A recording deleted through the Voice API: its file (unless pruned already), then its
        row. ``OSError`` when the disk refuses the file, and then the row stays: a failing disk
        leaves at worst a row without its file, never a file nothing lists."""
        if recording.pruned_at is None:
            self.recordings_bytes = max(self.recordings_bytes - self._unlink(recording.path), 0)
        await self.storage.delete(RecordingRecord, recording.id)
        log.info("recording %s of call %s deleted", recording.id, recording.call_id)

    def _remove(self, relative: str) -> int:
        """:meth:`_unlink` for the pruning: a file the disk will not give up is logged and left."""
        try:
            return self._unlink(relative)
        except OSError as exc:
            log.warning("recording %s not deleted: %s", relative, exc.strerror)
            return 0

    def _unlink(self, relative: str) -> int:
        """Delete a recording's file; its size, 0 when it was gone already. Only inside the data directory."""
        path = (self.storage.data_dir / relative).resolve()
        if not path.is_relative_to(self.storage.data_dir.resolve()):
            log.warning("recording path %r is outside the data directory; not deleted", relative)
            return 0
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def metrics(self, recordings_cut: Mapping[str, int]) -> str:
        """Prometheus lines: the data directory's use and faults; ``recordings_cut``: recordings
        stopped early, by why (a limit, a full disk)."""
        fault = self.storage.fault
        lines = [
            "# TYPE intercom_recordings_bytes gauge",
            f"intercom_recordings_bytes {self.recordings_bytes}",
            "# TYPE intercom_recordings_quota_bytes gauge",
            f"intercom_recordings_quota_bytes {self.limits.recordings_quota_bytes}",
            "# TYPE intercom_data_free_bytes gauge",
            f"intercom_data_free_bytes {_free_or_zero(self.storage.data_dir)}",
            "# TYPE intercom_pruned_total counter",
            f'intercom_pruned_total{{what="recordings"}} {self.pruned.recordings}',
            f'intercom_pruned_total{{what="calls"}} {self.pruned.calls}',
            f'intercom_pruned_total{{what="deliveries"}} {self.pruned.deliveries}',
            "# TYPE intercom_recordings_cut_total counter",
            *(f'intercom_recordings_cut_total{{why="{why}"}} {recordings_cut.get(why, 0)}' for why in CUT_REASONS),
            "# TYPE intercom_storage_fault gauge",
            *(f'intercom_storage_fault{{part="{part}"}} {int(part in fault.parts)}' for part in PARTS),
            "# TYPE intercom_call_log_held_back gauge",
            f"intercom_call_log_held_back {self.call_log.held_back}",
            "# TYPE intercom_call_log_lost_total counter",
            f"intercom_call_log_lost_total {self.call_log.lost}",
        ]
        return "\n".join(lines) + "\n"


def _free_or_zero(path: Path) -> int:
    try:
        return free_bytes(path)
    except OSError:
        return 0
