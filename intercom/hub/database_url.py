"""``--database URL``: which database a hub uses, checked before anything connects (no psycopg here)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

SCHEMES = ("postgresql", "postgres")


class DatabaseUnreachable(RuntimeError):
    """The database refused or did not answer the first connection: the reason, one line, which
    names the server and the user but never a password."""


def check_database_url(url: str) -> None:
    """``ValueError`` naming what is wrong with a ``postgresql://user@host[:port]/db`` URL, never
    repeating it (it may hold a password: a password belongs in ``--database-password-file`` or
    libpq's PGPASSFILE, not on a command line that ``ps`` shows to every user)."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None or "password" in parse_qs(parts.query)
    except ValueError:
        raise ValueError("--database: not a URL; give postgresql://user@host[:port]/database") from None
    if has_password:
        raise ValueError(
            "--database: the URL holds a password, which the command line shows to every user: "
            "take it out and give it with --database-password-file PATH (or libpq's PGPASSFILE)"
        )
    if parts.scheme not in SCHEMES:
        raise ValueError(f"--database: give postgresql://user@host[:port]/database, not a {parts.scheme or 'bare'} URL")
    if not parts.path.strip("/"):
        raise ValueError("--database: the URL names no database (postgresql://user@host/database)")
