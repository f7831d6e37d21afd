"""The ``intercom`` command: hub, access keys, call flows, the call log, tokens, sound devices, the simulator
and the demo."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from . import pairing_commands
from .auth import (
    ADMIN,
    AccessKey,
    CapabilityError,
    IncomingCapability,
    KeyScope,
    OutgoingCapability,
    check_identity,
    mint_token,
)
from .auth.keys import SPLIT_HINT
from .database_flags import (
    DEFAULT_DATA_DIR,
    add_data_dir,
    add_database_url_flags,
    add_hub_database,
    database_fields,
    own_hub_data_dir,
    stored,
)
from .http_client import DEFAULT_OUTBOUND, OutboundPolicy
from .hub_flags import (
    CALL_LIMITS,
    CONNECTION_LIMITS,
    DURABILITY,
    MQTT_OPEN,
    PAIRING,
    STORAGE_LIMITS,
    add_limit_flags,
    limits_given,
    positive,
)
from .usage import UsageError, on_the_command_line, secret_from_file

if TYPE_CHECKING:
    from .hub.mqtt.settings import MqttSettings
    from .hub.retention import StorageLimits

STORAGE_TITLE = "storage limits (default: the hub's; `intercom storage` shows them)"
log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args) or 0
    except UsageError as exc:
        print(f"intercom {args.command}: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # a damaged database names itself and what to do (hub.storage)
        print(f"intercom {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="intercom", description=__doc__)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    commands = parser.add_subparsers(dest="command", required=True)

    hub = commands.add_parser("hub", help="run the hub: SIP over WebSocket at /")
    add_data_dir(hub)
    hub.add_argument("--host", default="127.0.0.1", help="address to listen on")
    hub.add_argument("--port", type=int, default=8443)
    hub.add_argument(
        "--cert",
        type=Path,
        help="TLS certificate (PEM); default: on any address but loopback, the hub's own, made in --data-dir",
    )
    hub.add_argument("--key", type=Path, help="TLS private key (PEM)")
    hub.add_argument(
        "--insecure-plain",
        action="store_true",
        help="serve plain ws:// beyond loopback: tokens and unlock codes readable on the network (warned at start)",
    )
    hub.add_argument("--zone", default="local", help="zone name reported to clients on REGISTER")
    hub.add_argument("--turn-url", action="append", default=[], help="TURN server URL handed to clients (repeatable)")
    hub.add_argument(
        "--turn-secret-file",
        type=Path,
        metavar="PATH",
        help="a file holding the secret shared with the TURN server (coturn use-auth-secret)",
    )
    hub.add_argument("--turn-secret", help=argparse.SUPPRESS)  # refused: a secret on the command line
    hub.add_argument(
        "--ice-host",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="local address the hub's media offers as ICE host candidate (repeatable; default: every "
        "non-loopback interface; give 127.0.0.1 for a hub whose units all run on this machine)",
    )
    hub.add_argument(
        "--metrics-token-file",
        type=Path,
        metavar="PATH",
        help="a file holding a token that reads /metrics as 'Authorization: Bearer <token>' (else an admin key)",
    )
    hub.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web page origin (https://host:port) that may open the SIP WebSocket besides the hub's own (repeatable)",
    )
    add_limit_flags(hub, "connection limits (default: the hub's; docs/connections.md)", CONNECTION_LIMITS)
    proxy = hub.add_argument_group("behind SIP proxies (Kamailio, docs/proxy.md); off without --sip-proxy-listen")
    proxy.add_argument("--sip-proxy-listen", metavar="HOST:PORT", help="take SIP over TCP from the proxies here")
    proxy.add_argument(
        "--sip-proxy",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="the IP address of a SIP proxy that may connect, whose P-Intercom-Flow and Path the hub believes "
        "(repeatable)",
    )
    outbound = DEFAULT_OUTBOUND
    hub.add_argument(
        "--allow-loopback-requests",
        action="store_true",
        help="fetchCallFlow, play, onFinish and webhooks may reach this machine (127.0.0.1, ::1) and link-local "
        "addresses (169.254.x.y); LAN addresses are always allowed",
    )
    hub.add_argument(
        "--max-redirects", type=int, default=outbound.max_redirects, help="redirects followed (each checked)"
    )
    hub.add_argument(
        "--max-flow-bytes", type=int, default=outbound.max_flow_bytes, help="the largest fetchCallFlow answer read"
    )
    hub.add_argument(
        "--max-media-bytes", type=int, default=outbound.max_media_bytes, help="the largest play file downloaded"
    )
    hub.add_argument(
        "--doors",
        default="door",
        metavar="NAMES",
        help="the units that are doors, comma-separated: the web desk offers them, Home Assistant shows "
        "their doorbell (default door)",
    )
    add_limit_flags(hub, "call limits (docs/call-limits.md)", CALL_LIMITS)
    add_limit_flags(hub, STORAGE_TITLE, STORAGE_LIMITS)
    add_limit_flags(hub, "crashes and power cuts (docs/storage.md)", DURABILITY)
    add_limit_flags(hub, "paired phones (docs/web-desk.md)", PAIRING)
    _add_mqtt_flags(hub)
    _add_database_flags(hub)
    hub.set_defaults(func=_run_hub)

    keys = commands.add_parser("keys", help="create, list and revoke access keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser(
        "create", help="create a key; prints its id and secret once. Give --admin, or --identity for a unit's key"
    )
    add_hub_database(create)
    create.add_argument("--name", required=True)
    create.add_argument(
        "--admin", action="store_true", help="the Voice API and tokens for any identity: keep it on the hub"
    )
    create.add_argument(
        "--identity", action="append", default=[], help="a unit key: tokens for this identity only (repeatable)"
    )
    create.add_argument("--incoming", action="store_true", help="a unit key's tokens may receive calls")
    create.add_argument(
        "--outgoing",
        action="append",
        default=[],
        metavar="CALLFLOW_ID",
        help="a unit key's tokens may start calls running this call flow (repeatable)",
    )
    create.set_defaults(func=_keys_create)
    listing = key_commands.add_parser("list", help="list keys (without secrets)")
    add_hub_database(listing)
    listing.set_defaults(func=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key: its tokens are refused from now on")
    add_hub_database(revoke)
    revoke.add_argument("id")
    revoke.set_defaults(func=_keys_revoke)

    units = commands.add_parser("units", help="add a unit to this hub: its own key and its env-file lines")
    unit_commands = units.add_subparsers(dest="units_command", required=True)
    add = unit_commands.add_parser(
        "add", help="make a unit's key (its identity only) and print the lines of its env file, hub pin included"
    )
    add.add_argument("--role", required=True, choices=["door", "desk"])
    add.add_argument("--identity", required=True, help="the new unit's name, 1-30 of A-Z a-z 0-9 _")
    add.add_argument(
        "--env-file", type=Path, help="the settings of the unit that runs the hub (default: /etc/intercom/intercom.env)"
    )
    add.add_argument(
        "--data-dir",
        type=Path,
        help="a hub of its own (intercom hub): its data directory, instead of --env-file (with --database: where "
        f"the hubs keep their certificate, default {DEFAULT_DATA_DIR})",
    )
    add.add_argument("--hub-url", help="wss://host:port as the new unit reaches the hub (default: this machine's name)")
    add.add_argument(
        "--cert",
        type=Path,
        help="with --data-dir or --database: the certificate the hub, or the SIP proxy before the hubs, serves "
        "when not the hub's own",
    )
    add.add_argument(
        "--desks",
        default="desk",
        help="with --data-dir or --database: who may open the door from a call (default desk)",
    )
    add.add_argument("--call-flow", help="the flow the unit's CALL button runs (default: ring_desks, ring_door)")
    add_database_url_flags(add)
    add.set_defaults(func=_units_add)

    pairing_commands.register(commands)

    flows = commands.add_parser("callflows", help="create, list, show and delete call flows")
    flow_commands = flows.add_subparsers(dest="callflows_command", required=True)
    flow_create = flow_commands.add_parser("create", help="store a call flow from a JSON file; prints its id")
    add_hub_database(flow_create)
    flow_create.add_argument("--file", type=Path, required=True, help="the flow as JSON ('-' reads standard input)")
    flow_create.set_defaults(func=_callflows_create)
    flow_list = flow_commands.add_parser("list", help="list call flows, one JSON object per line")
    add_hub_database(flow_list)
    flow_list.set_defaults(func=_callflows_list)
    flow_show = flow_commands.add_parser("show", help="print one call flow as JSON")
    add_hub_database(flow_show)
    flow_show.add_argument("id")
    flow_show.set_defaults(func=_callflows_show)
    flow_delete = flow_commands.add_parser("delete", help="delete a call flow")
    add_hub_database(flow_delete)
    flow_delete.add_argument("id")
    flow_delete.set_defaults(func=_callflows_delete)

    calls = commands.add_parser("calls", help="read the call log: who called whom, who answered, recordings")
    call_commands = calls.add_subparsers(dest="calls_command", required=True)
    call_list = call_commands.add_parser("list", help="the latest calls, newest first")
    add_hub_database(call_list)
    call_list.add_argument("--limit", type=int, default=20, metavar="N", help="at most N calls (default 20)")
    call_list.set_defaults(func=_calls_list)
    call_show = call_commands.add_parser("show", help="one call with each of its legs and recordings")
    add_hub_database(call_show)
    call_show.add_argument("id")
    call_show.set_defaults(func=_calls_show)

    storage = commands.add_parser(
        "storage", help="what the hub's data directory holds (database, recordings, free space) and its limits"
    )
    add_hub_database(storage)
    add_limit_flags(storage, STORAGE_TITLE, STORAGE_LIMITS)
    storage.set_defaults(func=_storage)

    unlocks = commands.add_parser("unlocks", help="the door's unlock log: openings, wrong codes, refusals, lockouts")
    unlock_commands = unlocks.add_subparsers(dest="unlocks_command", required=True)
    unlock_list = unlock_commands.add_parser("list", help="the latest lines of the door's unlock log, newest first")
    unlock_list.add_argument("--env-file", type=Path, default=None, help="default: /etc/intercom/intercom.env")
    unlock_list.add_argument("--limit", type=int, default=50, metavar="N", help="at most N lines (default 50)")
    unlock_list.set_defaults(func=_unlocks_list)

    token = commands.add_parser("token", help="mint a client JWT in the seed SDK's format")
    token.add_argument("--key-id", help="the access key's id (default: INTERCOM_ACCESS_KEY_ID of --env-file)")
    secret = token.add_mutually_exclusive_group()
    secret.add_argument(
        "--key",
        metavar="-",
        help="'-': read the access key's secret from standard input (never the secret itself: ps shows it); "
        "with none of --key, --key-file, --env-file the secret is asked for at a terminal",
    )
    secret.add_argument("--key-file", type=Path, metavar="PATH", help="a file holding the access key's secret")
    secret.add_argument(
        "--env-file", type=Path, metavar="PATH", help="a unit's env file: its INTERCOM_ACCESS_KEY_ID and _KEY"
    )
    token.add_argument("--identity", help="client identity, 1-30 of A-Z a-z 0-9 _")
    token.add_argument("--outgoing", metavar="CALLFLOW_ID", help="allow outgoing calls running this call flow")
    token.add_argument("--variables", default="", help="call-flow variables, url-encoded: 'a=1&b=2'")
    token.add_argument("--incoming", action="store_true", help="allow incoming calls to client:<identity>")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (at most 86400)")
    token.set_defaults(func=_token)

    appliance = commands.add_parser("appliance", help="run this unit (door or desk) from its env file")
    appliance.add_argument("--env-file", type=Path, default=None, help="default: /etc/intercom/intercom.env")
    appliance.add_argument(
        "--wait-for-settings",
        action="store_true",
        help="settings that cannot work: say so (log, systemd status, the status light blinking fast) and wait "
        "for the env file to change, then exit 75 to be restarted, instead of exiting 2 (the service uses it)",
    )
    appliance.set_defaults(func=_appliance)

    simulate = commands.add_parser(
        "simulate", help="try a door or desk unit in this terminal: its lights drawn, its buttons on keys"
    )
    simulate.add_argument("--role", required=True, choices=["door", "desk"], help="which unit to be")
    simulate.add_argument("--env-file", type=Path, default=None, help="settings (default: the environment only)")
    simulate.add_argument(
        "--tone",
        action="store_true",
        help="no sound card: send a test tone (door 440 Hz, desk 880 Hz) and show what is heard",
    )
    simulate.set_defaults(func=_simulate)

    config = commands.add_parser("config", help="the unit's settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate an env file; print the settings, secrets masked")
    check.add_argument("--env-file", type=Path, default=None, help="default: /etc/intercom/intercom.env")
    check.set_defaults(func=_config_check)
    new_key = config_commands.add_parser(
        "new-key", help="print a fresh access key as env-file lines, for units whose hub is embedded"
    )
    new_key.set_defaults(func=_config_new_key)

    devices = commands.add_parser("devices", help="list sound devices with the ids settings and the SDK take")
    devices.add_argument("--json", action="store_true", help="the SDK's MediaSources shape, as JSON")
    devices.set_defaults(func=_devices)

    audio_test = commands.add_parser("audio-test", help="record a few seconds with a level meter, then play them back")
    audio_test.add_argument(
        "--device", metavar="ID", help="one card for both ways: an id or part of a name from `intercom devices`"
    )
    audio_test.add_argument(
        "--microphone", metavar="ID", help="capture device, id or part of a name (default: --device, else system's)"
    )
    audio_test.add_argument(
        "--speaker", metavar="ID", help="playback device, id or part of a name (default: --device, else system's)"
    )
    audio_test.add_argument("--seconds", type=float, help="how long to record (default 3; not with --echo)")
    audio_test.add_argument(
        "--echo",
        action="store_true",
        help="instead: play a test sound and measure the path from the speaker to the microphone (delay, echo "
        "level, what the echo canceller reaches, clipping, noise floor) with the devices and gains of --env-file; "
        "exit status 0 for a good path, 1 when something needs changing (the last lines say what)",
    )
    audio_test.add_argument(
        "--env-file",
        type=Path,
        help="with --echo: the unit's settings (default: /etc/intercom/intercom.env if there is one, "
        "else the environment); INTERCOM_AUDIO_* variables in the environment win",
    )
    audio_test.set_defaults(func=_audio_test)

    demo = commands.add_parser("demo", help="start a hub, create a key and connect a client, printing statuses")
    demo.add_argument("--data-dir", type=Path, help="keep the demo's data here (default: a temporary folder)")
    demo.set_defaults(func=_demo)
    return parser


def _run_hub(args: argparse.Namespace) -> None:
    os.umask(0o077)  # as the service's UMask=: what the hub writes (recordings, the database) is its user's alone
    from .auth.certificates import loopback_only, pin_of_file
    from .hub import HubConfig, run_hub
    from .hub.config import HUB_MEDIA
    from .hub.tls import phone_trust_line, served_url, tls_files

    if (args.cert is None) != (args.key is None):
        raise UsageError("--cert and --key go together")
    if args.insecure_plain and args.cert is not None:
        raise UsageError("--insecure-plain serves without TLS: leave out --cert and --key")
    for path in (args.cert, args.key):
        if path is not None and not path.is_file():
            raise UsageError(f"{path}: no such file")
    if args.turn_secret is not None:
        raise UsageError(on_the_command_line("--turn-secret", "--turn-secret-file PATH"))
    if args.turn_url and not args.turn_secret_file:
        raise UsageError("--turn-url needs --turn-secret-file")
    try:
        cert, key = tls_files(args.host, args.data_dir, args.cert, args.key, plain=args.insecure_plain) or (None, None)
    except OSError as exc:
        raise UsageError(f"--data-dir {args.data_dir}: cannot keep the certificate there ({exc.strerror})") from None
    url = served_url(args.host, args.port, secure=cert is not None)
    if cert is not None:
        log.info("serving %s, certificate SHA-256 fingerprint %s", url, pin_of_file(cert))
        if (line := phone_trust_line(args.data_dir, cert, url)) is not None:
            log.info(line)
    elif args.insecure_plain and not loopback_only(args.host):
        log.warning(
            "serving plain %s (--insecure-plain): tokens and unlock codes cross the network readable; "
            "leave out --insecure-plain to serve wss:// with the hub's own certificate",
            url,
        )
    else:
        log.info("serving %s (loopback only: plain)", url)
    origins = tuple(_origin(origin) for origin in args.allow_origin)
    config = HubConfig(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        cert_file=cert,
        key_file=key,
        zone=args.zone,
        turn_urls=args.turn_url,
        turn_secret=secret_from_file("--turn-secret-file", args.turn_secret_file) if args.turn_secret_file else None,
        media=replace(HUB_MEDIA, host_addresses=tuple(args.ice_host)),
        metrics_token=(
            secret_from_file("--metrics-token-file", args.metrics_token_file, min_length=16)
            if args.metrics_token_file
            else None
        ),
        allowed_origins=origins,
        outbound=_outbound(args),
        storage_limits=_storage_limits(args),
        doors=_identities("--doors", args.doors),
        mqtt=_mqtt(args),
        mqtt_open_door=args.mqtt_open_door,
        sip_proxy_listen=args.sip_proxy_listen,
        sip_proxies=tuple(args.sip_proxy),
        **database_fields(args),
        **limits_given(args, CONNECTION_LIMITS + CALL_LIMITS + DURABILITY + PAIRING + MQTT_OPEN),
    )
    try:
        config.sip_proxy_listener()
    except ValueError as exc:
        raise UsageError(f"--sip-proxy-listen / --sip-proxy: {exc}") from None
    if args.sip_proxy and args.sip_proxy_listen is None:
        raise UsageError("--sip-proxy needs --sip-proxy-listen")
    from .hub.database_url import DatabaseUnreachable

    try:
        run_hub(config, log_level=args.log_level)
    except DatabaseUnreachable as exc:
        raise UsageError(str(exc)) from None


def _add_database_flags(parser: argparse.ArgumentParser) -> None:
    group = add_database_url_flags(parser)
    group.add_argument(
        "--database-pool-size", type=int, default=10, metavar="N", help="connections this hub opens at most (10)"
    )
    group.add_argument(
        "--database-pool-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a query waits for a free connection before it fails (5)",
    )
    group.add_argument(
        "--hub-id", metavar="NAME", help="this hub's name in the rows it writes, one per hub (default: the host name)"
    )


def _identities(flag: str, text: str) -> tuple[str, ...]:
    """A comma-separated list of unit names, each checked, in order, without repeats."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise UsageError(f"{flag}: give at least one name")
    try:
        for name in names:
            check_identity(name)
    except CapabilityError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    return names


