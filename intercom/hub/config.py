"""Hub settings, given on the command line or built by an embedding unit."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..media import MediaPolicy

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

    @property
    def secure(self) -> bool:
        return self.cert_file is not None
