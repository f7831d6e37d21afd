"""The hub database: keys survive a reopen, revocation sticks, the file is private."""

from __future__ import annotations

import sqlite3
import stat

from intercom.hub import Storage
from intercom.hub.storage import DATABASE_NAME, MIGRATIONS


def test_keys_create_list_revoke_and_survive_reopen(tmp_path):
    storage = Storage(tmp_path)
    first, second = storage.create_key("door"), storage.create_key("desk")
    assert first.id != second.id and first.secret != second.secret
    assert storage.revoke_key(first.id)
    assert not storage.revoke_key(first.id)  # already revoked
    assert not storage.revoke_key("no-such-key")
    storage.close()

    reopened = Storage(tmp_path)
    keys = {key.id: key for key in reopened.list_keys()}
    assert keys[first.id].revoked and not keys[second.id].revoked
    assert reopened.get_key(second.id) == second
    assert reopened.get_key("nope") is None


def test_database_is_private_and_versioned(tmp_path):
    Storage(tmp_path).close()
    path = tmp_path / DATABASE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_revocation_by_another_process_is_seen_at_once(tmp_path):
    hub_side, cli_side = Storage(tmp_path), Storage(tmp_path)
    key = cli_side.create_key("door")
    assert hub_side.get_key(key.id) == key
    cli_side.revoke_key(key.id)
    assert hub_side.get_key(key.id).revoked


def test_key_cache_never_hides_a_change(tmp_path):
    hub_side, cli_side = Storage(tmp_path), Storage(tmp_path)
    assert hub_side.get_key("later") is None  # a miss is cached too...
    key = hub_side.create_key("own")  # ...and dropped by our own write
    assert hub_side.get_key(key.id) == key
    assert hub_side.get_key(key.id) == key  # now from the cache
    other = cli_side.create_key("other")  # another process writes: data_version moves
    assert hub_side.get_key(other.id) == other
    cli_side.revoke_key(key.id)
    assert hub_side.get_key(key.id).revoked
    hub_side.revoke_key(other.id)
    assert hub_side.get_key(other.id).revoked


def test_a_key_is_found_by_its_secret_alone(tmp_path):
    storage = Storage(tmp_path)
    door, desk = storage.create_key("door"), storage.create_key("desk")
    assert storage.key_by_secret(desk.secret) == desk
    assert storage.key_by_secret(door.secret) == door
    assert storage.key_by_secret(door.secret[:-1]) is None
    assert storage.key_by_secret("") is None
    storage.revoke_key(door.id)
    assert storage.key_by_secret(door.secret).revoked
