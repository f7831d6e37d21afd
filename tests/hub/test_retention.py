"""Pruning on a real database and real files: the recordings quota (oldest first, by kind), the
call log and webhook deliveries by age and count, a small batch at a time; start-up reads only
the pending deliveries; the limits' settings agree everywhere they are named."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import time
from dataclasses import replace

import httpx
import pytest

from intercom.appliance.settings import HUB_STORAGE_LIMITS, Settings
from intercom.hub import Storage
from intercom.hub.call_log import CallLog
from intercom.hub.records import CallRecord, LegRecord, RecordingRecord, WebhookDelivery
from intercom.hub.retention import DAY, MB, Retention, StorageLimits
from intercom.hub.storage import DATABASE_NAME
from intercom.hub_flags import STORAGE_LIMITS as STORAGE_LIMIT_FLAGS

NOW = 1_800_000_000.0
KB = 1024


def retention(storage: Storage, **limits) -> Retention:
    return Retention(storage, CallLog(storage), StorageLimits(**limits))


async def a_call(storage: Storage, age_days: float, status: str = "ended", recording: tuple[str, int] | None = None):
    """A call made ``age_days`` before NOW with one leg, and a recording of (kind, bytes) if given."""
    created = NOW - age_days * DAY
    call = await storage.put(CallRecord(source="client:door", destination="door", status=status, created_at=created))
    leg = await storage.put(
        LegRecord(call_id=call.id, source="client:door", destination="door", direction="incoming", created_at=created)
    )
    if recording is not None:
        kind, size = recording
        await storage.put(recording_row(storage, call, leg, kind, size, created))
    return call


def recording_row(storage, call, leg, kind, size, created) -> RecordingRecord:
    row = RecordingRecord(
        call_id=call.id, leg_id=leg.id, kind=kind, path=f"recordings/{call.id}.wav", created_at=created
    )
    (storage.data_dir / "recordings").mkdir(exist_ok=True)
    (storage.data_dir / row.path).write_bytes(b"\0" * size)
    return row


async def a_delivery(storage: Storage, age_days: float, status: str = "delivered") -> WebhookDelivery:
    return await storage.put(
        WebhookDelivery(url="http://127.0.0.1:9/", token="t", event="callUpdated", payload="{}", status=status,
                        created_at=NOW - age_days * DAY)
    )  # fmt: skip


async def ids(storage: Storage, kind) -> set[str]:
    return {row.id for row in (await storage.page(kind))[0]}


async def test_the_call_log_goes_by_age_with_legs_and_recording_files_but_not_a_call_still_going(storage, tmp_path):
    await a_call(storage, 400, recording=("ivr", 10))
    going = await a_call(storage, 400, status="ongoing")
    young = await a_call(storage, 10, recording=("ivr", 10))
    counts = await retention(storage).prune(now=NOW)
    assert (counts.calls, counts.recordings, counts.deliveries) == (1, 0, 0)
    assert await ids(storage, CallRecord) == {going.id, young.id}
    assert {leg.call_id for leg in (await storage.page(LegRecord))[0]} == {going.id, young.id}
    assert [rec.call_id for rec in (await storage.page(RecordingRecord))[0]] == [young.id]
    assert sorted(path.stem for path in (tmp_path / "recordings").iterdir()) == [young.id]


async def test_the_call_log_keeps_the_newest_calls_up_to_its_count_in_small_batches(storage, tmp_path):
    calls = [await a_call(storage, age_days=30 - day) for day in range(25)]  # oldest first
    ticks = 0

    async def other_work() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    async with asyncio.timeout(10):
        await asyncio.sleep(0)
        counts = await retention(storage, calls_max_rows=5, prune_batch=4).prune(now=NOW)
    other.cancel()
    assert counts.calls == 20
    assert await ids(storage, CallRecord) == {call.id for call in calls[-5:]}
    assert ticks >= 20 // 4  # the event loop ran other work between the batches


async def test_deliveries_go_by_age_and_count_but_pending_ones_stay(storage, tmp_path):
    old = [await a_delivery(storage, 40), await a_delivery(storage, 40, "failed")]
    pending = await a_delivery(storage, 40, "pending")
    recent = [await a_delivery(storage, 20 - day) for day in range(6)]
    counts = await retention(storage, deliveries_max_rows=4).prune(now=NOW)
    assert counts.deliveries == len(old) + 2  # beyond the newest 4 rows, or too old: but not the pending one
    assert await ids(storage, WebhookDelivery) == {pending.id, *(row.id for row in recent[-4:])}
    assert not {row.id for row in old} & await ids(storage, WebhookDelivery)


async def test_the_recordings_quota_prunes_whole_calls_first_then_transfers_then_voicemails_oldest_first(storage):
    made = {}
    for age, kind in [(5, "ivr"), (4, "call"), (3, "transfer"), (2, "ivr"), (1, "call"), (0, "transfer")]:
        made[(age, kind)] = await a_call(storage, age, recording=(kind, 100 * KB))
    keeper = retention(storage, recordings_quota_bytes=250 * KB)
    assert (await keeper.prune(now=NOW)).recordings == 4
    rows = {rec.call_id: rec for rec in (await storage.page(RecordingRecord))[0]}
    pruned = {key for key, call in made.items() if rows[call.id].pruned_at is not None}
    assert pruned == {(4, "call"), (1, "call"), (3, "transfer"), (0, "transfer")}
    assert keeper.recordings_bytes == 200 * KB <= keeper.limits.recordings_quota_bytes
    assert len(list((storage.data_dir / "recordings").iterdir())) == 2
    assert all(rows[made[key].id].pruned_at == NOW for key in pruned)  # the rows stay, marked
    assert await ids(storage, CallRecord) == {call.id for call in made.values()}

    keeper = retention(storage, recordings_quota_bytes=150 * KB)
    assert (await keeper.prune(now=NOW)).recordings == 1  # now voicemails, the oldest first
    assert (await storage.get(RecordingRecord, rows[made[(5, "ivr")].id].id)).pruned_at == NOW
    assert (await storage.get(RecordingRecord, rows[made[(2, "ivr")].id].id)).pruned_at is None


async def test_a_pruned_recording_is_listed_as_pruned_and_its_file_is_gone(storage, tmp_path):
    from intercom.hub.api.views import RecordingView

    call = await a_call(storage, 1, recording=("ivr", 10 * KB))
    await retention(storage, recordings_quota_bytes=1).prune(now=NOW)
    (row,) = (await storage.page(RecordingRecord))[0]
    assert RecordingView.of(row).status == "pruned" and row.call_id == call.id
    assert not (tmp_path / row.path).exists()


async def test_start_up_reads_only_the_pending_deliveries_through_their_index(tmp_path):
    storage = Storage(tmp_path)
    for age in range(50):
        await a_delivery(storage, age)
    waiting = [await a_delivery(storage, 3, "pending"), await a_delivery(storage, 1, "pending")]
    assert [row.id for row in await storage.pending_deliveries()] == [row.id for row in waiting]
    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT body FROM webhook_deliveries "
            "WHERE json_extract(body, '$.status') = 'pending' ORDER BY created_at"
        ).fetchall()
    assert "USING INDEX deliveries_pending" in str(plan)


async def test_the_call_log_holds_rows_back_while_the_database_refuses_them_and_writes_them_after(tmp_path, caplog):
    storage = Storage(tmp_path)
    log = CallLog(storage)
    storage._db.execute("PRAGMA query_only=1")  # what SQLite answers on a read-only database
    call = await log.new_call(CallRecord(source="client:door", destination="door"))
    await log.update_call(call, status="ongoing")
    await log.update_call(call, status="ended")
    assert await storage.get(CallRecord, call.id) is None and log.held_back == 1
    assert "readonly" in storage.fault.parts["call_log"]
    assert len([r for r in caplog.records if "call log not written" in r.message]) == 1  # once, not per write
    storage._db.execute("PRAGMA query_only=0")
    await log.write_held_back()
    assert (await storage.get(CallRecord, call.id)).status == "ended" and log.held_back == 0
    assert storage.fault.parts == {}


async def test_the_rows_held_back_are_bounded_and_the_lost_ones_counted(tmp_path, monkeypatch):
    monkeypatch.setattr("intercom.hub.call_log.MAX_HELD_BACK", 3)
    storage = Storage(tmp_path)
    log = CallLog(storage)
    storage._db.execute("PRAGMA query_only=1")
    calls = [await log.new_call(CallRecord(source="client:door", destination="door")) for _ in range(5)]
    assert (log.held_back, log.lost) == (3, 2)
    storage._db.execute("PRAGMA query_only=0")
    await log.write_held_back()
    assert await ids(storage, CallRecord) == {call.id for call in calls[2:]}  # the newest


def test_the_limits_have_one_name_each_for_flags_variables_and_the_hub():
    hub_side = [name for name, parameter in inspect.signature(StorageLimits.of).parameters.items()
                if parameter.kind is inspect.Parameter.KEYWORD_ONLY]  # fmt: skip
    assert [limit.name for limit in STORAGE_LIMIT_FLAGS] == hub_side
    assert list(HUB_STORAGE_LIMITS) == [f"hub_{name}" for name in hub_side]
    assert set(HUB_STORAGE_LIMITS) <= set(Settings.model_fields)
    limits = StorageLimits.of(recordings_quota_mb=5, min_free_mb=7, calls_max_rows=9)
    assert (limits.recordings_quota_bytes, limits.min_free_bytes, limits.calls_max_rows) == (5 * MB, 7 * MB, 9)
    assert StorageLimits.of() == StorageLimits()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--recordings-quota-mb", "0", "0: give a whole number above 0"),
        ("--calls-max-age-days", "soon", "soon: give a number above 0"),
    ],
)
def test_a_bad_limit_flag_is_refused(capsys, flag, value, message):
    from intercom.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["storage", flag, value])
    assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.fixture
def hub_config(hub_config):
    return replace(hub_config, storage_limits=StorageLimits(calls_max_age_days=30, prune_interval_seconds=0.05))


async def test_the_running_hub_prunes_in_the_background_and_its_metrics_say_so(hub):
    old = await a_call(hub.storage, age_days=(NOW - time.time()) / DAY + 31, recording=("ivr", 10 * KB))
    young = await a_call(hub.storage, age_days=(NOW - time.time()) / DAY + 1)
    async with asyncio.timeout(10):
        while await hub.storage.get(CallRecord, old.id) is not None:
            await asyncio.sleep(0.05)
    assert await hub.storage.get(CallRecord, young.id) is not None
    async with httpx.AsyncClient(base_url=f"http://{hub.address}", timeout=10) as http:
        metrics = (await http.get("/metrics", headers={"Authorization": f"AccessKey {hub.key.secret}"})).text
    assert 'intercom_pruned_total{what="calls"} 1' in metrics
    assert 'intercom_storage_fault{part="call_log"} 0' in metrics
    assert f"intercom_recordings_quota_bytes {StorageLimits().recordings_quota_bytes}" in metrics
    assert "intercom_data_free_bytes " in metrics and "intercom_call_log_held_back 0" in metrics