def _add_mqtt_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("MQTT bridge, off without --mqtt-url (docs/home-assistant.md)")
    group.add_argument("--mqtt-url", metavar="URL", help="the broker: mqtt://host[:port] or mqtts://host[:port]")
    group.add_argument("--mqtt-username", metavar="NAME", help="the user the bridge logs in as")
    group.add_argument("--mqtt-password-file", type=Path, metavar="PATH", help="a file holding its password (-: stdin)")
    group.add_argument("--mqtt-client-id", metavar="ID", help="the bridge's client id (default intercom-hub)")
    group.add_argument(
        "--mqtt-topic-prefix", metavar="PREFIX", help="events go to PREFIX/<unit>/event (default intercom)"
    )
    group.add_argument("--mqtt-discovery-prefix", metavar="PREFIX", help="Home Assistant's (default homeassistant)")
    group.add_argument("--mqtt-ca-file", type=Path, metavar="PATH", help="mqtts: the CA of the broker's certificate")
    group.add_argument(
        "--mqtt-pinned-cert", type=Path, metavar="PATH", help="mqtts: the broker's own certificate, pinned"
    )
    group.add_argument(
        "--mqtt-queue-size",
        type=positive(int),
        metavar="N",
        help="messages kept while the broker is away (default 1000)",
    )
    group.add_argument(
        "--mqtt-open-door",
        action="store_true",
        help="offer Home Assistant an Open door button; a door opens for it only if its own "
        "INTERCOM_UNLOCK_FROM names source:home_assistant",
    )
    add_limit_flags(parser, "Home Assistant's Open door (with --mqtt-open-door)", MQTT_OPEN)


