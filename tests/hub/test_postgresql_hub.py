"""A hub whose database is PostgreSQL (``intercom hub --database postgresql://...``): a real call
through it, logged there; and a unit, which never loads the driver."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys

import pytest

from intercom.auth import ADMIN
from intercom.hub import HubConfig, running_hub
from intercom.hub.records import CallRecord, LegRecord
from intercom.sdk import CallStatus

from ..conftest import HUB_LOOPBACK, STEP, Hub, connect_unit
from ..units import DESK_HZ, DOOR_HZ, store_flow


async def test_a_call_through_a_hub_on_postgresql_has_audio_both_ways_and_is_logged_there(postgres, tmp_path):
    config = HubConfig(
        data_dir=tmp_path / "hub", host="127.0.0.1", port=0, media=HUB_LOOPBACK, hub_id="hub-1",
        database=postgres.url(postgres.new_database()), database_password=postgres.password,
    )  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        async with asyncio.timeout(STEP):
            running = await stack.enter_async_context(running_hub(config))  # opens the database itself
        storage = running.app.state.storage
        assert type(storage).__name__ == "PostgresStorage"
        hub = Hub(running, storage, await storage.create_key("tests", ADMIN))
        await store_flow(hub, "door", "client:desk")
        desk = await connect_unit(hub, "desk", DESK_HZ)
        door = await connect_unit(hub, "door", DOOR_HZ, outgoing="door", incoming=False)
        for unit in (desk, door):
            stack.push_async_callback(asyncio.wait_for, unit.client.destroy(), STEP)
        call = door.start_call()
        answered = await desk.accept(await desk.next_incoming())
        await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
        async with asyncio.timeout(STEP):
            await call.sink.wait_until(
                lambda: call.sink.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=15), STEP
            )
            await answered.sink.wait_until(
                lambda: answered.sink.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=15), STEP
            )
            await call.disconnect()
        await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
        async with asyncio.timeout(STEP):
            await running.app.state.calls.wait_idle()
        (logged,), _ = await storage.page(CallRecord)
        legs, _ = await storage.page(LegRecord, parent=logged.id)
        assert (logged.status, logged.source) == ("ended", "client:door")
        assert sorted((leg.direction, leg.status) for leg in legs) == [("incoming", "hangup"), ("outgoing", "hangup")]


def test_a_unit_and_the_cli_never_load_the_postgresql_driver():
    loaded = subprocess.run(
        [sys.executable, "-c", "import intercom.appliance.unit, intercom.cli, intercom.hub, sys; "
         "print(sorted(name for name in sys.modules if name.startswith('psycopg')))"],
        capture_output=True, text=True, timeout=STEP, check=True,
    ).stdout  # fmt: skip
    assert loaded.strip() == "[]"


async def test_every_connection_busy_a_query_fails_after_the_wait_naming_the_limit(postgres, tmp_path, caplog):
    from intercom.hub.storage_postgresql import PostgresStorage

    url = postgres.url(postgres.new_database())
    storage = await PostgresStorage.open(url, tmp_path, "hub-1", postgres.password, pool_size=1, pool_timeout=0.2)
    holding, done = asyncio.Event(), asyncio.Event()

    async def hold_the_only_connection() -> None:
        async with storage.transaction():
            holding.set()
            await done.wait()

    holder = asyncio.create_task(hold_the_only_connection())
    try:
        async with asyncio.timeout(STEP):
            await holding.wait()
            assert not await storage.try_put(CallRecord(source="client:door", destination="door"))
        assert "call_log" in storage.fault.parts  # the call goes on unlogged, as on a full disk
        done.set()
        async with asyncio.timeout(STEP):
            await holder
        assert "database_pool_size" in caplog.text and "--database-pool-timeout" in caplog.text
        assert await storage.try_put(CallRecord(source="client:door", destination="door"))  # free again
        assert "call_log" not in storage.fault.parts
    finally:
        await storage.aclose()


async def test_a_live_hub_logs_as_ended_the_calls_of_a_hub_that_stopped(postgres, tmp_path, monkeypatch):
    from intercom.hub import app as hub_app
    from intercom.hub.storage_postgresql import PostgresStorage

    monkeypatch.setattr(hub_app, "EXPIRY_SWEEP_SECONDS", 0.1)  # the sweeper's slow tick, quick here
    database = postgres.url(postgres.new_database())
    async with asyncio.timeout(STEP):
        gone = await PostgresStorage.open(database, tmp_path / "gone", "hub-gone", password=postgres.password)
    try:  # a hub that died carrying a call: its rows and a heartbeat from long ago
        call = await gone.put(
            CallRecord(source="client:door", destination="ring_desks", status="ongoing", created_at=1_699_999_990.0)
        )
        await gone.mark_alive(1_700_000_000.0)
    finally:
        await gone.aclose()
    config = HubConfig(
        data_dir=tmp_path / "hub", host="127.0.0.1", port=0, media=HUB_LOOPBACK, hub_id="hub-1",
        database=database, database_password=postgres.password,
    )  # fmt: skip
    async with asyncio.timeout(STEP), running_hub(config) as running:
        storage = running.app.state.storage
        while (await storage.get(CallRecord, call.id)).status != "ended":
            await asyncio.sleep(0.05)  # polling the shared call log, with the deadline above
        assert (await storage.get(CallRecord, call.id)).reason == "the hub stopped during the call"
