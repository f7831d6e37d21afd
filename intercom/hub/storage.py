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
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ..auth import AccessKey, KeyScope, new_key_id, new_key_secret
from .callflows import CallFlow, CallFlowError
from .records import CallRecord, LegRecord, RecordingRecord, Webhook, WebhookDelivery
from .storage_fault import CALL_LOG, StorageFault

DATABASE_NAME = "intercom.sqlite3"

MIGRATIONS = [
    """
    CREATE TABLE access_keys (
        id TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
    """
    CREATE TABLE call_flows (
        id TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # The call log. Rows are the pydantic models of intercom.hub.records as JSON; the columns
    # beside the body are what lists are filtered and ordered by.
    """
    CREATE TABLE calls (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
    CREATE INDEX calls_by_time ON calls (created_at);
    CREATE TABLE legs (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
    CREATE INDEX legs_by_call ON legs (parent, created_at);
    CREATE TABLE recordings (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
    CREATE INDEX recordings_by_leg ON recordings (parent, created_at);
    CREATE TABLE webhooks (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
    CREATE TABLE webhook_deliveries (id TEXT PRIMARY KEY, parent TEXT, created_at REAL NOT NULL, body TEXT NOT NULL);
    CREATE INDEX deliveries_by_time ON webhook_deliveries (created_at);
    """,
    # What each key may do (KeyScope as JSON); NULL for the keys made before scopes, which keep
    # working as they did (with a warning) until the installer splits them.
    """
    ALTER TABLE access_keys ADD COLUMN scope TEXT;
    """,
    # Start-up resumes only the deliveries still pending: a partial index finds them without
    # reading (and parsing) every delivered one.
    # So do the calls and legs a stopped hub left open: the same WHERE as Storage.unfinished (the
    # statuses sorted), which SQLite needs word for word to use an index this partial.
    """
    CREATE INDEX deliveries_pending ON webhook_deliveries (created_at) WHERE json_extract(body, '$.status') = 'pending';
    CREATE INDEX calls_unfinished ON calls (created_at) WHERE json_extract(body, '$.status') NOT IN ('ended');
    CREATE INDEX legs_unfinished ON legs (created_at)
        WHERE json_extract(body, '$.status') NOT IN ('busy', 'failed', 'hangup', 'no_answer');
    """,
    # When the hub was last known alive while calls ran (Storage.mark_alive): a call a crash or a
    # power cut left open is ended at that time at the next start, not at the start's. And the
    # recordings it left running, found at start like the calls (intercom.hub.recordings).
    """
    CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), alive_at REAL NOT NULL);
    CREATE INDEX recordings_unfinished ON recordings (created_at) WHERE json_extract(body, '$.status') NOT IN ('done');
    """,
    # Paired phones (intercom.hub.pairing): each is an access key of the group "phones" (same id),
    # reached by the SHA-256 of its one-time code, then of its credential; the secrets themselves
    # are never stored.
    """
    CREATE TABLE phones (
        id TEXT PRIMARY KEY REFERENCES access_keys (id),
        identity TEXT NOT NULL,
        name TEXT NOT NULL,
        code_hash TEXT UNIQUE,
        code_expires_at REAL NOT NULL,
        credential_hash TEXT UNIQUE,
        device TEXT,
        created_at REAL NOT NULL,
        paired_at REAL,
        last_token_at REAL,
        revoked_at REAL
    );
    CREATE INDEX phones_by_identity ON phones (identity);
    """,
]

_KEY_COLUMNS = "id, secret, name, created_at, revoked_at, scope"

Row = TypeVar("Row", CallRecord, LegRecord, RecordingRecord, Webhook, WebhookDelivery)
Result = TypeVar("Result")

# Each kind of row: its table, and the field that is its ``parent`` column (what lists filter by).
_TABLES: dict[type[BaseModel], tuple[str, str | None]] = {
    CallRecord: ("calls", None),
    LegRecord: ("legs", "call_id"),
    RecordingRecord: ("recordings", "leg_id"),
    Webhook: ("webhooks", None),
    WebhookDelivery: ("webhook_deliveries", "webhook_id"),
}


class Storage:
    """Access to the hub database. One instance per process.

    Its methods are coroutines, so that a database across the network (PostgreSQL) never makes
    the event loop wait; on SQLite they run inline, as plain calls did (no thread, no hop: the
    embedded hub is as fast as before). :meth:`get_key` alone stays a plain call: every REGISTER
    asks it, from code that must not wait, and it answers from memory. Code outside the event loop
    (the CLI) goes through :func:`blocking`."""

    def __init__(self, data_dir: str | os.PathLike[str], check_after_crash: bool = False) -> None:
        """Open (or make) the database in ``data_dir``. ``check_after_crash`` (the hub): when the
        last process to use it did not close it (a crash, a power cut), check it whole before use
        (``PRAGMA quick_check``: ~0.25 s for 100,000 calls here), so that damage stops the start
        with :class:`DatabaseDamaged` rather than a call half-way."""
        self.data_dir = Path(data_dir)
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
                for statement in _statements(script):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")

    def close(self) -> None:
        self._db.close()

    # -- for the modules that keep a table of their own (intercom.hub.pairing) ------------------

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

    async def stopped_cleanly(self) -> None:
        """At the hub's stop: everything into the database file and the log emptied, so that the
        next start knows no crash came between (a hub that dies leaves its log holding something).
        On a card that cannot be written the log stays as it is: the next start checks the database."""
        with contextlib.suppress(sqlite3.OperationalError):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def mark_alive(self, at: float | None = None) -> None:
        """Note that the hub is alive now (the sweeper's heartbeat while calls run). A disk that
        refuses it is the call log's fault to report (:attr:`fault`), not the heartbeat's."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute(
                "INSERT OR REPLACE INTO heartbeat (id, alive_at) VALUES (1, ?)",
                (time.time() if at is None else at,),
            )

    async def last_alive(self) -> float | None:
        """When the hub last noted it was alive; ``None`` if it never did."""
        row = self._db.execute("SELECT alive_at FROM heartbeat WHERE id = 1").fetchone()
        return row[0] if row else None

    async def keys_version(self) -> tuple[int, int]:
        """Changes whenever a key may have changed: another process (``intercom keys revoke``)
        committed to the database, or this one wrote a key. One cheap PRAGMA."""
        return self._data_version(), self._key_writes

    def _keys_written(self) -> None:
        self._keys.clear()  # our own writes do not change data_version
        self._key_writes += 1

    async def create_key(self, name: str, scope: KeyScope) -> AccessKey:
        key = AccessKey(new_key_id(), new_key_secret(), name, time.time(), scope=scope)
        self._keys_written()
        self._db.execute(
            "INSERT INTO access_keys (id, secret, name, created_at, scope) VALUES (?, ?, ?, ?, ?)",
            (key.id, key.secret, key.name, key.created_at, scope.to_json()),
        )
        return key

    async def put_key(self, key_id: str, secret: str, name: str, scope: KeyScope | None) -> AccessKey:
        """Key ``key_id`` with this secret: added with ``scope`` when new, its secret replaced when it
        differs (an embedded hub's key comes from its unit's env file). An existing key keeps its
        scope, a legacy one stays legacy (an old install keeps working); a revoked key stays revoked."""
        self._keys_written()
        self._db.execute(
            "INSERT INTO access_keys (id, secret, name, created_at, scope) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET secret = excluded.secret",
            (key_id, secret, name, time.time(), scope.to_json() if scope is not None else None),
        )
        key = self._read_key(key_id)
        assert key is not None
        return key

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
        key = self._keys[key_id] = self._read_key(key_id)
        return key

    def _read_key(self, key_id: str) -> AccessKey | None:
        row = self._db.execute(f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE id = ?", (key_id,)).fetchone()
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
        rows = self._db.execute(f"SELECT {_KEY_COLUMNS} FROM access_keys ORDER BY created_at").fetchall()
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; ``False`` when no such key exists or it was already revoked."""
        self._keys_written()
        cursor = self._db.execute(
            "UPDATE access_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key_id)
        )
        return cursor.rowcount == 1

    async def create_call_flow(self, flow: CallFlow) -> CallFlow:
        """Store a new flow, stamped with its creation time; its id must be free."""
        now = time.time()
        stored = flow.model_copy(update={"created_at": now, "updated_at": now})
        with self._db:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT INTO call_flows (id, body, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    (stored.id, stored.to_json(), now, now),
                )
            except sqlite3.IntegrityError:
                raise CallFlowError(f"a call flow with id {flow.id!r} exists already") from None
            await self._only_default(stored)
        return stored

    async def replace_call_flow(self, flow: CallFlow) -> CallFlow | None:
        """Replace flow ``flow.id`` (PUT), keeping its creation time; ``None`` when there is none."""
        with self._db:
            self._db.execute("BEGIN")
            existing = await self.get_call_flow(flow.id)
            if existing is None:
                return None
            stored = flow.model_copy(update={"created_at": existing.created_at, "updated_at": time.time()})
            self._db.execute(
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
                self._db.execute("UPDATE call_flows SET body = ? WHERE id = ?", (body, other.id))

    async def get_call_flow(self, flow_id: str) -> CallFlow | None:
        row = self._db.execute("SELECT body FROM call_flows WHERE id = ?", (flow_id,)).fetchone()
        return CallFlow.model_validate_json(row[0]) if row else None

    async def default_call_flow(self) -> CallFlow | None:
        return next((flow for flow in await self.list_call_flows() if flow.default), None)

    async def list_call_flows(self, offset: int = 0, limit: int = -1) -> list[CallFlow]:
        rows = self._db.execute(
            "SELECT body FROM call_flows ORDER BY created_at, id LIMIT ? OFFSET ?", (limit, offset)
        ).fetchall()
        return [CallFlow.model_validate_json(body) for (body,) in rows]

    async def count_call_flows(self) -> int:
        return self._db.execute("SELECT count(*) FROM call_flows").fetchone()[0]

    async def delete_call_flow(self, flow_id: str) -> bool:
        return self._db.execute("DELETE FROM call_flows WHERE id = ?", (flow_id,)).rowcount == 1

    # -- the call log: calls, legs, recordings, webhooks, deliveries -------------------------------

    async def put(self, row: Row) -> Row:
        """Insert ``row`` or replace the stored one with the same id, stamping ``updated_at``."""
        table, parent_field = _TABLES[type(row)]
        row.updated_at = time.time()
        parent = getattr(row, parent_field) if parent_field else None
        self._db.execute(
            f"INSERT INTO {table} (id, parent, created_at, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            (row.id, parent, row.created_at, row.model_dump_json()),
        )
        return row

    async def try_put(self, row: Row) -> bool:
        """:meth:`put` that never raises: on a read-only or full disk the failure goes to
        :attr:`fault` (said once) and ``False`` comes back, so that a call goes on unlogged."""
        try:
            await self.put(row)
        except sqlite3.Error as exc:
            self.fault.failed(CALL_LOG, exc)
            return False
        self.fault.recovered(CALL_LOG)
        return True

    async def get(self, kind: type[Row], row_id: str) -> Row | None:
        table, _ = _TABLES[kind]
        found = self._db.execute(f"SELECT body FROM {table} WHERE id = ?", (row_id,)).fetchone()
        return kind.model_validate_json(found[0]) if found else None

    async def page(
        self, kind: type[Row], offset: int = 0, limit: int = -1, parent: str | None = None, newest_first: bool = False
    ) -> tuple[list[Row], int]:
        """Rows of ``kind`` (those of ``parent`` when given) in creation order, and how many there are."""
        table, _ = _TABLES[kind]
        where, args = ("WHERE parent = ?", [parent]) if parent is not None else ("", [])
        order = "DESC" if newest_first else "ASC"
        rows = self._db.execute(
            f"SELECT body FROM {table} {where} ORDER BY created_at {order}, id {order} LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        total = self._db.execute(f"SELECT count(*) FROM {table} {where}", args).fetchone()[0]
        return [kind.model_validate_json(body) for (body,) in rows], total

    async def calls_from(self, sources: list[str], limit: int) -> list[CallRecord]:
        """The newest ``limit`` calls made by one of ``sources`` (the doors' calls, for the desk page)."""
        rows = self._db.execute(
            f"SELECT body FROM calls WHERE json_extract(body, '$.source') IN ({_marks(sources)}) "
            "ORDER BY created_at DESC, id DESC LIMIT ?",
            (*sources, limit),
        ).fetchall()
        return [CallRecord.model_validate_json(body) for (body,) in rows]

    async def unfinished(self, kind: type[Row], finished: tuple[str, ...]) -> list[Row]:
        """Rows of ``kind`` whose status is none of ``finished`` (calls a stopped hub left open)."""
        table, _ = _TABLES[kind]
        rows = self._db.execute(f"SELECT body FROM {table} WHERE {_status_not_in(finished)}").fetchall()
        return [kind.model_validate_json(body) for (body,) in rows]

    async def delete(self, kind: type[Row], row_id: str) -> bool:
        table, _ = _TABLES[kind]
        return self._db.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,)).rowcount == 1

    async def pending_deliveries(self) -> list[WebhookDelivery]:
        """The webhook deliveries not yet delivered nor given up, oldest first (``deliveries_pending``)."""
        rows = self._db.execute(
            "SELECT body FROM webhook_deliveries WHERE json_extract(body, '$.status') = 'pending' ORDER BY created_at"
        ).fetchall()
        return [WebhookDelivery.model_validate_json(body) for (body,) in rows]

    # -- pruning (intercom.hub.retention decides what goes; these do it, a small batch at a time) ---

    async def prune_calls(self, created_before: float, keep: int, batch: int) -> tuple[int, list[str]]:
        """Delete up to ``batch`` ended calls, the oldest first, that were made before
        ``created_before`` or are beyond the newest ``keep``, with their legs and recordings' rows.
        How many calls went, and the recording files (relative paths) that go with them."""
        with self._db:
            self._db.execute("BEGIN")
            calls = [
                call_id
                for (call_id,) in self._db.execute(
                    "SELECT id FROM calls WHERE created_at <= ? AND json_extract(body, '$.status') = 'ended' "
                    "ORDER BY created_at LIMIT ?",
                    (await self._prune_bound("calls", created_before, keep), batch),
                )
            ]
            if not calls:
                return 0, []
            legs = await self._ids_under("legs", calls)
            files = [
                path
                for (path,) in self._db.execute(
                    f"SELECT json_extract(body, '$.path') FROM recordings WHERE parent IN ({_marks(legs)}) "
                    "AND json_extract(body, '$.pruned_at') IS NULL",
                    legs,
                )
            ]
            self._db.execute(f"DELETE FROM recordings WHERE parent IN ({_marks(legs)})", legs)
            self._db.execute(f"DELETE FROM legs WHERE id IN ({_marks(legs)})", legs)
            self._db.execute(f"DELETE FROM calls WHERE id IN ({_marks(calls)})", calls)
        return len(calls), files

    async def _ids_under(self, table: str, parents: list[str]) -> list[str]:
        return [
            row_id
            for (row_id,) in self._db.execute(f"SELECT id FROM {table} WHERE parent IN ({_marks(parents)})", parents)
        ]

    async def prune_deliveries(self, created_before: float, keep: int, batch: int) -> int:
        """Delete up to ``batch`` finished webhook deliveries (delivered or failed: a pending one is
        still to send), oldest first, made before ``created_before`` or beyond the newest ``keep``."""
        return self._db.execute(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries "
            "WHERE created_at <= ? AND json_extract(body, '$.status') != 'pending' ORDER BY created_at LIMIT ?)",
            (await self._prune_bound("webhook_deliveries", created_before, keep), batch),
        ).rowcount

    async def _prune_bound(self, table: str, created_before: float, keep: int) -> float:
        """The newest creation time a row of ``table`` may have to go: made before ``created_before``,
        or older than the newest ``keep``. A range on the time index: only the rows that may go are read."""
        row = self._db.execute(
            f"SELECT created_at FROM {table} ORDER BY created_at DESC LIMIT 1 OFFSET ?", (keep,)
        ).fetchone()
        return max(created_before, row[0]) if row else created_before

    async def kept_recordings(self, kind: str, batch: int) -> list[RecordingRecord]:
        """Up to ``batch`` recordings of ``kind`` whose file is still kept, oldest first; not one
        still running (status "recording"), whose file its recorder is writing."""
        rows = self._db.execute(
            "SELECT body FROM recordings WHERE json_extract(body, '$.kind') = ? "
            "AND json_extract(body, '$.pruned_at') IS NULL "
            "AND coalesce(json_extract(body, '$.status'), 'done') = 'done' ORDER BY created_at LIMIT ?",
            (kind, batch),
        ).fetchall()
        return [RecordingRecord.model_validate_json(body) for (body,) in rows]

    async def row_counts(self) -> dict[str, int]:
        """Rows per table of the call log, for ``intercom storage``."""
        tables = ["calls", "legs", "recordings", "webhooks", "webhook_deliveries", "access_keys", "call_flows"]
        return {table: self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}


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


def _status_not_in(statuses: tuple[str, ...]) -> str:
    """``status NOT IN (...)`` with the statuses written out, sorted: the words of the partial
    indexes ``calls_unfinished``, ``legs_unfinished`` and ``recordings_unfinished``. Our own
    constants, never a client's."""
    listed = ", ".join(f"'{status}'" for status in sorted(statuses))
    return f"json_extract(body, '$.status') NOT IN ({listed})"


def _marks(values: list[str]) -> str:
    return ", ".join("?" * len(values))


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]
