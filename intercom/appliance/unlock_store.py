"""The door's unlock state and audit log: one SQLite file in ``INTERCOM_STATE_DIR``, kept across restarts.

Every judged attempt, unlock, refusal and lockout is a row of the audit log (``intercom unlocks
list`` reads it); the wrong ones among them are also what the lockouts count, so a restart forgets
neither. Writes are rare (a person types a code), so each is committed with ``synchronous=FULL``:
a power cut right after a wrong code does not give the guesser that attempt back. The file holds
no code, but who opened the door when: it is made 0600.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

STORE_NAME = "unlock.sqlite3"
AUDIT_KEPT = 10_000  # rows: years of a household's use; a flood of refusals cannot fill the card
COUNTED_S = 2 * 24 * 3600.0  # wrong codes this young are never pruned, however many else arrive: lockouts count them

Source = Literal["keypad", "remote"]
Outcome = Literal["open", "wrong", "refused", "lockout"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, source TEXT NOT NULL, who TEXT, call_id TEXT,
    verdict TEXT NOT NULL, detail TEXT NOT NULL, counter TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_counted ON audit (counter, verdict, at);
CREATE TABLE IF NOT EXISTS lockouts (
    counter TEXT PRIMARY KEY, level INTEGER NOT NULL, started REAL NOT NULL, until REAL NOT NULL
);
"""


class StateDirError(Exception):
    """The unlock store cannot be opened: one line naming ``INTERCOM_STATE_DIR``."""


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log. ``who`` is ``keypad``, the identity the hub asserted, or ``None``
    (nobody asserted: a flow of the hub's own); ``counter`` is what a wrong code counts against."""

    at: float
    source: Source
    who: str | None
    call_id: str | None
    verdict: Outcome
    detail: str = ""
    counter: str = ""


@dataclass(frozen=True)
class Lockout:
    """A counter's latest escalating lockout: its level (1, 2, ...) and when it began and ends."""

    level: int
    started: float
    until: float


class UnlockStore:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def open(cls, state_dir: Path) -> UnlockStore:
        """The store in ``state_dir``, made 0600 if new; :class:`StateDirError` when it cannot be."""
        if not state_dir.is_dir():
            raise StateDirError(f"INTERCOM_STATE_DIR: {state_dir} is not a directory (the service's StateDirectory)")
        path = state_dir / STORE_NAME
        try:
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            path.chmod(0o600)  # one made wider by hand is narrowed again
            return cls(sqlite3.connect(path, isolation_level=None))
        except (OSError, sqlite3.Error) as exc:
            raise StateDirError(f"INTERCOM_STATE_DIR: cannot keep the unlock log in {path}: {exc}") from None

    @classmethod
    def in_memory(cls) -> UnlockStore:
        """A store that ends with the process: for a unit that judges no codes, and for tests."""
        return cls(sqlite3.connect(":memory:", isolation_level=None))

    def add(self, entry: AuditEntry) -> None:
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO audit (at, source, who, call_id, verdict, detail, counter) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.at, entry.source, entry.who, entry.call_id, entry.verdict, entry.detail, entry.counter),
            )
            self._db.execute(
                "DELETE FROM audit WHERE id <= ? AND NOT (verdict = 'wrong' AND at > ?)",
                ((cursor.lastrowid or 0) - AUDIT_KEPT, entry.at - COUNTED_S),
            )

    def wrong_since(self, counter: str, since: float) -> list[float]:
        """When each wrong code counted against ``counter`` after ``since`` was typed, oldest first."""
        rows = self._db.execute(
            "SELECT at FROM audit WHERE counter = ? AND verdict = 'wrong' AND at > ? ORDER BY at", (counter, since)
        )
        return [at for (at,) in rows]

    def lockout(self, counter: str) -> Lockout | None:
        row = self._db.execute("SELECT level, started, until FROM lockouts WHERE counter = ?", (counter,)).fetchone()
        return Lockout(*row) if row else None

    def lockouts(self) -> dict[str, Lockout]:
        rows = self._db.execute("SELECT counter, level, started, until FROM lockouts")
        return {counter: Lockout(level, started, until) for counter, level, started, until in rows}

    def set_lockout(self, counter: str, lockout: Lockout) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO lockouts (counter, level, started, until) VALUES (?, ?, ?, ?)",
                (counter, lockout.level, lockout.started, lockout.until),
            )

    def counters(self, since: float) -> list[str]:
        """Every counter with a wrong code after ``since`` or a lockout on record."""
        rows = self._db.execute(
            "SELECT counter FROM audit WHERE verdict = 'wrong' AND at > ? UNION SELECT counter FROM lockouts", (since,)
        )
        return [counter for (counter,) in rows]

    def latest(self, limit: int) -> list[AuditEntry]:
        """The newest ``limit`` lines of the audit log, newest first."""
        rows = self._db.execute(
            "SELECT at, source, who, call_id, verdict, detail, counter FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [AuditEntry(*row) for row in rows]

    def close(self) -> None:
        self._db.close()
