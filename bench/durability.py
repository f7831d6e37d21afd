"""Durability benchmark: what crash and power-cut safety costs (docs/storage.md).

Run from the repository root::

    .venv/bin/python bench/durability.py            # full run (about 30 s)
    .venv/bin/python bench/durability.py --quick    # smoke test
    .venv/bin/python bench/durability.py --json-out result.json

What it measures, in a scratch directory on the disk ``tempfile`` picks (a unit's is its SD card):

1. a call-log commit (``Storage.put``) with ``synchronous=FULL``, the hub's setting, against
   NORMAL measured in the same run, in alternating blocks: the price of every commit reaching the
   disk before the call goes on;
2. a recording's 20 ms writes (``WavRecorder.add``) flushed every 2 s of audio (the hub's
   default), against never flushed: the flush runs on a worker thread, so the write the event
   loop waits for should cost no more;
3. the repair of a 60 s recording cut mid-sample, as the next start after a crash does it;
4. the whole-database check a start after a crash runs (``PRAGMA quick_check``) with 100,000
   calls and 100,000 legs (10,000 each with ``--quick``).

It prints one JSON object with every figure, the targets and pass/fail, then a one-line summary.
Exit status: 0 when every target is met, 1 when one is missed, 2 on error or timeout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from harness import Figures, host_environment, package_versions, parse_args, percentile, run_and_report

from intercom.hub import Storage, blocking
from intercom.hub.records import CallRecord, LegRecord
from intercom.media import WavRecorder, repair_wav
from intercom.media.tracks import FRAME_SAMPLES, SAMPLE_RATE

TARGETS = {
    "commit_full_p99_ms": 20.0,  # a call writes ~10 rows: a fifth of a second at worst
    "recording_add_p99_ms_synced_over_unsynced": 2.0,
    "repair_60s_ms": 200.0,
    "check_100k_calls_s": 1.0,
}


async def commit_ms(storage: Storage, synchronous: str, count: int) -> list[float]:
    storage._db.execute(f"PRAGMA synchronous={synchronous}")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await storage.put(CallRecord(source="client:door", destination="door"))
        times.append((time.perf_counter() - started) * 1000)
    return times


def commits(workdir: Path, blocks: int, per_block: int) -> dict[str, object]:
    storage = Storage(workdir / "commits")
    full: list[float] = []
    normal: list[float] = []
    for _ in range(blocks):  # alternating, so that the disk's drift hits both alike
        full += blocking(commit_ms(storage, "FULL", per_block))
        normal += blocking(commit_ms(storage, "NORMAL", per_block))
    storage.close()
    full.sort()
    normal.sort()
    return {
        "commits_each": len(full),
        "full_p50_ms": round(percentile(full, 0.5), 3),
        "full_p99_ms": round(percentile(full, 0.99), 3),
        "normal_p50_ms": round(percentile(normal, 0.5), 3),
        "normal_p99_ms": round(percentile(normal, 0.99), 3),
    }


def recording_add_ms(path: Path, seconds: float, sync_seconds: float | None) -> list[float]:
    frame = (8000 * np.sin(2 * np.pi * 440 * np.arange(FRAME_SAMPLES) / SAMPLE_RATE)).astype(np.int16)
    recorder = WavRecorder(path, sync_seconds=sync_seconds)
    times = []
    for _ in range(round(seconds * SAMPLE_RATE / FRAME_SAMPLES)):
        started = time.perf_counter()
        recorder.add(frame)
        times.append((time.perf_counter() - started) * 1000)
    recorder.close()
    return sorted(times)


def recordings(workdir: Path, seconds: float) -> dict[str, object]:
    synced, unsynced = [], []
    for turn in range(2):  # unsynced, synced, synced, unsynced
        for sync_seconds in (None, 2.0) if turn == 0 else (2.0, None):
            times = recording_add_ms(workdir / f"r{turn}{sync_seconds}.wav", seconds, sync_seconds)
            (synced if sync_seconds else unsynced).extend(times)
    synced.sort()
    unsynced.sort()
    cut = workdir / "cut.wav"
    recording_add_ms(cut, 60.0, None)
    with open(cut, "r+b") as file:
        file.truncate(cut.stat().st_size - 1001)  # a write torn mid-sample
    started = time.perf_counter()
    repaired = repair_wav(cut, 1)
    repair_ms = (time.perf_counter() - started) * 1000
    return {
        "seconds_each": seconds * 2,
        "add_synced_p99_ms": round(percentile(synced, 0.99), 4),
        "add_synced_max_ms": round(synced[-1], 3),
        "add_unsynced_p99_ms": round(percentile(unsynced, 0.99), 4),
        "add_unsynced_max_ms": round(unsynced[-1], 3),
        "repair_60s_ms": round(repair_ms, 2),
        "repaired_seconds": round(repaired, 3),
    }


def check_after_crash(workdir: Path, calls: int) -> dict[str, object]:
    storage = Storage(workdir / "check")
    storage._db.execute("BEGIN")
    for _ in range(calls):
        call = blocking(
            storage.put(CallRecord(source="client:door", destination="door", status="ended", reason="no answer"))
        )
        leg = LegRecord(call_id=call.id, source="client:door", destination="client:desk", direction="outgoing")
        blocking(storage.put(leg))
    storage._db.execute("COMMIT")
    storage.close()
    (workdir / "check" / "intercom.sqlite3-wal").write_bytes(b"\0" * 32)  # as a crash leaves it
    started = time.perf_counter()
    Storage(workdir / "check", check_after_crash=True).close()
    opened = time.perf_counter() - started
    size = (workdir / "check" / "intercom.sqlite3").stat().st_size
    return {"calls": calls, "legs": calls, "database_mb": round(size / 1e6, 1), "open_with_check_s": round(opened, 3)}


async def run(quick: bool, workdir: Path) -> Figures:
    return {
        "commit": commits(workdir, blocks=2 if quick else 10, per_block=50 if quick else 100),
        "recording": recordings(workdir, 10.0 if quick else 60.0),
        "start_after_crash": check_after_crash(workdir, 10_000 if quick else 100_000),
    }


def verdict(figures: Figures) -> dict[str, bool]:
    commit, recording, check = figures["commit"], figures["recording"], figures["start_after_crash"]
    unsynced = max(recording["add_unsynced_p99_ms"], 0.001)
    passed = {
        "commit_full_p99_ms": commit["full_p99_ms"] <= TARGETS["commit_full_p99_ms"],
        "recording_add_p99_ms_synced_over_unsynced": recording["add_synced_p99_ms"] / unsynced
        <= TARGETS["recording_add_p99_ms_synced_over_unsynced"],
        "repair_60s_ms": recording["repair_60s_ms"] <= TARGETS["repair_60s_ms"],
        # scaled to 100,000 calls when --quick made fewer
        "check_100k_calls_s": check["open_with_check_s"] * 100_000 / check["calls"] <= TARGETS["check_100k_calls_s"],
    }
    return {**passed, "all": all(passed.values())}


def summary_line(figures: Figures) -> str:
    commit, recording, check = figures["commit"], figures["recording"], figures["start_after_crash"]
    return (
        f"durability: commit p99 {commit['full_p99_ms']} ms FULL vs {commit['normal_p99_ms']} ms NORMAL; "
        f"recording write p99 {recording['add_synced_p99_ms']} ms flushed every 2 s vs "
        f"{recording['add_unsynced_p99_ms']} ms never; 60 s repaired in {recording['repair_60s_ms']} ms; "
        f"start after a crash checks {check['calls']:,} calls ({check['database_mb']} MB) in "
        f"{check['open_with_check_s']} s"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__ or "", "fewer commits, 10 s recordings, 10,000 calls")
    return run_and_report(
        args,
        lambda workdir: run(args.quick, workdir),
        TARGETS,
        lambda: {**host_environment(), "packages": package_versions(["intercom"])},
        verdict,
        summary_line,
    )


if __name__ == "__main__":
    sys.exit(main())
