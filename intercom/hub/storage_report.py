"""``intercom storage``: what the hub's data directory and database hold, beside the limits that
bound them. On PostgreSQL (several hubs, one database) the data directory holds the recordings
only, the database's size is the server's own figure, and SQLite's files do not exist: the report
says so rather than printing zeros."""

from __future__ import annotations

import os
from collections import Counter

from .records import RecordingRecord
from .retention import MB, StorageLimits, free_bytes, recordings_bytes
from .storage import DATABASE_NAME, Storage

ONLY_ON_SQLITE = "not on PostgreSQL: the SQLite file and its WAL (the database's size above is the server's own)"


async def storage_report(storage: Storage, limits: StorageLimits, postgresql: bool = False) -> list[str]:
    """The report's lines; ``postgresql``: ``storage`` is the database the hubs share."""
    data_dir = storage.data_dir
    stats = os.statvfs(data_dir)
    rows = await storage.row_counts()
    counts = ", ".join(f"{table} {count}" for table, count in rows.items())
    if postgresql:
        name, size = await storage.row("SELECT current_database(), pg_database_size(current_database())") or ("", 0)
        where = f"recordings directory {data_dir} (every hub's)"
        database = f"database {name} on PostgreSQL {_mb(size)}: {counts}"
    else:
        size = sum(_size(data_dir / f"{DATABASE_NAME}{suffix}") for suffix in ("", "-wal", "-shm"))
        where, database = f"data directory {data_dir}", f"database {_mb(size)}: {counts}"
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
        f"{where}: {_mb(free_bytes(data_dir))} free of {_mb(stats.f_blocks * stats.f_frsize)}",
        database,
        f"recordings {_mb(recordings_bytes(data_dir / 'recordings'))} of {_mb(limits.recordings_quota_bytes)}: "
        f"{kinds}; {pruned} pruned",
    ]
    if postgresql:
        lines.append(ONLY_ON_SQLITE)
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
