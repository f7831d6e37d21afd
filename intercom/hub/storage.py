"""The hub's SQLite database: one file in the data directory, no server to run.

Schema changes are numbered migrations applied in order at open, recorded in
``PRAGMA user_version``, so an old database upgrades itself. WAL mode lets the CLI write
(create or revoke a key) while a running hub reads, and a revoked key is refused on the
very next REGISTER because every check reads the table.

Power cuts: the log is flushed at every commit (``synchronous=FULL``, see :func:`_configure`
and docs/storage.md), so what the hub wrote survives one; a file that is not a database, or one
whose log was left without it, stops the hub with :class:`DatabaseDamaged` instead of an empty
database taking its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ..auth import AccessKey, KeyScope, new_key_id, new_key_secret
from .callflows import CallFlow, CallFlowError
from .records import CallRecord, LegRecord, RecordingRecord, Registration, UnlockEvent, Webhook, WebhookDelivery
from .storage_fault import CALL_LOG, StorageFault

DATABASE_NAME = "intercom.sqlite3"


def migrations(backend: str) -> list[str]:
    """The numbered SQL scripts of ``backend`` (``sqlite``, ``postgresql``) in order: a database
    at version N has run the first N (intercom/hub/migrations/<backend>/NNN_*.sql)."""
    folder = resources.files(__package__) / "migrations" / backend
    scripts = sorted(entry for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [script.read_text() for script in scripts]


MIGRATIONS = migrations("sqlite")

_KEY_COLUMNS = "id, secret, name, created_at, revoked_at, scope"

Row = TypeVar("Row", CallRecord, LegRecord, RecordingRecord, Webhook, WebhookDelivery, UnlockEvent)
Result = TypeVar("Result")

# Each kind of row: its table, and the field that is its ``parent`` column (what lists filter by).
_TABLES: dict[type[BaseModel], tuple[str, str | None]] = {
    CallRecord: ("calls", None),
    LegRecord: ("legs", "call_id"),
    RecordingRecord: ("recordings", "leg_id"),
    Webhook: ("webhooks", None),
    WebhookDelivery: ("webhook_deliveries", "webhook_id"),
    UnlockEvent: ("unlock_events", "door"),
}
_REGISTRATION_COLUMNS = (
    "edge, flow, uri, contact, path, identity, key_group, access_key_id, incoming, expires_at, user_agent, hub"
)
_REGISTRATION_NAMES = _REGISTRATION_COLUMNS.replace(" ", "").split(",")
_REGISTRATION_KEPT = _REGISTRATION_NAMES[3:]  # what the binding's key (edge, flow, uri) does not name
# A REGISTER the edge retried on another hub (the first was slow) may be saved by both at once:
# the second's rows replace the first's instead of failing on them.
_REGISTRATION_INSERT = (
    f"INSERT INTO registrations ({_REGISTRATION_COLUMNS}) VALUES ({', '.join('?' * len(_REGISTRATION_NAMES))}) "
    "ON CONFLICT (edge, flow, uri) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _REGISTRATION_KEPT)
)
_REGISTRATION_REFRESH = (
    f"UPDATE registrations SET {', '.join(f'{name} = ?' for name in _REGISTRATION_KEPT)} "
    "WHERE edge = ? AND flow = ? AND uri = ?"
)


class Storage:
    """Access to the hub database. One instance per process.

    Its methods are coroutines, so that a database across the network (PostgreSQL,
    :class:`~intercom.hub.storage_postgresql.PostgresStorage`) never makes the event loop wait; on
    SQLite (this class) they run inline, as plain calls did (no thread, no hop: the embedded hub is
    as fast as before). :meth:`get_key` alone stays a plain call: every REGISTER asks it, from code
    that must not wait, and it answers from memory. Code outside the event loop (the CLI) goes
    through :func:`blocking`.

    The queries are written once, with ``?`` for their parameters and :meth:`_field` for a field
    of a row's JSON; what differs between the backends is in the few methods a backend overrides
    (the connection, the migrations, the key cache, the clean-stop mark).
    """

    errors: tuple[type[Exception], ...] = (sqlite3.Error,)  # what a failing database raises
    unavailable: tuple[type[Exception], ...] = (sqlite3.OperationalError,)  # a read-only or full disk: 503
    _duplicate: type[Exception] = sqlite3.IntegrityError  # what an INSERT of an existing id raises
    _no_limit: int | None = -1  # LIMIT's "all rows"

    def __init__(self, data_dir: str | os.PathLike[str], check_after_crash: bool = False, hub_id: str = "") -> None:
        """Open (or make) the database in ``data_dir``. ``check_after_crash`` (the hub): when the
        last process to use it did not close it (a crash, a power cut), check it whole before use
        (``PRAGMA quick_check``: ~0.25 s for 100,000 calls here), so that damage stops the start
        with :class:`DatabaseDamaged` rather than a call half-way. ``hub_id``: the hub whose calls
        these are (a unit's database is one hub's: "")."""
        self.data_dir = Path(data_dir)
        self.hub_id = hub_id
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.data_dir / DATABASE_NAME
        self.fault = StorageFault()
        fresh = not self.path.exists()
        if fresh:
            _refuse_an_orphan_log(self.path)
        left_open = _log_holds_something(self.path)  # see stopped_cleanly
        self._db = self._open(fresh)
        try:
            if check_after_crash and left_open and not fresh and not self.fault.parts:
                self._check()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            _refuse_a_damaged_database(self.path, exc)
            raise
        self._keys: dict[str, AccessKey | None] = {}
        self._keys_version = self._data_version()
        self._key_writes = 0  # our own key writes, which data_version does not count

    def _check(self) -> None:
        problems = [problem for (problem,) in self._db.execute("PRAGMA quick_check(3)").fetchall()]
        if problems != ["ok"]:
            raise DatabaseDamaged(
                f"the database {self.path} is damaged ({'; '.join(problems)}): the hub does not start over "
                f"it. {_WHAT_TO_DO}"
            )

    def _open(self, fresh: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if fresh:
            os.chmod(self.path, 0o600)  # it holds key secrets
        try:
            _configure(db)
        except sqlite3.OperationalError:
            db.close()
            if fresh or os.access(self.data_dir, os.W_OK):
                raise
            return self._open_read_only()
        except sqlite3.DatabaseError as exc:
            db.close()
            _refuse_a_damaged_database(self.path, exc)
            raise
        return db

    def _open_read_only(self) -> sqlite3.Connection:
        """The database on a filesystem gone read-only (an SD card's ext4 after errors), which
        SQLite cannot open in WAL mode: read as it is, so that the hub still checks keys and runs
        call flows, and calls go on unlogged (:attr:`fault` says so)."""
        db = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro&immutable=1",
            uri=True,
            check_same_thread=False,
            isolation_level=None,
        )
        self.fault.failed(CALL_LOG, f"{self.data_dir} is read-only")
        return db

    def _data_version(self) -> int:
        """Changes whenever another connection (the CLI revoking a key) commits a change."""
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version < len(MIGRATIONS) and self.fault.parts:
            raise sqlite3.OperationalError(f"{self.path} needs an upgrade and its directory is read-only")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._db:
                self._db.execute("BEGIN")
                for statement in statements(script):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")

    def close(self) -> None:
        self._db.close()

    async def aclose(self) -> None:
        """:meth:`close`, for code that holds either backend."""
        self.close()

    # -- the queries' way to the database: what a backend overrides -------------------------------

    async def rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, args).fetchall()

    async def row(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        return self._db.execute(sql, args).fetchone()

    async def run(self, sql: str, args: Sequence[object] = ()) -> int:
        """Execute one statement; how many rows it changed."""
        return self._db.execute(sql, args).rowcount

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """The statements inside as one: all or none, and no other writer between them."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield

    @staticmethod
    def _field(name: str) -> str:
        """A field of a row's JSON body, in SQL."""
        return f"json_extract(body, '$.{name}')"

    async def stopped_cleanly(self) -> None:
        """At the hub's stop: everything into the database file and the log emptied, so that the
        next start knows no crash came between (a hub that dies leaves its log holding something).
        On a card that cannot be written the log stays as it is: the next start checks the database."""
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def keys_version(self) -> object:
        """Changes whenever a key may have changed: another process (``intercom keys revoke``)
        committed to the database, or this one wrote a key. One cheap PRAGMA."""
        return self._data_version(), self._key_writes

    async def _key_written(self, key_id: str) -> None:
        self._keys.clear()  # our own writes do not change data_version
        self._key_writes += 1

    def get_key(self, key_id: str) -> AccessKey | None:
        """The key with this id; cached, and the cache dropped as soon as anyone writes the
        database, so a revocation applies from the next REGISTER. Not a coroutine: see the class."""
        version = self._data_version()
        if version != self._keys_version:
            self._keys.clear()
            self._keys_version = version
        if key_id in self._keys:
            return self._keys[key_id]
        if len(self._keys) > 10_000:  # ids are chosen by clients: do not let them fill memory
            self._keys.clear()
        row = self._db.execute(f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE id = ?", (key_id,)).fetchone()
        key = self._keys[key_id] = _key(row) if row else None
        return key

    # -- the hub's heartbeat -------------------------------------------------------------------

    async def mark_alive(self, at: float | None = None) -> None:
        """Note that the hub is alive now (the sweeper's heartbeat while calls run). A disk that
        refuses it is the call log's fault to report (:attr:`fault`), not the heartbeat's."""
        with contextlib.suppress(*self.errors):
            await self.run(
                "INSERT INTO heartbeats (hub, alive_at) VALUES (?, ?) "
                "ON CONFLICT (hub) DO UPDATE SET alive_at = excluded.alive_at",
                (self.hub_id, time.time() if at is None else at),
            )

    async def last_alive(self, hub: str | None = None) -> float | None:
        """When the hub (this one, or ``hub``) last noted it was alive; ``None`` if it never did."""
        row = await self.row("SELECT alive_at FROM heartbeats WHERE hub = ?", (self.hub_id if hub is None else hub,))
        return row[0] if row else None

    async def stopped_hubs(self, alive_before: float) -> list[str]:
        """The other hubs on this database that left calls open and have not noted they were alive
        since ``alive_before``: a hub writes its heartbeat while it carries calls, so these stopped.
        A hub that died before its first heartbeat counts once its open call is that old."""
        rows = await self.rows(
            "SELECT DISTINCT calls.hub FROM calls LEFT JOIN heartbeats ON heartbeats.hub = calls.hub "
            f"WHERE calls.hub <> ? AND {self._status_not_in(('ended',))} AND calls.created_at < ? "
            "AND coalesce(heartbeats.alive_at, 0) < ? ORDER BY calls.hub",
            (self.hub_id, alive_before, alive_before),
        )
        return [hub for (hub,) in rows]

    # -- access keys ------------------------------------------------------------------------------

    async def create_key(self, name: str, scope: KeyScope) -> AccessKey:
        key = AccessKey(new_key_id(), new_key_secret(), name, time.time(), scope=scope)
        await self.run(
            "INSERT INTO access_keys (id, secret, name, created_at, scope, changed_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key.id, key.secret, key.name, key.created_at, scope.to_json(), key.created_at),
        )
        await self._key_written(key.id)
        return key

    async def put_key(self, key_id: str, secret: str, name: str, scope: KeyScope | None) -> AccessKey:
        """Key ``key_id`` with this secret: added with ``scope`` when new, its secret replaced when it
        differs (an embedded hub's key comes from its unit's env file). An existing key keeps its
        scope, a legacy one stays legacy (an old install keeps working); a revoked key stays revoked."""
        now = time.time()
        await self.run(
            "INSERT INTO access_keys (id, secret, name, created_at, scope, changed_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET secret = excluded.secret, changed_at = excluded.changed_at",
            (key_id, secret, name, now, scope.to_json() if scope is not None else None, now),
        )
        await self._key_written(key_id)
        key = await self._read_key(key_id)
        assert key is not None
        return key

    async def _read_key(self, key_id: str) -> AccessKey | None:
        row = await self.row(f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE id = ?", (key_id,))
        return _key(row) if row else None

    async def key_by_secret(self, secret: str) -> AccessKey | None:
        """The key whose secret this is (the Voice API's ``AccessKey`` header names no id). Every
        key is compared in constant time, so how long the answer takes says nothing of the secrets."""
        found = None
        for key in await self.list_keys():
            if hmac.compare_digest(key.secret.encode(), secret.encode()):
                found = key
        return found

    async def list_keys(self) -> list[AccessKey]:
        rows = await self.rows(f"SELECT {_KEY_COLUMNS} FROM access_keys ORDER BY created_at")
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; ``False`` when no such key exists or it was already revoked."""
        now = time.time()
        changed = await self.run(
            "UPDATE access_keys SET revoked_at = ?, changed_at = ? WHERE id = ? AND revoked_at IS NULL",
            (now, now, key_id),
        )
        await self._key_written(key_id)
        return changed == 1

    # -- call flows -----------------------------------------------------------------------------

    async def create_call_flow(self, flow: CallFlow) -> CallFlow:
        """Store a new flow, stamped with its creation time; its id must be free."""
        now = time.time()
        stored = flow.model_copy(update={"created_at": now, "updated_at": now})
        try:
            async with self.transaction():
                await self.run(
                    "INSERT INTO call_flows (id, body, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    (stored.id, stored.to_json(), now, now),
                )
                await self._only_default(stored)
        except self._duplicate:
            raise CallFlowError(f"a call flow with id {flow.id!r} exists already") from None
        return stored

    async def replace_call_flow(self, flow: CallFlow) -> CallFlow | None:
        """Replace flow ``flow.id`` (PUT), keeping its creation time; ``None`` when there is none."""
        async with self.transaction():
            existing = await self.get_call_flow(flow.id)
            if existing is None:
                return None
            stored = flow.model_copy(update={"created_at": existing.created_at, "updated_at": time.time()})
            await self.run(
                "UPDATE call_flows SET body = ?, updated_at = ? WHERE id = ?",
                (stored.to_json(), stored.updated_at, stored.id),
            )
            await self._only_default(stored)
        return stored

    async def _only_default(self, flow: CallFlow) -> None:
        """One flow at most is the default: marking one unmarks the others."""
        if not flow.default:
            return
        for other in await self.list_call_flows():
            if other.default and other.id != flow.id:
                body = other.model_copy(update={"default": False}).to_json()
                await self.run("UPDATE call_flows SET body = ? WHERE id = ?", (body, other.id))

    async def get_call_flow(self, flow_id: str) -> CallFlow | None:
        row = await self.row("SELECT body FROM call_flows WHERE id = ?", (flow_id,))
        return CallFlow.model_validate_json(row[0]) if row else None

    async def default_call_flow(self) -> CallFlow | None:
        return next((flow for flow in await self.list_call_flows() if flow.default), None)

    async def list_call_flows(self, offset: int = 0, limit: int = -1) -> list[CallFlow]:
        rows = await self.rows(
            "SELECT body FROM call_flows ORDER BY created_at, id LIMIT ? OFFSET ?", (self._limit(limit), offset)
        )
        return [CallFlow.model_validate_json(body) for (body,) in rows]

    async def count_call_flows(self) -> int:
        row = await self.row("SELECT count(*) FROM call_flows")
        return row[0] if row else 0

    async def delete_call_flow(self, flow_id: str) -> bool:
        return await self.run("DELETE FROM call_flows WHERE id = ?", (flow_id,)) == 1

    def _limit(self, limit: int) -> int | None:
        return limit if limit >= 0 else self._no_limit

    # -- the call log: calls, legs, recordings, webhooks, deliveries, the doors' reports -----------

    async def put(self, row: Row) -> Row:
        """Insert ``row`` or replace the stored one with the same id, stamping ``updated_at``."""
        table, parent_field = _TABLES[type(row)]
        row.updated_at = time.time()
        parent = getattr(row, parent_field) if parent_field else None
        await self.run(
            f"INSERT INTO {table} (id, parent, created_at, body, hub) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            (row.id, parent, row.created_at, row.model_dump_json(), self.hub_id),
        )
        return row

    async def try_put(self, row: Row) -> bool:
        """:meth:`put` that never raises: on a read-only or full disk (a database gone away) the
        failure goes to :attr:`fault` (said once) and ``False`` comes back, so that a call goes on
        unlogged."""
        try:
            await self.put(row)
        except self.errors as exc:
            self.fault.failed(CALL_LOG, exc)
            return False
        self.fault.recovered(CALL_LOG)
        return True

    async def get(self, kind: type[Row], row_id: str) -> Row | None:
        table, _ = _TABLES[kind]
        found = await self.row(f"SELECT body FROM {table} WHERE id = ?", (row_id,))
        return kind.model_validate_json(found[0]) if found else None

    async def page(
        self, kind: type[Row], offset: int = 0, limit: int = -1, parent: str | None = None, newest_first: bool = False
    ) -> tuple[list[Row], int]:
        """Rows of ``kind`` (those of ``parent`` when given) in creation order, and how many there are."""
        table, _ = _TABLES[kind]
        where, args = ("WHERE parent = ?", [parent]) if parent is not None else ("", [])
        order = "DESC" if newest_first else "ASC"
        rows = await self.rows(
            f"SELECT body FROM {table} {where} ORDER BY created_at {order}, id {order} LIMIT ? OFFSET ?",
            (*args, self._limit(limit), offset),
        )
        total = await self.row(f"SELECT count(*) FROM {table} {where}", args)
        return [kind.model_validate_json(body) for (body,) in rows], total[0] if total else 0

    async def calls_from(self, sources: list[str], limit: int) -> list[CallRecord]:
        """The newest ``limit`` calls made by one of ``sources`` (the doors' calls, for the desk page)."""
        rows = await self.rows(
            f"SELECT body FROM calls WHERE {self._field('source')} IN ({_marks(sources)}) "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (*sources, limit),
        )
        return [CallRecord.model_validate_json(body) for (body,) in rows]

    async def unfinished(self, kind: type[Row], finished: tuple[str, ...], hub: str | None = None) -> list[Row]:
        """This hub's (or ``hub``'s) rows of ``kind`` whose status is none of ``finished`` (calls it
        left open when it stopped; not those of another hub on the same database, which may be
        carrying them)."""
        table, _ = _TABLES[kind]
        rows = await self.rows(
            f"SELECT body FROM {table} WHERE {self._status_not_in(finished)} AND hub = ?",
            (self.hub_id if hub is None else hub,),
        )
        return [kind.model_validate_json(body) for (body,) in rows]

    def _status_not_in(self, statuses: tuple[str, ...]) -> str:
        """``status NOT IN (...)`` with the statuses written out, sorted: the words of the partial
        indexes ``calls_unfinished``, ``legs_unfinished`` and ``recordings_unfinished``. Our own
        constants, never a client's."""
        listed = ", ".join(f"'{status}'" for status in sorted(statuses))
        return f"{self._field('status')} NOT IN ({listed})"

    async def delete(self, kind: type[Row], row_id: str) -> bool:
        table, _ = _TABLES[kind]
        return await self.run(f"DELETE FROM {table} WHERE id = ?", (row_id,)) == 1

    async def pending_deliveries(self) -> list[WebhookDelivery]:
        """This hub's webhook deliveries not yet delivered nor given up, oldest first (``deliveries_pending``)."""
        rows = await self.rows(
            f"SELECT body FROM webhook_deliveries WHERE {self._field('status')} = 'pending' AND hub = ? "
            "ORDER BY created_at",
            (self.hub_id,),
        )
        return [WebhookDelivery.model_validate_json(body) for (body,) in rows]

    # -- pruning (intercom.hub.retention decides what goes; these do it, a small batch at a time) ---

    async def prune_calls(self, created_before: float, keep: int, batch: int) -> tuple[int, list[str]]:
        """Delete up to ``batch`` ended calls, the oldest first, that were made before
        ``created_before`` or are beyond the newest ``keep``, with their legs and recordings' rows.
        How many calls went, and the recording files (relative paths) that go with them."""
        async with self.transaction():
            bound = await self._prune_bound("calls", created_before, keep)
            calls = [
                call_id
                for (call_id,) in await self.rows(
                    f"SELECT id FROM calls WHERE created_at <= ? AND {self._field('status')} = 'ended' "
                    "ORDER BY created_at LIMIT ?",
                    (bound, batch),
                )
            ]
            if not calls:
                return 0, []
            legs = await self._ids_under("legs", calls)
            files: list[str] = []
            if legs:  # PostgreSQL refuses an empty IN ()
                files = [
                    path
                    for (path,) in await self.rows(
                        f"SELECT {self._field('path')} FROM recordings WHERE parent IN ({_marks(legs)}) "
                        f"AND {self._field('pruned_at')} IS NULL",
                        legs,
                    )
                ]
                await self.run(f"DELETE FROM recordings WHERE parent IN ({_marks(legs)})", legs)
                await self.run(f"DELETE FROM legs WHERE id IN ({_marks(legs)})", legs)
            await self.run(f"DELETE FROM calls WHERE id IN ({_marks(calls)})", calls)
        return len(calls), files

    async def _ids_under(self, table: str, parents: list[str]) -> list[str]:
        rows = await self.rows(f"SELECT id FROM {table} WHERE parent IN ({_marks(parents)})", parents)
        return [row_id for (row_id,) in rows]

    async def prune_deliveries(self, created_before: float, keep: int, batch: int) -> int:
        """Delete up to ``batch`` finished webhook deliveries (delivered or failed: a pending one is
        still to send), oldest first, made before ``created_before`` or beyond the newest ``keep``."""
        return await self.run(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
            f"WHERE created_at <= ? AND {self._field('status')} != 'pending' ORDER BY created_at LIMIT ?)",
            (await self._prune_bound("webhook_deliveries", created_before, keep), batch),
        )

    async def prune_unlock_events(self, created_before: float, keep: int, batch: int) -> int:
        """Delete up to ``batch`` of the doors' reports, oldest first, made before ``created_before``
        or beyond the newest ``keep`` (the call log's limits)."""
        return await self.run(
            "DELETE FROM unlock_events WHERE id IN (SELECT id FROM unlock_events "
            "WHERE created_at <= ? ORDER BY created_at LIMIT ?)",
            (await self._prune_bound("unlock_events", created_before, keep), batch),
        )

    async def _prune_bound(self, table: str, created_before: float, keep: int) -> float:
        """The newest creation time a row of ``table`` may have to go: made before ``created_before``,
        or older than the newest ``keep``. A range on the time index: only the rows that may go are read."""
        row = await self.row(f"SELECT created_at FROM {table} ORDER BY created_at DESC LIMIT 1 OFFSET ?", (keep,))
        return max(created_before, row[0]) if row else created_before

    async def kept_recordings(self, kind: str, batch: int) -> list[RecordingRecord]:
        """Up to ``batch`` recordings of ``kind`` whose file is still kept, oldest first; not one
        still running (status "recording"), whose file its recorder is writing."""
        rows = await self.rows(
            f"SELECT body FROM recordings WHERE {self._field('kind')} = ? "
            f"AND {self._field('pruned_at')} IS NULL "
            f"AND coalesce({self._field('status')}, 'done') = 'done' ORDER BY created_at LIMIT ?",
            (kind, batch),
        )
        return [RecordingRecord.model_validate_json(body) for (body,) in rows]

    async def row_counts(self) -> dict[str, int]:
        """Rows per table, for ``intercom storage``."""
        tables = ["calls", "legs", "recordings", "webhooks", "webhook_deliveries", "unlock_events"]
        counts = {}
        for table in [*tables, "access_keys", "call_flows"]:
            row = await self.row(f"SELECT count(*) FROM {table}")
            counts[table] = row[0] if row else 0
        return counts

    # -- the location behind a SIP proxy (intercom.hub.registrar, proxied) -------------------------

    async def flow_registrations(self, edge: str, flow: str, now: float) -> list[Registration]:
        """The live bindings of one unit's flow."""
        return await self._registrations("edge = ? AND flow = ?", (edge, flow), now)

    async def registrations(self, identity: str, now: float) -> list[Registration]:
        """The live bindings of ``identity``, on every flow."""
        return await self._registrations("identity = ?", (identity,), now)

    async def group_registrations(self, group: str, now: float) -> list[Registration]:
        """The live bindings made with keys of ``group`` (the paired phones)."""
        return await self._registrations("key_group = ?", (group,), now)

    async def _registrations(self, where: str, args: tuple[object, ...], now: float) -> list[Registration]:
        rows = await self.rows(
            f"SELECT {_REGISTRATION_COLUMNS} FROM registrations WHERE {where} AND expires_at > ? "
            "ORDER BY expires_at, uri",
            (*args, now),
        )
        return [Registration(*row[:8], bool(row[8]), *row[9:]) for row in rows]

    async def save_flow_registrations(self, edge: str, flow: str, registrations: list[Registration]) -> None:
        """The bindings of one flow are now these (a REGISTER's outcome), all or none of them."""
        async with self.transaction():
            await self.delete_flow_registrations(edge, flow)
            for registration in registrations:
                await self.run(_REGISTRATION_INSERT, astuple(registration))

    async def refresh_registrations(self, registrations: list[Registration]) -> None:
        """The same bindings of a flow registered again (a refresh): one UPDATE each, no transaction,
        a unit refreshing every minute costs the database little. A row gone meanwhile (the unit's
        WebSocket closed) stays gone."""
        for registration in registrations:
            values = astuple(registration)
            await self.run(_REGISTRATION_REFRESH, (*values[3:], *values[:3]))

    async def delete_flow_registrations(self, edge: str, flow: str) -> int:
        """Forget a flow's bindings (its WebSocket closed); how many there were."""
        return await self.run("DELETE FROM registrations WHERE edge = ? AND flow = ?", (edge, flow))

    async def registration_key_ids(self) -> set[str]:
        """The keys whose tokens made the bindings there are."""
        return {key_id for (key_id,) in await self.rows("SELECT DISTINCT access_key_id FROM registrations")}

    async def delete_key_registrations(self, key_ids: set[str]) -> int:
        """Forget the bindings made with these (revoked) keys; how many there were."""
        if not key_ids:
            return 0
        marks = ", ".join("?" * len(key_ids))
        return await self.run(f"DELETE FROM registrations WHERE access_key_id IN ({marks})", sorted(key_ids))

    async def delete_expired_registrations(self, now: float) -> int:
        """Remove the bindings that expired; how many."""
        return await self.run("DELETE FROM registrations WHERE expires_at <= ?", (now,))


def blocking(call: Coroutine[Any, Any, Result]) -> Result:
    """Run one storage call to its end from code outside the event loop (the CLI's commands, a
    unit's enrolment): the one way in for them, so that no SQL is written twice. Called from a
    thread whose loop is running (a command run by a test), it runs on a loop of its own in a
    thread, as the loop's own task could not be waited for here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(call)
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, call).result()


def _configure(db: sqlite3.Connection) -> None:
    """Durability first: a commit is on the card before the call goes on (docs/storage.md).

    In WAL mode NORMAL syncs the log only at checkpoints, which come every ~1,000 pages: on a
    unit that logs a few calls a day, a power cut would roll back every row written since the
    kernel last flushed the log (up to ~30 s, in no promised order), the row that links a
    voicemail being recorded to its call among them. FULL flushes the log at each commit
    (one append and one fsync; a call writes ~10 rows, the heartbeat one every
    ``HubConfig.heartbeat_seconds`` while calls run). A SIGKILL loses nothing in either mode:
    the log is in the page cache, and the next open replays it.
    """
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")


_WHAT_TO_DO = "Restore it from a backup, or move it (and its -wal and -shm files) away to start an empty one"


class DatabaseDamaged(sqlite3.DatabaseError):
    """The database file cannot be read as one: the hub refuses to start rather than begin an
    empty one over it (which would lose its keys, flows and call log)."""


def _refuse_an_orphan_log(path: Path) -> None:
    """A write-ahead log with no database beside it: SQLite would start an empty database and
    delete the log, and whatever it held with it."""
    if _log_holds_something(path):
        log = _log_of(path).name
        raise DatabaseDamaged(
            f"{path} is missing but its write-ahead log {log} is there: the database was moved or "
            f"deleted while a hub used it. Put it back, or move {log} away to start an empty database"
        )


def _refuse_a_damaged_database(path: Path, error: sqlite3.DatabaseError) -> None:
    """Raise :class:`DatabaseDamaged` naming the file and what to do, when ``error`` says the file
    is not a database or is corrupt (other errors, such as a read-only disk, are left as they are)."""
    if getattr(error, "sqlite_errorname", "").startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        raise DatabaseDamaged(
            f"the database {path} is damaged ({error}): the hub does not start over it. {_WHAT_TO_DO}"
        ) from error


def _log_of(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def _log_holds_something(path: Path) -> bool:
    """Whether the database's write-ahead log has anything in it: a clean stop leaves it empty."""
    log = _log_of(path)
    return log.exists() and log.stat().st_size > 0


def _key(row: tuple) -> AccessKey:
    *fields, scope = row
    return AccessKey(*fields, scope=KeyScope.from_json(scope) if scope is not None else None)


def _marks(values: list[str]) -> str:
    return ", ".join("?" * len(values))


def statements(script: str) -> list[str]:
    """A migration's statements, its ``--`` comments left out (they may hold a ";")."""
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in code.split(";") if statement.strip()]