def _mqtt(args: argparse.Namespace) -> MqttSettings | None:
    """The bridge's settings from the --mqtt-* flags; ``None`` (off) without --mqtt-url."""
    from .hub.mqtt.settings import MqttSettings

    if args.mqtt_url is None:
        if args.mqtt_open_door:
            raise UsageError("--mqtt-open-door needs --mqtt-url")
        return None
    password = secret_from_file("--mqtt-password-file", args.mqtt_password_file) if args.mqtt_password_file else None
    given = {
        "username": args.mqtt_username,
        "password": password,
        "client_id": args.mqtt_client_id,
        "topic_prefix": args.mqtt_topic_prefix,
        "discovery_prefix": args.mqtt_discovery_prefix,
        "ca_file": args.mqtt_ca_file,
        "pinned_cert": args.mqtt_pinned_cert,
        "queue_size": args.mqtt_queue_size,
    }
    try:
        return MqttSettings.from_url(
            args.mqtt_url, **{name: value for name, value in given.items() if value is not None}
        )
    except ValueError as error:
        raise UsageError(f"--mqtt-url: {error}") from None


def _outbound(args: argparse.Namespace) -> OutboundPolicy:
    for option, value, least in (
        ("--max-redirects", args.max_redirects, 0),
        ("--max-flow-bytes", args.max_flow_bytes, 1024),
        ("--max-media-bytes", args.max_media_bytes, 1024),
    ):
        if value < least:
            raise UsageError(f"{option} must be {least} or more")
    return OutboundPolicy(
        allow_loopback=args.allow_loopback_requests,
        max_redirects=args.max_redirects,
        max_flow_bytes=args.max_flow_bytes,
        max_media_bytes=args.max_media_bytes,
    )


