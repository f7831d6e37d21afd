"""The hub database on PostgreSQL: one database that several hubs share (docs/storage.md,
"Several hubs: PostgreSQL").

The queries are :class:`~intercom.hub.storage.Storage`'s own; this backend gives them a pool of
psycopg 3 connections (async: the event loop never waits on the network), PostgreSQL's
placeholders and JSON operator, its migrations (intercom/hub/migrations/postgresql, applied under
an advisory lock so that two hubs starting together migrate once), and a key cache of its own.

Imported only when ``intercom hub --database postgresql://...`` is given: a unit never loads psycopg.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..auth import AccessKey
from .database_url import DatabaseUnreachable, check_database_url
from .storage import _KEY_COLUMNS, Storage, _key, migrations, statements
from .storage_fault import StorageFault

log = logging.getLogger(__name__)

# The advisory lock (pg_advisory_xact_lock) a hub holds while it migrates: "intc".
MIGRATION_LOCK = 0x696E7463
CONNECT_TIMEOUT = 10.0  # seconds the start-up waits for the database before it gives up


class PostgresStorage(Storage):
    """The hub database on PostgreSQL. Make it with :meth:`open`.

    Keys: :meth:`get_key` answers from a copy of the whole ``access_keys`` table in memory (keys
    are few: units, phones, admins), read again whenever :meth:`keys_version` (the hub's sweeper,
    every ``KEY_POLL_SECONDS``) sees a key changed, by this hub or another one. A key revoked on
    another hub is refused here from that tick on (half a second), not from the very next REGISTER
    as on SQLite, whose check costs nothing."""

    errors = (psycopg.Error,)
    unavailable = (psycopg.OperationalError,)  # the database away or read-only: 503, try again
    _duplicate = psycopg.errors.UniqueViolation
    _no_limit = None  # PostgreSQL's LIMIT NULL: every row

    def __init__(self, pool: AsyncConnectionPool, data_dir: str | os.PathLike[str], hub_id: str) -> None:
        self._pool = pool
        self.data_dir = Path(data_dir)  # the recordings, on a directory every hub mounts
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.hub_id = hub_id
        self.fault = StorageFault()
        self._keys_by_id: dict[str, AccessKey] = {}
        self._keys_seen: object = None
        self._in_transaction: contextvars.ContextVar[psycopg.AsyncConnection | None] = contextvars.ContextVar(
            "transaction", default=None
        )

    @classmethod
    async def open(
        cls,
        url: str,
        data_dir: str | os.PathLike[str],
        hub_id: str,
        password: str | None = None,
        pool_size: int = 10,
        pool_timeout: float = 5.0,
    ) -> PostgresStorage:
        """Connect (a pool of at most ``pool_size`` connections, a query waiting at most
        ``pool_timeout`` seconds for one of them), migrate, read the keys."""
        check_database_url(url)
        extra = {"password": password} if password is not None else {}
        try:  # one connection first: a wrong password or a server away is said at once, not after the pool's retries
            first = await psycopg.AsyncConnection.connect(url, connect_timeout=int(CONNECT_TIMEOUT), **extra)
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split())  # libpq's lines as one
            raise DatabaseUnreachable(f"--database: cannot connect: {reason}") from None
        await first.close()
        pool = AsyncConnectionPool(
            url,
            kwargs={"autocommit": True, **extra},
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout,
            open=False,
            name=hub_id,
        )
        await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        try:
            storage = cls(pool, data_dir, hub_id)  # makes the recordings' directory, which may fail
            await storage._migrate_database()
            await storage._read_keys()
        except BaseException:
            await pool.close()
            raise
        return storage

    async def _migrate_database(self) -> None:
        scripts = migrations("postgresql")
        async with self.transaction():
            await self.run("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))  # released at commit
            await self.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = await self.row("SELECT version FROM schema_version")
            version = row[0] if row else 0
            if version > len(scripts):
                raise RuntimeError(
                    f"the database is at version {version}, newer than this hub's {len(scripts)}: upgrade the hub"
                )
            for number, script in enumerate(scripts[version:], start=version + 1):
                for statement in statements(script):
                    await self.run(statement)
                log.info("database: migrated to version %d", number)
            if row is None:
                await self.run("INSERT INTO schema_version (version) VALUES (?)", (len(scripts),))
            else:
                await self.run("UPDATE schema_version SET version = ?", (len(scripts),))

    def close(self) -> None:
        raise TypeError("a PostgreSQL storage is closed with `await storage.aclose()`")

    async def aclose(self) -> None:
        await self._pool.close()

    # -- the queries' way to the database ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """The transaction's connection inside :meth:`transaction`, else one from the pool."""
        current = self._in_transaction.get()
        if current is not None:
            yield current
            return
        async with self._pooled() as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def _pooled(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A connection of the pool; every one busy for the whole wait: one log line that names the
        limit, and :class:`~psycopg_pool.PoolTimeout` (a ``psycopg.OperationalError``: the Voice API
        answers 503, a call goes on unlogged as on a full disk)."""
        try:
            async with self._pool.connection() as connection:
                yield connection
        except PoolTimeout:
            stats = self._pool.get_stats()
            log.warning(
                "database: no free connection within %g s, all %d busy (database_pool_size, "
                "--database-pool-size; the wait: database_pool_timeout, --database-pool-timeout)",
                self._pool.timeout,
                stats.get("pool_size", self._pool.max_size),
            )
            raise

    async def rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        async with self._connection() as connection:
            cursor = await connection.execute(_placeholders(sql), args or None)
            return await cursor.fetchall()

    async def row(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        async with self._connection() as connection:
            cursor = await connection.execute(_placeholders(sql), args or None)
            return await cursor.fetchone()

    async def run(self, sql: str, args: Sequence[object] = ()) -> int:
        async with self._connection() as connection:
            cursor = await connection.execute(_placeholders(sql), args or None)
            return cursor.rowcount

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """The queries of this task inside run on one connection, in one transaction. A task
        started inside would inherit it (a context variable): start none there."""
        if self._in_transaction.get() is not None:  # within one already: part of it
            yield
            return
        async with self._pooled() as connection, connection.transaction():
            token = self._in_transaction.set(connection)
            try:
                yield
            finally:
                self._in_transaction.reset(token)

    @staticmethod
    def _field(name: str) -> str:
        return f"(body::jsonb ->> '{name}')"

    async def stopped_cleanly(self) -> None:
        """Nothing to do: PostgreSQL's own log keeps every commit through a crash."""

    # -- keys: the whole table in memory ------------------------------------------------------------

    async def keys_version(self) -> object:
        """How many keys there are and when the last was written; the copy in memory read again
        when that moved."""
        version = await self.row("SELECT count(*), max(changed_at) FROM access_keys")
        if version != self._keys_seen:
            await self._read_keys()
            self._keys_seen = version
        return version

    async def _read_keys(self) -> None:
        rows = await self.rows(f"SELECT {_KEY_COLUMNS} FROM access_keys")
        self._keys_by_id = {key.id: key for key in map(_key, rows)}

    async def _key_written(self, key_id: str) -> None:
        key = await self._read_key(key_id)
        if key is None:
            self._keys_by_id.pop(key_id, None)
        else:
            self._keys_by_id[key_id] = key

    def get_key(self, key_id: str) -> AccessKey | None:
        return self._keys_by_id.get(key_id)


def _placeholders(sql: str) -> str:
    """The queries' ``?`` as psycopg's ``%s`` (none of them holds a ``?`` or ``%`` otherwise)."""
    return sql.replace("?", "%s")
