"""How an admin command reaches the hub's database: ``--data-dir`` (SQLite there, the embedded
hub's) or ``--database postgresql://...`` (the one several hubs share; its password from
``--database-password-file`` or libpq's PGPASSFILE, never from the command line), and
:func:`stored`, which opens that database around one piece of work.

Shared by cli.py and the command modules it registers (pairing_commands.py), which import this
and not each other. The hub's modules are imported by :func:`stored` only: ``intercom --help``
stays quick, and without --database nothing loads psycopg.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .usage import UsageError, secret_from_file

if TYPE_CHECKING:
    from .hub import Storage

DEFAULT_DATA_DIR = os.environ.get("INTERCOM_DATA_DIR", "/var/lib/intercom")
Result = TypeVar("Result")


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=Path(DEFAULT_DATA_DIR), help=f"hub data directory (default {DEFAULT_DATA_DIR})"
    )


def add_database_url_flags(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    group = parser.add_argument_group("several hubs on one PostgreSQL database (docs/storage.md)")
    group.add_argument(
        "--database",
        metavar="URL",
        help="postgresql://user@host[:port]/database, without its password (default: SQLite in --data-dir; "
        "needs the extra intercom[postgresql])",
    )
    group.add_argument(
        "--database-password-file", type=Path, metavar="PATH", help="a file holding the database user's password"
    )
    return group


def add_hub_database(parser: argparse.ArgumentParser) -> None:
    """An admin command's way to the hub's data: --data-dir (SQLite), or --database (PostgreSQL)."""
    add_data_dir(parser)
    add_database_url_flags(parser)


def database_fields(args: argparse.Namespace) -> dict[str, object]:
    """The HubConfig fields of the --database flags, checked before anything connects."""
    from .hub.database_url import check_database_url

    if args.database is None:
        if args.database_password_file is not None:
            raise UsageError("--database-password-file goes with --database")
        return {}
    try:
        check_database_url(args.database)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    password_file = args.database_password_file
    given: dict[str, object] = {
        "database": args.database,
        "database_password": secret_from_file("--database-password-file", password_file) if password_file else None,
    }
    if "hub_id" not in args:  # an admin command: one connection for a moment, no rows of a hub's own
        return given | {"database_pool_size": 1}
    if args.database_pool_size < 1:
        raise UsageError("--database-pool-size must be 1 or more")
    if not args.database_pool_timeout > 0:
        raise UsageError("--database-pool-timeout must be more than 0")
    return given | {
        "database_pool_size": args.database_pool_size,
        "database_pool_timeout": args.database_pool_timeout,
        "hub_id": args.hub_id,
    }


def stored(
    args: argparse.Namespace, work: Callable[[Storage], Awaitable[Result]], data_dir: Path | None = None
) -> Result:
    """``work`` done on the hub's database (SQLite in ``data_dir``, default --data-dir, or
    --database), opened around it; a database that refuses the connection is one line (UsageError)."""
    from .hub import HubConfig, blocking
    from .hub.database_url import DatabaseUnreachable
    from .hub.server import open_storage

    config = HubConfig(data_dir=data_dir or args.data_dir, **database_fields(args))

    async def run() -> Result:
        try:
            storage = await open_storage(config, check_after_crash=False)
        except OSError as exc:  # a data directory this user may not make or use
            raise UsageError(f"--data-dir {config.data_dir}: cannot use it ({exc.strerror or exc})") from None
        try:
            return await work(storage)
        finally:
            await storage.aclose()

    try:
        return blocking(run())
    except DatabaseUnreachable as exc:
        raise UsageError(str(exc)) from None


def own_hub_data_dir(args: argparse.Namespace, url_form: str) -> Path | None:
    """For a command that adds to a hub (``units add``, ``web add``): the data directory of a hub
    of its own, given by --data-dir or --database (then by default the usual one, where the hubs
    keep their certificate and recordings), which needs --hub-url (``url_form``) since no env file
    tells it; ``None`` for the embedded hub of --env-file, which is SQLite only."""
    if args.database is not None and args.env_file is not None:
        raise UsageError("--env-file is a unit's, whose embedded hub keeps SQLite: leave it out with --database")
    if args.data_dir is None and args.database is None:
        return None
    if args.hub_url is None:
        raise UsageError(f"{'--database' if args.database else '--data-dir'} needs --hub-url {url_form}")
    return args.data_dir or Path(DEFAULT_DATA_DIR)