def _origin(text: str) -> str:
    """An origin as browsers send it: ``scheme://host[:port]``, nothing after."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
        raise UsageError(f"--allow-origin {text}: give an origin such as https://desk.local:8443")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _keys_create(args: argparse.Namespace) -> None:
    scope = key_scope(args.admin, args.identity, args.incoming, args.outgoing)
    key = stored(args, lambda storage: storage.create_key(args.name, scope))
    print(json.dumps({"id": key.id, "key": key.secret, "scope": key.scope.as_dict() if key.scope else None}))


def key_scope(admin: bool, identities: list[str], incoming: bool, outgoing: list[str]) -> KeyScope:
    """The scope the ``keys create`` options ask for: an admin key, or a unit's."""
    if admin:
        if identities or incoming or outgoing:
            raise UsageError("--admin may do anything already: give it alone, or a unit key's --identity")
        return ADMIN
    if not identities:
        raise UsageError("give --admin, or --identity (with --incoming, --outgoing CALLFLOW_ID) for a unit's key")
    try:
        for identity in identities:
            check_identity(identity)
    except CapabilityError as exc:
        raise UsageError(str(exc)) from None
    if not incoming and not outgoing:
        raise UsageError("a unit key needs --incoming, --outgoing CALLFLOW_ID, or both")
    return KeyScope(identities=tuple(dict.fromkeys(identities)), incoming=incoming, outgoing_flows=tuple(outgoing))


