"""The hub's limits as flags of ``intercom hub``: one table, one way to read a number.

Kept apart from :mod:`intercom.cli` and free of the hub's imports, so that ``intercom --help``
stays quick: a flag left out is absent from the result, and the hub's own default applies
(``HubConfig``'s fields, and ``StorageLimits.of``'s for the data directory's limits).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str  # the HubConfig field (or StorageLimits.of argument) it sets; the flag is --name-with-dashes
    kind: type[int] | type[float]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


CONNECTION_LIMITS = (  # intercom.transport.limits; docs/connections.md
    Limit("max_connections", int, "connections open at once, in all"),
    Limit("max_connections_per_source", int, "connections open at once from one address"),
    Limit("handshake_timeout", float, "seconds from accept to a complete request head (TLS and upgrade included)"),
    Limit("register_timeout", float, "seconds a SIP connection may stay without a valid REGISTER"),
    Limit("sip_messages_per_second", float, "SIP messages per second per connection, on average, then closed"),
    Limit("sip_message_burst", int, "SIP messages per connection at once, within that average"),
)
CALL_LIMITS = (  # intercom.hub.call_limits; docs/call-limits.md argues each default
    Limit("max_calls", int, "calls the hub carries at once; one more gets 503 (default 20)"),
    Limit("max_calls_per_identity", int, "calls one client may make, be rung in or talk in at once; 486 (default 4)"),
    Limit("max_call_duration", float, "seconds after which the hub hangs a call up (default 3600)"),
    Limit("media_timeout", float, "seconds without audio from an answered leg that end its call (default 30)"),
    Limit("max_ring_legs", int, "devices one transfer rings at once (default 20)"),
)
DURABILITY = (  # docs/storage.md, "Crashes and power cuts"
    Limit(
        "recording_sync_seconds",
        float,
        "flush recordings to the card every N seconds of audio: the most a power cut loses of one (default 2)",
    ),
    Limit(
        "heartbeat_seconds",
        float,
        "while calls run, note every N seconds that the hub is alive: a call a crash leaves open ends at that "
        "time (default 10)",
    ),
)
PAIRING = (  # intercom.hub.desk_api; docs/web-desk.md, "Pairing"
    Limit("desk_token_seconds", int, "lifetime of a paired phone's tokens; its page refreshes them (default 600)"),
    Limit("pairing_max_bad_codes", int, "bad pairing codes one address may send in the window, then 429 (default 5)"),
    Limit("pairing_bad_code_window", float, "seconds bad pairing codes are counted over (default 600)"),
)
MQTT_OPEN = (  # intercom.hub.mqtt.commands; docs/home-assistant.md, "Opening the door"
    Limit("mqtt_open_min_interval", float, "seconds between two Open door commands to one door (default 2)"),
    Limit("mqtt_open_timeout", float, "seconds the hub waits for the door's answer to one (default 5)"),
)
STORAGE_LIMITS = (  # intercom.hub.retention.StorageLimits.of; the unit's INTERCOM_HUB_* have the same names
    Limit("recordings_quota_mb", int, "recordings may use this many MB in all; the oldest go first"),
    Limit("recording_max_seconds", float, "one recording stops at this length (the call goes on)"),
    Limit("min_free_mb", int, "no recording starts, and running ones stop, with less free space than this"),
    Limit("calls_max_age_days", float, "calls older than this leave the call log, with their recordings"),
    Limit("calls_max_rows", int, "the call log keeps at most this many calls, the newest"),
    Limit("deliveries_max_age_days", float, "webhook deliveries older than this are forgotten"),
    Limit("deliveries_max_rows", int, "at most this many webhook deliveries are kept, the newest"),
)


def add_limit_flags(parser: argparse.ArgumentParser, title: str, limits: tuple[Limit, ...]) -> None:
    group = parser.add_argument_group(title)
    for limit in limits:
        group.add_argument(limit.flag, type=positive(limit.kind), metavar="N", help=limit.help)


def limits_given(args: argparse.Namespace, limits: tuple[Limit, ...]) -> dict[str, float]:
    """The limits given on the command line, by name; the others left to the hub's defaults."""
    return {limit.name: value for limit in limits if (value := getattr(args, limit.name)) is not None}


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a whole number (or a number) above 0; ``nan`` and infinity refused."""
    wanted = "a whole number" if kind is int else "a number"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text}: give {wanted} above 0")
        return value

    parse.__name__ = kind.__name__
    return parse
