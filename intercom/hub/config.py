"""Hub settings, given on the command line or built by an embedding unit."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..auth import TurnCredentials, turn_credentials
from ..media import IceServer, MediaPolicy
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
    limits: StorageLimits = field(default_factory=lambda: StorageLimits())  # what the data directory may hold

    @property
    def secure(self) -> bool:
        return self.cert_file is not None

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
