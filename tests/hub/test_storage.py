"""The hub database: keys survive a reopen, revocation sticks, the file is private."""

from __future__ import annotations

import sqlite3
import stat

from intercom.auth import ADMIN, unit_scope
from intercom.hub import Storage
from intercom.hub.storage import DATABASE_NAME, MIGRATIONS


async def test_keys_create_list_revoke_and_survive_reopen(open_storage):
    storage = await open_storage("")
    first, second = await storage.create_key("door", ADMIN), await storage.create_key("desk", ADMIN)
    assert first.id != second.id and first.secret != second.secret
    assert await storage.revoke_key(first.id)
    assert not await storage.revoke_key(first.id)  # already revoked
    assert not await storage.revoke_key("no-such-key")
    await storage.aclose()

    reopened = await open_storage("")
    keys = {key.id: key for key in await reopened.list_keys()}
    assert keys[first.id].revoked and not keys[second.id].revoked
    assert reopened.get_key(second.id) == second
    assert reopened.get_key("nope") is None


def test_database_is_private_and_versioned(tmp_path):
    Storage(tmp_path).close()
    path = tmp_path / DATABASE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_revocation_by_another_process_is_seen_at_once(tmp_path):  # SQLite: another process, same file
    hub_side, cli_side = Storage(tmp_path), Storage(tmp_path)
    key = await cli_side.create_key("door", ADMIN)
    assert hub_side.get_key(key.id) == key
    await cli_side.revoke_key(key.id)
    assert hub_side.get_key(key.id).revoked


async def test_key_cache_never_hides_a_change(tmp_path):
    hub_side, cli_side = Storage(tmp_path), Storage(tmp_path)
    assert hub_side.get_key("later") is None  # a miss is cached too...
    key = await hub_side.create_key("own", ADMIN)  # ...and dropped by our own write
    assert hub_side.get_key(key.id) == key
    assert hub_side.get_key(key.id) == key  # now from the cache
    other = await cli_side.create_key("other", ADMIN)  # another process writes: data_version moves
    assert hub_side.get_key(other.id) == other
    await cli_side.revoke_key(key.id)
    assert hub_side.get_key(key.id).revoked
    await hub_side.revoke_key(other.id)
    assert hub_side.get_key(other.id).revoked


async def test_a_key_is_found_by_its_secret_alone(storage):
    door, desk = await storage.create_key("door", ADMIN), await storage.create_key("desk", ADMIN)
    assert await storage.key_by_secret(desk.secret) == desk
    assert await storage.key_by_secret(door.secret) == door
    assert await storage.key_by_secret(door.secret[:-1]) is None
    assert await storage.key_by_secret("") is None
    await storage.revoke_key(door.id)
    assert (await storage.key_by_secret(door.secret)).revoked


async def test_a_key_keeps_its_scope(open_storage):
    storage = await open_storage("")
    door = await storage.create_key("door", unit_scope("door", "door", "ring_desks"))
    admin = await storage.create_key("admin", ADMIN)
    await storage.aclose()
    reopened = await open_storage("")
    assert reopened.get_key(door.id).scope == unit_scope("door", "door", "ring_desks")
    assert reopened.get_key(admin.id).scope == ADMIN
    assert {key.id: key.scope for key in await reopened.list_keys()} == {door.id: door.scope, admin.id: ADMIN}


def test_keys_of_an_older_database_stay_legacy(tmp_path):
    with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
        db.execute(MIGRATIONS[0])
        db.execute("INSERT INTO access_keys VALUES ('old', 'oldsecret', 'units', 1.0, NULL)")
        db.execute("PRAGMA user_version=1")
    db.close()
    storage = Storage(tmp_path)
    old = storage.get_key("old")
    assert old is not None and old.scope is None and old.secret == "oldsecret" and not old.revoked


async def test_put_key_scopes_a_new_key_and_leaves_an_existing_one_as_it_was(storage):
    desk = unit_scope("desk", "desk", "ring_door")
    assert (await storage.put_key("new", "s1", "env file", desk)).scope == desk
    assert await storage.put_key("new", "s2", "env file", ADMIN) == storage.get_key("new")
    assert storage.get_key("new").scope == desk and storage.get_key("new").secret == "s2"
    await storage.put_key("legacy", "s3", "old install", None)
    again = await storage.put_key("legacy", "s3", "old install", desk)
    assert again.scope is None  # an old install keeps working as it did


async def test_keys_version_moves_with_any_key_write(open_storage):
    hub_side, cli_side = await open_storage("hub"), await open_storage("cli")
    seen = await hub_side.keys_version()
    assert await hub_side.keys_version() == seen  # nothing changed: nothing to re-read
    key = await cli_side.create_key("door", ADMIN)
    assert await hub_side.keys_version() != seen
    seen = await hub_side.keys_version()
    await hub_side.revoke_key(key.id)  # our own write, which data_version does not count
    assert await hub_side.keys_version() != seen


async def test_a_key_written_by_another_hub_is_seen_from_the_sweepers_next_tick(open_storage):
    hub_side, other_hub = await open_storage("hub-a"), await open_storage("hub-b")
    key = await other_hub.create_key("door", ADMIN)
    await hub_side.keys_version()  # the sweeper's tick (every KEY_POLL_SECONDS)
    assert hub_side.get_key(key.id) == key
    assert await other_hub.revoke_key(key.id)
    await hub_side.keys_version()
    assert hub_side.get_key(key.id).revoked
    await other_hub.put_key(key.id, "a new secret", "door", None)
    await hub_side.keys_version()
    assert hub_side.get_key(key.id).secret == "a new secret"
