"""``intercom web add | list | revoke``: pairing phones with the hub, on the hub's machine.

Like ``intercom units add`` these work on the hub's database: SQLite in its data directory (from
the unit's env file when its hub is embedded, or ``--data-dir``), which only who can read it
(root, the service's user) can use to pair a phone; or, with ``--database``, the PostgreSQL
database several hubs share, which only who holds its password can. The link printed holds the
one-time code in its fragment, shown once; the QR code is the same link, for the phone's camera.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .database_flags import add_database_url_flags, add_hub_database, own_hub_data_dir, stored
from .usage import UsageError

if TYPE_CHECKING:  # the hub's modules are imported by the commands that use them: `intercom --help` stays quick
    from .hub.pairing import Phone


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``web`` and its commands to the CLI."""
    web = commands.add_parser("web", help="pair phones with the web desk: add, list, revoke")
    web_commands = web.add_subparsers(dest="web_command", required=True)
    add = web_commands.add_parser("add", help="a one-time pairing link and its QR code (10 minutes, usable once)")
    add.add_argument("--identity", required=True, help="the phone's name on the hub, 1-30 of A-Z a-z 0-9 _")
    add.add_argument("--name", help="what `intercom web list` calls it (default: the identity)")
    add.add_argument("--call-flow", help="the flow the phone may start calls into (default: none, it only answers)")
    add.add_argument("--env-file", type=Path, help="the settings of the unit that runs the hub (default)")
    add.add_argument("--data-dir", type=Path, help="a hub of its own (intercom hub): its data directory")
    add.add_argument("--hub-url", help="https://host:port as the phone reaches the hub (default: this machine's name)")
    add.add_argument("--no-qr", action="store_true", help="print the link only")
    add_database_url_flags(add)
    add.set_defaults(func=_add)
    listing = web_commands.add_parser("list", help="the paired phones: identity, name, paired, last token, revoked")
    add_hub_database(listing)
    listing.set_defaults(func=_list)
    revoke = web_commands.add_parser("revoke", help="revoke a phone: no more tokens, disconnected at once")
    add_hub_database(revoke)
    revoke.add_argument("phone", help="its identity (every phone of it) or its id")
    revoke.set_defaults(func=_revoke)


def _add(args: argparse.Namespace) -> None:
    import segno

    from .hub.pairing import CODE_SECONDS, PhoneBook, pairing_link
    from .hub.tls import authority_fingerprint

    data_dir, origin, cert_file = _hub_of(args)
    try:
        invitation = stored(
            args, lambda storage: PhoneBook(storage).invite(args.identity, args.name, args.call_flow), data_dir
        )
    except ValueError as exc:  # PairingError, InvalidIdentity
        raise UsageError(str(exc)) from None
    link = pairing_link(origin, invitation.code)
    minutes = round(CODE_SECONDS / 60)
    print(f"Open this link on the phone ({invitation.phone.name}) within {minutes} minutes; it works once:")
    print(link)
    if not args.no_qr:
        out = io.StringIO()
        segno.make(link, error="m").terminal(out=out, compact=True)
        print(out.getvalue(), end="")
    if (fingerprint := authority_fingerprint(data_dir, cert_file)) is not None:
        print(f"Hub CA fingerprint (compare on the phone before trusting it): {fingerprint}")
    where = f" --database {args.database}" if args.database else ""  # the URL holds no password: refused
    revoke = f"intercom web revoke {invitation.phone.identity}{where}"
    print(f"(phone {invitation.phone.id}; `{revoke}` ends it)", file=sys.stderr)


def _hub_of(args: argparse.Namespace) -> tuple[Path, str, Path | None]:
    """The hub's data directory, its https origin and the installer's certificate if any, from
    --data-dir or --database, or the embedded hub's env file."""
    from .appliance.enrolment import HubSide, embedded_hub_settings
    from .appliance.settings import DEFAULT_ENV_FILE, SettingsError

    if (own := own_hub_data_dir(args, "https://host:port")) is not None:
        data_dir, url, cert_file = own, args.hub_url, None
    else:
        try:
            settings = embedded_hub_settings(args.env_file or DEFAULT_ENV_FILE)
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        hub = HubSide.of_embedded(settings, args.hub_url)
        data_dir, url, cert_file = hub.data_dir, hub.url.replace("wss://", "https://", 1), hub.cert_file
    if not url.startswith("https://"):
        raise UsageError(f"the hub URL must be https://host:port (a phone's browser needs it), not {url!r}")
    return data_dir, url, cert_file


def _list(args: argparse.Namespace) -> None:
    from .hub.pairing import PhoneBook

    for phone in stored(args, lambda storage: PhoneBook(storage).phones()):
        print(_row(phone))


def _row(phone: Phone) -> str:
    paired = f"paired {_when(phone.paired_at)} ({phone.device})" if phone.paired_at is not None else "not paired"
    token = f"last token {_when(phone.last_token_at)}" if phone.last_token_at is not None else "no token yet"
    revoked = f"revoked {_when(phone.revoked_at)}" if phone.revoked_at is not None else "active"
    return f"{phone.id}  {phone.identity}  {phone.name!r}  {paired}  {token}  {revoked}"


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at is not None else "-"


def _revoke(args: argparse.Namespace) -> None:
    from .hub.pairing import PairingError, PhoneBook

    try:
        revoked = stored(args, lambda storage: PhoneBook(storage).revoke(args.phone))
    except PairingError as exc:
        raise UsageError(str(exc)) from None
    for phone in revoked:
        print(f"revoked {_row(phone)}")