def _keys_list(args: argparse.Namespace) -> None:
    for key in stored(args, lambda storage: storage.list_keys()):
        shown: dict[str, object] = {
            "id": key.id,
            "name": key.name,
            "createdAt": key.created_at,
            "revokedAt": key.revoked_at,
            "scope": key.scope.as_dict() if key.scope else None,
            "access": str(key.scope) if key.scope else f"legacy (unscoped): {SPLIT_HINT.format(id=key.id)}",
        }
        print(json.dumps(shown))


def _keys_revoke(args: argparse.Namespace) -> None:
    if not stored(args, lambda storage: storage.revoke_key(args.id)):
        raise UsageError(f"no active key with id {args.id!r}")
    print(json.dumps({"id": args.id, "revoked": True}))


def _units_add(args: argparse.Namespace) -> None:
    from .appliance.embedded_hub import serves_plain
    from .appliance.enrolment import HubSide, add_unit, embedded_hub_settings
    from .appliance.settings import DEFAULT_ENV_FILE, SettingsError
    from .auth.certificates import loopback_only

    before_tls = False
    if (data_dir := own_hub_data_dir(args, "wss://host:port")) is not None:
        desks = tuple(name.strip() for name in args.desks.split(",") if name.strip())
        hub = HubSide(data_dir, args.hub_url, args.cert, desks)
    else:
        try:
            settings = embedded_hub_settings(args.env_file or DEFAULT_ENV_FILE)
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        if settings.hub_tls == "off":
            raise UsageError("the hub serves plain ws (INTERCOM_HUB_TLS=off): set INTERCOM_HUB_TLS=auto first")
        if loopback_only(settings.hub_listen) and settings.hub_tls != "on":
            raise UsageError(
                f"INTERCOM_HUB_LISTEN={settings.hub_listen}: the hub is reachable from this machine only; "
                "listen on 0.0.0.0 or this unit's address first"
            )
        hub = HubSide.of_embedded(settings, args.hub_url)
        before_tls = serves_plain(settings)  # an older install: its certificate is made now

    def create_key(name: str, scope: KeyScope) -> AccessKey:
        return stored(args, lambda storage: storage.create_key(name, scope), hub.data_dir)

    try:
        lines = add_unit(hub, args.role, args.identity, args.call_flow, create_key)
    except (ValueError, OSError) as exc:  # InvalidIdentity, a bad URL, an unusable data directory
        raise UsageError(str(exc)) from None
    print("\n".join(lines))
    if before_tls:
        print(
            "intercom units add: this hub still serves plain ws://; it serves wss:// with the certificate just made "
            "from its next start (sudo systemctl restart intercom), after which units on ws:// need these lines too",
            file=sys.stderr,
        )


