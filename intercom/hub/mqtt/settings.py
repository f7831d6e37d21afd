"""Where the broker is and how to reach it: parsed once from ``INTERCOM_MQTT_URL`` and friends."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a repr, so never in a log line
    client_id: str = "intercom-hub"
    topic_prefix: str = "intercom"
    discovery_prefix: str = "homeassistant"  # Home Assistant's default
    ca_file: Path | None = None  # mqtts: the CA that issued the broker's certificate (else the system's)
    pinned_cert: Path | None = None  # mqtts: the broker's own certificate, trusted alone
    queue_size: int = 1000  # messages held while the broker is away; the oldest go first when full
    reconnect_min: float = 1.0  # seconds before the first retry; doubled each failure ...
    reconnect_max: float = 60.0  # ... up to this
    keepalive: int = 30

    @classmethod
    def from_url(cls, url: str, **options: object) -> MqttSettings:
        """``mqtt://host[:port]`` or ``mqtts://host[:port]``; user and password are not taken from
        the URL (it may be logged or shown): they come from the env file."""
        parts = urlsplit(url)
        if parts.username or parts.password:  # checked first: the URL is not echoed then
            raise ValueError("MQTT URL must not hold a user or password: set INTERCOM_MQTT_USERNAME/_PASSWORD")
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"MQTT URL must be mqtt://host[:port] or mqtts://host[:port], not {url!r}")
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        return cls(host=parts.hostname, port=port, tls=parts.scheme == "mqtts", **options)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context of an mqtts URL: the system's CAs, a given CA, or one pinned certificate."""
        if not self.tls:
            return None
        if self.pinned_cert is not None:
            context = ssl.create_default_context(cafile=str(self.pinned_cert))
            # The pinned certificate is the whole trust: it need not be a CA, and it names the broker.
            context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            context.check_hostname = False
            return context
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
