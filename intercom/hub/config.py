"""Hub settings, given on the command line or built by an embedding unit."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..auth import TurnCredentials, turn_credentials
from ..http_client import OutboundPolicy
from ..media import IceServer, MediaPolicy
from ..transport.addresses import normalised_host, split_host_port
from ..transport.limits import ConnectionLimits
from ..web import DIST
from .mqtt.settings import MqttSettings
from .retention import StorageLimits

# The hub forwards audio and leaves buffering to the endpoints (DESIGN.md, performance facts).
HUB_MEDIA = MediaPolicy(jitter_frames=0)


@dataclass
class HubConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8443
    cert_file: Path | None = None
    key_file: Path | None = None
    zone: str = "local"
    turn_urls: list[str] = field(default_factory=list)
    turn_secret: str | None = None
    min_expires: int = 10
    max_expires: int = 3600
    media: MediaPolicy = HUB_MEDIA
    metrics_token: str | None = None  # lets a scraper read /metrics without an admin key
    allowed_origins: tuple[str, ...] = ()  # browser pages that may open the SIP WebSocket, beside the hub's own
    # Connection limits (intercom.transport.limits): a home has a few units, a stranger may have many sockets.
    # (the defaults are ConnectionLimits' own)
    max_connections: int = ConnectionLimits.max_connections  # lowered at start to what the descriptors allow
    max_connections_per_source: int = ConnectionLimits.max_connections_per_source
    handshake_timeout: float = ConnectionLimits.handshake_timeout  # accept -> TLS -> complete request head
    register_timeout: float = 20.0  # a SIP connection with no valid REGISTER (and no call) is closed
    sip_messages_per_second: float = ConnectionLimits.sip_messages_per_second  # per connection, on average ...
    sip_message_burst: int = ConnectionLimits.sip_message_burst  # ... and at once
    descriptor_reserve: int = 256  # descriptors kept beyond max_connections (database, recordings, media)
    # where fetchCallFlow, play, onFinish and webhooks may connect, and how much of an answer they take
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    # Calls (issue 16; docs/call-limits.md argues the defaults): how many at once, how long, how quiet.
    max_calls: int = 20  # calls at once in the whole hub; one more gets 503 with Retry-After
    max_calls_per_identity: int = 4  # calls one client makes or is rung or talks in at once; one more: 486
    max_call_duration: float = 3600.0  # seconds from a call's start to the hub hanging it up
    media_timeout: float = 30.0  # seconds an answered leg may send no RTP before the hub ends the call
    max_ring_legs: int = 20  # devices one transfer rings at once (every device of every identity listed)
    storage_limits: StorageLimits = field(default_factory=StorageLimits)  # what the data directory may hold
    # Power cuts (docs/storage.md): a recording is flushed to the card every this many seconds of
    # audio, so a cut loses at most that much of it; while calls run, the hub notes in the database
    # that it is alive this often, and a call a cut left open ends then.
    recording_sync_seconds: float = 2.0
    heartbeat_seconds: float = 10.0
    desk_dir: Path = DIST / "desk"  # the built web desk served at /desk/ (intercom.hub.desk_pages)
    # Paired phones (intercom.hub.desk_api, docs/web-desk.md "Pairing"): their tokens' lifetime (the
    # page refreshes them), and how many bad pairing codes one source may send in the window before 429.
    desk_token_seconds: int = 600
    pairing_max_bad_codes: int = 5
    pairing_bad_code_window: float = 600.0
    doors: tuple[str, ...] = ("door",)  # the doors a desk page shows (INTERCOM_HUB_DOORS when embedded)
    mqtt: MqttSettings | None = None  # the MQTT bridge (intercom.hub.mqtt, docs/home-assistant.md); off when None
    # Home Assistant's Open door (docs/home-assistant.md): off unless set; at most one command per
    # door this often; how long the hub waits for the door's answer.
    mqtt_open_door: bool = False
    mqtt_open_min_interval: float = 2.0
    mqtt_open_timeout: float = 5.0
    # Behind SIP proxies (docs/proxy.md): SIP over TCP on HOST:PORT (off when None), from these
    # proxies' IP addresses only (--sip-proxy-listen, --sip-proxy).
    sip_proxy_listen: str | None = None
    sip_proxies: tuple[str, ...] = ()
    # Several hubs on one database (docs/storage.md, "Several hubs: PostgreSQL"): None is SQLite in
    # data_dir; else postgresql://user@host[:port]/db, its password (never in the URL: read from
    # --database-password-file, or libpq's PGPASSFILE); this hub's connections at most; and its name in
    # the rows it writes (default: the machine's), which must differ between hubs and stay the same
    # across a hub's restarts (a restarted hub ends the calls it left open, not another's).
    database: str | None = None
    database_password: str | None = None
    database_pool_size: int = 10
    database_pool_timeout: float = 5.0  # seconds a query waits for a free connection before it fails
    hub_id: str | None = None

    @property
    def secure(self) -> bool:
        return self.cert_file is not None

    def connection_limits(self) -> ConnectionLimits:
        """The fields of the same names, for the connection gate."""
        return ConnectionLimits(**{limit.name: getattr(self, limit.name) for limit in fields(ConnectionLimits)})

    def sip_proxy_listener(self) -> tuple[str, int, frozenset[str]] | None:
        """The SIP/TCP listener's host, port and the proxies it admits; ``None`` when off. Raises
        :class:`ValueError` naming the setting when one is unreadable or the proxies are missing."""
        if self.sip_proxy_listen is None:
            return None
        try:
            host, port = split_host_port(self.sip_proxy_listen)
        except ValueError as exc:
            raise ValueError(f"sip_proxy_listen: {exc}") from None
        try:
            proxies = frozenset(normalised_host(address) for address in self.sip_proxies)
        except ValueError as exc:
            raise ValueError(f"sip_proxies: {exc} (an IP address)") from None
        if not proxies:
            raise ValueError("sip_proxy_listen needs the SIP proxies that may connect (sip_proxies)")
        return host, port, proxies

    def turn_for(self, identity: str, now: float | None = None) -> TurnCredentials | None:
        """Time-limited TURN credentials for ``identity``, or ``None`` when no TURN is configured."""
        if not (self.turn_urls and self.turn_secret):
            return None
        return turn_credentials(self.turn_secret, identity, now=now)

    def leg_media(self) -> MediaPolicy:
        """The media policy of the hub's own call legs: the configured one, plus the same TURN
        servers the registrar hands to clients, with credentials of the hub's own."""
        credentials = self.turn_for("hub")
        if credentials is None:
            return self.media
        turn = IceServer(tuple(self.turn_urls), credentials.username, credentials.password)
        return replace(self.media, ice_servers=(*self.media.ice_servers, turn))