def _callflows_create(args: argparse.Namespace) -> None:
    from .hub.callflows import CallFlow, CallFlowError

    try:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
    except OSError as exc:
        raise UsageError(f"{args.file}: {exc.strerror}") from None
    try:
        parsed = CallFlow.from_json(text)
        flow = stored(args, lambda storage: storage.create_call_flow(parsed))
    except CallFlowError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    print(flow.id)
    for problem in flow.ignored():  # stored all the same: what the Voice API answers as warnings
        print(f"{args.file}: warning: {problem.parameter}: {problem.message}", file=sys.stderr)


def _callflows_list(args: argparse.Namespace) -> None:
    for flow in stored(args, lambda storage: storage.list_call_flows()):
        print(flow.to_json())


def _callflows_show(args: argparse.Namespace) -> None:
    flow = stored(args, lambda storage: storage.get_call_flow(args.id))
    if flow is None:
        raise UsageError(f"no call flow with id {args.id!r}")
    print(flow.to_json())


def _callflows_delete(args: argparse.Namespace) -> None:
    if not stored(args, lambda storage: storage.delete_call_flow(args.id)):
        raise UsageError(f"no call flow with id {args.id!r}")
    print(json.dumps({"id": args.id, "deleted": True}))


def _calls_list(args: argparse.Namespace) -> None:
    from .hub.call_log_text import call_list

    if args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    print("\n".join(stored(args, lambda storage: call_list(storage, args.limit))))


def _calls_show(args: argparse.Namespace) -> None:
    from .hub.call_log_text import call_detail

    lines = stored(args, lambda storage: call_detail(storage, args.id))
    if lines is None:
        raise UsageError(f"no call with id {args.id!r}")
    print("\n".join(lines))


# -- the data directory's limits: `intercom hub` flags, shown by `intercom storage` -----------------


def _storage_limits(args: argparse.Namespace) -> StorageLimits:
    from .hub.retention import StorageLimits

    return StorageLimits.of(**limits_given(args, STORAGE_LIMITS))


