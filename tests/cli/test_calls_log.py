"""``intercom calls list`` and ``calls show``: the call log over SSH, from rows in the database."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from intercom.cli import main
from intercom.hub import Storage
from intercom.hub.records import CallRecord

from ..hub.api.call_log import T0, door_call


@pytest.fixture(autouse=True)
def amsterdam() -> Iterator[None]:
    """Local time is the unit's: UTC+1 in November."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Amsterdam"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_calls_list_reads_newest_first_who_rang_who_answered_and_the_recordings(tmp_path, capsys):
    storage = Storage(tmp_path)
    earlier = await door_call(storage)
    await storage.put(CallRecord(source="reception", destination="client:desk", status="queued", created_at=T0 + 3600))
    code, out, _ = run(capsys, "calls", "list", "--data-dir", str(tmp_path))
    assert code == 0
    assert out.splitlines() == [
        "2026-11-25 12:00:00  reception → client:desk  queued",
        "2026-11-25 11:00:00  door → client:desk,client:kitchen  ended, talked 0:42  (caller hung up)",
        "    rang desk: answered 0:42; kitchen: no_answer",
        f"    recording 0:42  {tmp_path / earlier.recording.path}",
    ]
    code, out, _ = run(capsys, "calls", "list", "--data-dir", str(tmp_path), "--limit", "1")
    assert out.splitlines() == [
        "2026-11-25 12:00:00  reception → client:desk  queued",
        "(1 older calls not shown; --limit N shows more)",
    ]


def test_calls_list_of_an_empty_log_and_a_bad_limit(tmp_path, capsys):
    assert run(capsys, "calls", "list", "--data-dir", str(tmp_path)) == (0, "no calls\n", "")
    code, _, err = run(capsys, "calls", "list", "--data-dir", str(tmp_path), "--limit", "0")
    assert code == 2 and "--limit" in err


async def test_calls_show_prints_the_call_its_legs_and_recordings(tmp_path, capsys):
    logged = await door_call(Storage(tmp_path))
    code, out, _ = run(capsys, "calls", "show", "--data-dir", str(tmp_path), logged.call.id)
    assert code == 0
    assert out.splitlines() == [
        f"call {logged.call.id}: ended (caller hung up)",
        "  from door to client:desk,client:kitchen, call flow door",
        "  started 2026-11-25 11:00:00, ended 2026-11-25 11:00:50",
        "legs:",
        f"  {logged.caller.id}  incoming  door → hub  hangup  answered 2026-11-25 11:00:01, talked 0:49",
        f"  {logged.desk.id}  outgoing  door → client:desk  hangup  answered 2026-11-25 11:00:08, talked 0:42",
        f"  {logged.kitchen.id}  outgoing  door → client:kitchen  no_answer",
        "recordings:",
        f"  {logged.recording.id}  transfer  0:42  leg {logged.desk.id}  {tmp_path / logged.recording.path}",
    ]
    code, out, err = run(capsys, "calls", "show", "--data-dir", str(tmp_path), "nope")
    assert (code, out) == (2, "") and err == "intercom calls: no call with id 'nope'\n"


async def test_calls_show_of_a_call_not_started_yet(tmp_path, capsys):
    call = await Storage(tmp_path).put(
        CallRecord(source="reception", destination="client:desk", status="queued", created_at=T0)
    )
    code, out, _ = run(capsys, "calls", "show", "--data-dir", str(tmp_path), call.id)
    assert code == 0
    assert out.splitlines() == [
        f"call {call.id}: queued",
        "  from reception to client:desk, call flow -",
        "  started 2026-11-25 11:00:00",
        "legs: none",
        "recordings: none",
    ]
