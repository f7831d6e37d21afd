"""The database across crashes: every commit flushed, a writer killed mid-write leaves it whole,
a damaged file or a log without its database stops the hub instead of an empty database."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys

import pytest

from intercom.cli import main
from intercom.hub import Storage
from intercom.hub.records import CallRecord
from intercom.hub.storage import DATABASE_NAME, DatabaseDamaged

from ..units import STEP

# Writes calls as fast as it can, printing each id once its commit has returned.
WRITER = """
import asyncio, sys
from intercom.hub import Storage
from intercom.hub.records import CallRecord
async def write():
    storage = Storage(sys.argv[1])
    for number in range(1_000_000):
        await storage.put(CallRecord(id=f"{sys.argv[2]}-{number:07}", source="client:door", destination="door"))
        print(f"{sys.argv[2]}-{number:07}", flush=True)
asyncio.run(write())
"""


def test_the_log_is_flushed_at_every_commit(tmp_path):
    storage = Storage(tmp_path)
    assert storage._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert storage._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL


async def test_a_writer_killed_mid_write_leaves_the_database_whole_with_every_acknowledged_row(tmp_path):
    acknowledged: list[str] = []
    rounds = (150, 400)  # rows acknowledged before each kill; the second opens what the first left
    for number, count in enumerate(rounds):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), f"round{number}"], stdout=subprocess.PIPE
        )
        assert writer.stdout is not None
        for _ in range(count):
            line = writer.stdout.readline().decode().strip()
            assert line, f"the writer stopped early: {writer.wait(timeout=STEP)}"
            acknowledged.append(line)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=STEP)
        # what it printed before the kill and this test had not read yet was committed too
        acknowledged.extend(line.decode().strip() for line in writer.stdout.read().splitlines())
        assert (tmp_path / f"{DATABASE_NAME}-wal").stat().st_size > 0  # what the next open replays

    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    storage = Storage(tmp_path)
    stored = {call.id for call in (await storage.page(CallRecord))[0]}
    assert set(acknowledged) <= stored
    assert len(stored) - len(acknowledged) <= len(rounds)  # at most the row each writer was committing, unprinted
    storage.close()


def test_a_file_that_is_not_a_database_is_refused_and_left_as_it_was(tmp_path, capsys):
    damaged = tmp_path / DATABASE_NAME
    damaged.write_bytes(b"not a database, a photo of a cat " * 300)
    before = damaged.read_bytes()

    with pytest.raises(DatabaseDamaged, match="file is not a database"):
        Storage(tmp_path)
    assert main(["hub", "--data-dir", str(tmp_path), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"intercom hub: the database {damaged} is damaged (file is not a database)")
    assert "move it (and its -wal and -shm files) away to start an empty one" in err and err.count("\n") == 1
    assert main(["calls", "list", "--data-dir", str(tmp_path)]) == 1
    assert damaged.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [DATABASE_NAME]


def test_a_database_damaged_inside_is_refused(tmp_path):
    Storage(tmp_path).close()
    path = tmp_path / DATABASE_NAME
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema's page
    path.write_bytes(bytes(data))
    with pytest.raises(DatabaseDamaged, match=r"is damaged \(.*malformed.*\)"):
        Storage(tmp_path)


async def test_a_log_left_without_its_database_is_refused_and_kept(tmp_path):
    storage = Storage(tmp_path)
    await storage.put(CallRecord(source="client:door", destination="door"))
    log = tmp_path / f"{DATABASE_NAME}-wal"
    kept = log.read_bytes()
    (tmp_path / DATABASE_NAME).rename(tmp_path / "moved-away.sqlite3")
    storage.close()
    log.write_bytes(kept)  # as a SIGKILL would have left it

    with pytest.raises(DatabaseDamaged, match=f"is missing but its write-ahead log {log.name} is there"):
        Storage(tmp_path)
    assert log.read_bytes() == kept and not (tmp_path / DATABASE_NAME).exists()


async def test_the_heartbeat_is_kept_across_a_reopen(tmp_path):
    storage = Storage(tmp_path)
    assert await storage.last_alive() is None
    await storage.mark_alive(1000.0)
    await storage.mark_alive(1010.5)
    storage.close()
    assert await Storage(tmp_path).last_alive() == 1010.5


async def test_after_a_crash_the_hub_checks_the_database_whole_and_refuses_damage(tmp_path):
    storage = Storage(tmp_path)
    for number in range(2000):
        await storage.put(CallRecord(source="client:door", destination="door", reason=f"call {number}"))
    storage.close()
    path = tmp_path / DATABASE_NAME
    data = bytearray(path.read_bytes())
    middle = len(data) // 4096 // 2 * 4096
    data[middle : middle + 16] = b"\xff" * 16  # a page of the call log, which opening never reads
    path.write_bytes(bytes(data))

    log = tmp_path / f"{DATABASE_NAME}-wal"
    log.write_bytes(b"")  # what a clean stop leaves (Storage.stopped_cleanly)
    Storage(tmp_path, check_after_crash=True).close()  # no check, no cost
    log.write_bytes(b"\0" * 32)  # what a process that dies leaves: a log with something in it
    Storage(tmp_path).close()  # the CLI does not check
    log.write_bytes(b"\0" * 32)
    with pytest.raises(DatabaseDamaged, match=rf"the database {path} is damaged \("):
        Storage(tmp_path, check_after_crash=True)