def _storage(args: argparse.Namespace) -> None:
    from .hub.storage import DATABASE_NAME
    from .hub.storage_report import storage_report

    limits = _storage_limits(args)  # checked before anything connects
    if args.database is not None:
        if not args.data_dir.is_dir():  # not made here: it is the directory every hub mounts
            raise UsageError(f"--data-dir {args.data_dir}: no such directory (the hubs' recordings directory)")
    elif not (args.data_dir / DATABASE_NAME).is_file():
        raise UsageError(f"--data-dir {args.data_dir}: no hub database there")
    postgresql = args.database is not None
    print("\n".join(stored(args, lambda storage: storage_report(storage, limits, postgresql))))


def _unlocks_list(args: argparse.Namespace) -> None:
    from .appliance.settings import DEFAULT_ENV_FILE, SettingsError, load_settings
    from .appliance.unlock_store import STORE_NAME, StateDirError, UnlockStore
    from .hub.call_log_text import clock

    if args.limit < 1:
        raise UsageError("--limit must be 1 or more")
    try:
        settings, _ = load_settings(args.env_file or DEFAULT_ENV_FILE)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    if not (settings.state_dir / STORE_NAME).is_file():  # not made here: it belongs to the service's user
        print(f"no unlock log in {settings.state_dir} (INTERCOM_STATE_DIR): this door has not started yet")
        return
    try:
        store = UnlockStore.open(settings.state_dir)
    except StateDirError as exc:
        raise UsageError(str(exc)) from None
    try:
        entries = store.latest(args.limit)
    finally:
        store.close()
    if not entries:
        print("nothing in the unlock log yet")
    for entry in entries:
        who = entry.who or "(nobody asserted: the hub's own call)"
        call = f"  call {entry.call_id}" if entry.call_id else ""
        detail = f"  ({entry.detail})" if entry.detail else ""
        print(f"{clock(entry.at)}  {entry.verdict:<8}  {entry.source:<6}  {who}{call}{detail}")


def _token(args: argparse.Namespace) -> None:
    try:
        capabilities = token_capabilities(args.identity, args.outgoing, args.variables, args.incoming)
    except ValueError as exc:  # CapabilityError, or malformed --variables
        raise UsageError(str(exc)) from None
    if not 0 < args.ttl <= 86400:
        raise UsageError("--ttl must be 1 to 86400 seconds")
    key_id, secret = _token_key(args)
    key = AccessKey(key_id, secret, name="", created_at=time.time())
    print(mint_token(key, capabilities, ttl=args.ttl))


def _token_key(args: argparse.Namespace) -> tuple[str, str]:
    """The access key's id and secret: from a unit's env file, a file, standard input or a prompt."""
    if args.key is not None and args.key != "-":
        raise UsageError(on_the_command_line("--key SECRET", "--key - (standard input), --key-file or --env-file"))
    if args.env_file is not None:
        from .appliance.settings import SettingsError, access_key_of

        try:
            key_id, secret = access_key_of(args.env_file)
        except SettingsError as exc:
            raise UsageError(str(exc)) from None
        if args.key_id is not None:
            raise UsageError(f"--env-file {args.env_file} gives the key's id too: leave out --key-id")
        return key_id, secret
    if args.key_id is None:
        raise UsageError("give --key-id, or --env-file of a unit")
    if args.key_file is not None:
        return args.key_id, secret_from_file("--key-file", args.key_file)
    if args.key is None and sys.stdin.isatty():
        import getpass

        secret = getpass.getpass(f"secret of access key {args.key_id}: ").strip()
        if not secret:
            raise UsageError("no secret given")
        return args.key_id, secret
    return args.key_id, secret_from_file("--key", Path("-"))


def token_capabilities(
    identity: str | None, outgoing: str | None, variables: str, incoming: bool
) -> list[OutgoingCapability | IncomingCapability]:
    """The capabilities the ``token`` options ask for, checked as the hub will check them."""
    if identity is not None:
        check_identity(identity)
    if incoming and identity is None:
        raise CapabilityError("--incoming needs --identity")
    if not incoming and outgoing is None:
        raise CapabilityError("give --outgoing CALLFLOW_ID, --incoming, or both")
    capabilities: list[OutgoingCapability | IncomingCapability] = []
    if outgoing is not None:
        pairs = parse_qsl(variables, keep_blank_values=True, strict_parsing=bool(variables))
        capabilities.append(OutgoingCapability(outgoing, identity, dict(pairs)))
    if incoming:
        assert identity is not None
        capabilities.append(IncomingCapability(identity))
    return capabilities


