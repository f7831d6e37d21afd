"""What a database shared by several hubs holds: the location behind a SIP proxy, the doors'
reports, and rows that say which hub wrote them (a hub's start-up ends only its own calls)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from intercom.hub import Storage
from intercom.hub.call_log import CallLog
from intercom.hub.records import CallRecord, LegRecord, Registration, UnlockEvent, WebhookDelivery
from intercom.hub.retention import Retention, StorageLimits
from intercom.hub.storage import DATABASE_NAME, MIGRATIONS, statements

T0 = 1_700_000_000.0


def binding(
    uri: str, expires_at: float, identity: str | None = "desk", flow: str = "edge1;192.0.2.7:50012;42", **fields
) -> Registration:
    values = {
        "edge": "10.0.0.5",
        "flow": flow,
        "uri": uri,
        "contact": f"<{uri};transport=ws>;+sip.ice",
        "path": "<sip:10.0.0.5:5060;transport=tcp;lr;received=192.0.2.7~50012~6>",
        "identity": identity,
        "key_group": None,
        "access_key_id": "key1",
        "incoming": True,
        "expires_at": expires_at,
        "user_agent": "intercom-sdk",
        "hub": "hub-a",
    }
    return Registration(**{**values, **fields})


async def test_a_flows_registrations_are_replaced_as_a_whole_and_found_by_identity_group_and_key(storage):
    desk = "edge1;192.0.2.7:50012;42"
    first, second = binding("sip:a@x.invalid", T0 + 60), binding("sip:b@x.invalid", T0 + 30, incoming=False)
    await storage.save_flow_registrations("10.0.0.5", desk, [first, second])
    phone = binding("sip:p@y.invalid", T0 + 60, "ann", "edge2;192.0.2.8:1;7", key_group="phones", access_key_id="k2")
    await storage.save_flow_registrations("10.0.0.5", phone.flow, [phone])
    assert await storage.registrations("desk", T0) == [second, first]  # soonest to expire first, as stored
    assert await storage.flow_registrations("10.0.0.5", desk, T0 + 30) == [first]  # expired ones are not listed
    assert await storage.flow_registrations("10.0.0.6", desk, T0) == []  # a flow is its edge's
    assert await storage.group_registrations("phones", T0) == [phone]
    assert await storage.registration_key_ids() == {"key1", "k2"}
    refreshed = binding("sip:a@x.invalid", T0 + 90, hub="hub-b")  # the flow's next REGISTER, through another hub
    await storage.save_flow_registrations("10.0.0.5", desk, [refreshed])
    assert await storage.registrations("desk", T0) == [refreshed]  # b was unregistered by it
    assert await storage.delete_expired_registrations(T0 + 60) == 1  # the phone's
    assert await storage.delete_key_registrations({"key1", "nobody"}) == 1
    assert await storage.delete_key_registrations(set()) == 0
    await storage.save_flow_registrations("10.0.0.5", desk, [first])
    assert await storage.delete_flow_registrations("10.0.0.5", desk) == 1
    assert await storage.delete_flow_registrations("10.0.0.5", desk) == 0  # every hub is told: the others find none
    assert await storage.registrations("desk", T0) == []


async def test_a_flows_registrations_are_all_or_none(storage):
    flow = "edge1;192.0.2.7:50012;42"
    await storage.save_flow_registrations("10.0.0.5", flow, [binding("sip:a@x.invalid", T0 + 60)])
    broken = binding("sip:c@x.invalid", T0 + 60, access_key_id=None)  # a NOT NULL column without its value
    with pytest.raises(storage.errors):
        await storage.save_flow_registrations("10.0.0.5", flow, [binding("sip:b@x.invalid", T0 + 60), broken])
    assert [row.uri for row in await storage.flow_registrations("10.0.0.5", flow, T0)] == ["sip:a@x.invalid"]


async def test_a_refresh_updates_the_rows_it_finds_and_brings_back_none(storage):
    flow = "edge1;192.0.2.7:50012;42"
    await storage.save_flow_registrations("10.0.0.5", flow, [binding("sip:a@x.invalid", T0 + 60)])
    refreshed, gone = binding("sip:a@x.invalid", T0 + 120, hub="hub-b"), binding("sip:b@x.invalid", T0 + 120)
    await storage.refresh_registrations([refreshed, gone])  # b's WebSocket closed meanwhile: no row
    assert await storage.flow_registrations("10.0.0.5", flow, T0 + 90) == [refreshed]


async def test_one_register_saved_by_two_hubs_at_once_leaves_one_binding(storage, open_storage):
    """The edge retried a slow hub's REGISTER on the other: both save the flow's outcome."""
    other = await open_storage("hub-b")
    flow = "edge1;192.0.2.7:50012;42"
    await asyncio.gather(
        storage.save_flow_registrations("10.0.0.5", flow, [binding("sip:a@x.invalid", T0 + 60)]),
        other.save_flow_registrations("10.0.0.5", flow, [binding("sip:a@x.invalid", T0 + 61, hub="hub-b")]),
    )
    [row] = await storage.flow_registrations("10.0.0.5", flow, T0)
    assert row.uri == "sip:a@x.invalid"


async def test_a_doors_reports_are_stored_and_pruned_with_the_call_logs_limits(storage):
    log = CallLog(storage)
    old = UnlockEvent(door="door", event="open", source="keypad", who="keypad", at=T0, created_at=T0)
    await log.publish_event(old)
    new = UnlockEvent(door="door", event="wrong", source="keypad", at=T0 + 10)
    await log.publish_event(new)
    assert [event.id for event in (await storage.page(UnlockEvent))[0]] == [old.id, new.id]
    assert (await storage.get(UnlockEvent, new.id)).event == "wrong"
    pruned = await Retention(storage, log, StorageLimits(calls_max_rows=1)).prune()
    assert pruned.unlock_events == 1
    assert [event.id for event in (await storage.page(UnlockEvent))[0]] == [new.id]


async def test_a_hub_finds_only_its_own_unfinished_calls_and_pending_deliveries(storage, open_storage):
    carried_elsewhere = CallRecord(source="client:door", destination="ring_desks", status="ongoing")
    await storage.put(carried_elsewhere)  # by hub "", which is still carrying it
    mine = await open_storage("hub-b")  # a hub restarting on the same database
    call = await mine.put(CallRecord(source="client:door", destination="ring_desks", status="ongoing"))
    leg = await mine.put(LegRecord(call_id=call.id, source="client:door", destination="desk", direction="incoming"))
    delivery = await mine.put(
        WebhookDelivery(url="https://example.test/hook", token="t" * 32, event="callCreated", payload="{}")
    )
    await storage.put(
        WebhookDelivery(url="https://example.test/hook", token="t" * 32, event="callCreated", payload="{}")
    )
    assert [row.id for row in await mine.unfinished(CallRecord, ("ended",))] == [call.id]
    assert [row.id for row in await mine.unfinished(LegRecord, ("hangup",))] == [leg.id]
    assert [row.id for row in await mine.pending_deliveries()] == [delivery.id]
    assert await CallLog(mine).close_unfinished() == 1
    assert (await storage.get(CallRecord, carried_elsewhere.id)).status == "ongoing"  # the other hub's, untouched
    await mine.mark_alive(T0)
    assert await storage.last_alive() is None and await mine.last_alive() == T0  # a heartbeat per hub


async def test_a_database_of_the_last_version_moves_its_heartbeat_and_its_rows_become_the_units_hubs(tmp_path):
    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        for script in MIGRATIONS[:7]:
            for statement in statements(script):
                db.execute(statement)
        db.execute("INSERT INTO heartbeat (id, alive_at) VALUES (1, ?)", (T0,))
        call = CallRecord(source="client:door", destination="ring_desks", status="ongoing")
        db.execute(
            "INSERT INTO calls (id, parent, created_at, body) VALUES (?, NULL, ?, ?)",
            (call.id, call.created_at, call.model_dump_json()),
        )
        db.execute("PRAGMA user_version=7")
    db.close()
    storage = Storage(tmp_path)  # a unit's, upgraded: its rows and heartbeat are its hub's ("")
    assert await storage.last_alive() == T0
    assert [row.id for row in await storage.unfinished(CallRecord, ("ended",))] == [call.id]
    storage.close()


async def test_a_hub_that_stopped_with_calls_open_has_them_ended_by_another(storage, open_storage):
    stopped = await open_storage("hub-b")  # a hub that died carrying a call, and never came back
    call = await stopped.put(
        CallRecord(source="client:door", destination="ring_desks", status="ongoing", created_at=T0 - 40)
    )
    leg = await stopped.put(
        LegRecord(
            call_id=call.id,
            source="client:door",
            destination="desk",
            direction="incoming",
            status="ongoing",
            answered_at=T0 - 30,
        )
    )
    await stopped.mark_alive(T0)
    await storage.mark_alive(T0 + 100)  # this hub, alive
    assert await storage.stopped_hubs(alive_before=T0) == []  # not yet past the grace
    assert await storage.stopped_hubs(alive_before=T0 + 60) == ["hub-b"]

    assert await CallLog(storage).close_unfinished("hub-b") == 1
    ended = await storage.get(CallRecord, call.id)
    assert (ended.status, ended.reason) == ("ended", "the hub stopped during the call")
    assert (await storage.get(LegRecord, leg.id)).status == "hangup"
    assert await storage.stopped_hubs(alive_before=T0 + 60) == []  # nothing left open there


async def test_a_hub_that_died_before_its_first_heartbeat_is_found_once_its_call_is_old(storage, open_storage):
    stopped = await open_storage("hub-b")  # killed a moment after its call began: no heartbeat written
    await stopped.put(CallRecord(source="client:door", destination="desk", status="ongoing", created_at=T0))
    assert await storage.stopped_hubs(alive_before=T0) == []  # a call that young may be a live hub's
    assert await storage.stopped_hubs(alive_before=T0 + 1) == ["hub-b"]
    await stopped.mark_alive(T0 + 5)  # it was alive after all
    assert await storage.stopped_hubs(alive_before=T0 + 1) == []
