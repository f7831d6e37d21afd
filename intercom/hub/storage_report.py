"""``intercom storage``: what the hub's data directory holds, beside the limits that bound it."""

from __future__ import annotations

import os
from collections import Counter

from .records import RecordingRecord
from .retention import MB, StorageLimits, free_bytes, recordings_bytes
from .storage import DATABASE_NAME, Storage


async def storage_report(storage: Storage, limits: StorageLimits) -> list[str]:
    data_dir = storage.data_dir
    stats = os.statvfs(data_dir)
    database = sum(_size(data_dir / f"{DATABASE_NAME}{suffix}") for suffix in ("", "-wal", "-shm"))
    rows = await storage.row_counts()
    files: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    pruned = 0
    for recording in (await storage.page(RecordingRecord))[0]:
        if recording.pruned_at is not None:
            pruned += 1
            continue
        files[recording.kind] += 1
        sizes[recording.kind] += _size(data_dir / recording.path)
    kinds = ", ".join(f"{kind} {files[kind]} ({_mb(sizes[kind])})" for kind in sorted(files)) or "none"
    lines = [
        f"data directory {data_dir}: {_mb(free_bytes(data_dir))} free of {_mb(stats.f_blocks * stats.f_frsize)}",
        f"database {_mb(database)}: " + ", ".join(f"{table} {count}" for table, count in rows.items()),
        f"recordings {_mb(recordings_bytes(data_dir / 'recordings'))} of {_mb(limits.recordings_quota_bytes)}: "
        f"{kinds}; {pruned} pruned",
    ]
    if storage.fault.summary():
        lines.append(f"fault: {storage.fault.summary()}")
    return [*lines, "limits:", *(f"  {line}" for line in limits.describe())]


def _size(path: os.PathLike[str]) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"