def _appliance(args: argparse.Namespace) -> int:
    import asyncio

    from .appliance.service import run_appliance
    from .appliance.settings import DEFAULT_ENV_FILE, SettingsError

    os.umask(0o077)  # as the service's UMask=: the embedded hub's files and the unlock log are the unit's alone
    try:
        return asyncio.run(run_appliance(args.env_file or DEFAULT_ENV_FILE, wait_for_settings=args.wait_for_settings))
    except SettingsError as exc:  # the embedded hub's HubStartError too
        raise UsageError(str(exc)) from None


def _simulate(args: argparse.Namespace) -> None:
    import asyncio

    from .appliance.settings import SettingsError, load_settings

    try:
        from .appliance.simulator import run_simulator, tone_audio
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "textual":
            raise
        raise UsageError("the simulator needs textual: pip install 'intercom[simulator]'") from None
    try:
        settings, audio = load_settings(args.env_file, role=args.role)
        asyncio.run(run_simulator(settings, tone_audio(args.role) if args.tone else audio))
    except SettingsError as exc:  # the embedded hub's HubStartError too
        raise UsageError(str(exc)) from None


def _config_check(args: argparse.Namespace) -> None:
    from .appliance.settings import DEFAULT_ENV_FILE, SettingsError, load_settings, shown
    from .auth.certificates import loopback_only

    env_file = args.env_file or DEFAULT_ENV_FILE
    try:
        settings, audio = load_settings(env_file)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    print(f"# {env_file}: valid")
    for name, value in {**shown(settings), **shown(audio)}.items():
        print(f"{name}={value}")
    warning = settings.plain_hub_warning()
    if settings.hub_embedded:
        from .appliance.embedded_hub import plain_warning, serves_plain

        if serves_plain(settings) and not loopback_only(settings.hub_listen):
            warning = plain_warning(settings, settings.hub_port)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)


def _config_new_key(args: argparse.Namespace) -> None:
    """Both units' env files take these lines; the embedded hub adopts the key when it starts."""
    from .auth.keys import new_key_id, new_key_secret

    print(f"INTERCOM_ACCESS_KEY_ID={new_key_id()}")
    print(f"INTERCOM_ACCESS_KEY={new_key_secret()}")


def _devices(args: argparse.Namespace) -> None:
    from .audio.devices import list_devices, media_sources

    found = list_devices()
    if args.json:
        print(json.dumps(media_sources(found), indent=2))
        return
    if not found:
        print("no sound devices (is the USB sound card plugged in?)")
    for device in found:
        direction = "in " if device.kind == "audioinput" else "out"
        print(
            f"{direction} {device.deviceId}  {device.label}"
            f"  [index {device.index}, {device.channels} ch, {device.default_samplerate:.0f} Hz]"
        )


def _audio_test(args: argparse.Namespace) -> int:
    from .audio.audio_test import run_audio_test
    from .audio.devices import UnknownDevice

    if args.echo:
        if args.seconds is not None:
            raise UsageError("--seconds does not go with --echo: the echo test takes its own time")
        return _echo_test(args)
    if args.env_file is not None:
        raise UsageError("--env-file goes with --echo only")
    seconds = 3.0 if args.seconds is None else args.seconds
    if not 0 < seconds <= 60:
        raise UsageError("--seconds must be more than 0 and at most 60")
    try:
        run_audio_test(seconds, args.microphone or args.device, args.speaker or args.device)
    except (UnknownDevice, ValueError) as exc:  # sounddevice says ValueError for "no such device"
        raise UsageError(str(exc)) from None
    return 0


def _echo_test(args: argparse.Namespace) -> int:
    import sounddevice as sd

    from .appliance.settings import DEFAULT_ENV_FILE, SettingsError, load_audio_settings
    from .audio.devices import UnknownDevice
    from .audio.echo_test import run_echo_test

    env_file = args.env_file or (DEFAULT_ENV_FILE if DEFAULT_ENV_FILE.exists() else None)
    try:
        audio = load_audio_settings(env_file)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    microphone = args.microphone or args.device or audio.microphone
    speaker = args.speaker or args.device or audio.speaker
    try:
        result = run_echo_test(microphone, speaker, audio.microphone_gain, audio.speaker_gain, audio.echo_cancellation)
    except (UnknownDevice, ValueError) as exc:  # sounddevice says ValueError for "no such device"
        raise UsageError(str(exc)) from None
    except (sd.PortAudioError, TimeoutError) as exc:
        hint = "is there a sound card (`intercom devices`), or does the unit hold it (sudo systemctl stop intercom)?"
        raise UsageError(f"{exc}: {hint}") from None
    return 0 if result.good else 1


def _demo(args: argparse.Namespace) -> None:
    import asyncio

    from .demo import run_demo

    asyncio.run(run_demo(args.data_dir))


if __name__ == "__main__":
    sys.exit(main())
