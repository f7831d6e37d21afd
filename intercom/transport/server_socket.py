"""The server side: uvicorn's WebSocket protocol with the SIP endpoint served in place.

uvicorn hands every WebSocket to the ASGI app through a queue and a task: each SIP message
then costs a task switch, a pause and resume of the socket's reads and a round through
Starlette, which together took as long as the hub's whole REGISTER handling
(bench/register.py). So the SIP endpoint at ``/`` skips ASGI: the frame is fed to its
:class:`SipConnection` as soon as ``websockets`` has decoded it, and the answer is written
before ``data_received`` returns. Everything else (the HTTP API, other WebSocket paths) still
goes to the ASGI app, and uvicorn keeps doing the handshake checks, keepalive pings, the
closing handshake and graceful shutdown.

A browser sends ``Origin`` with every WebSocket, and lets any page it shows open one: so a page
on the hub's own origin, or on one the hub allows, may talk SIP here, and no other. Our Python
units send no ``Origin`` (no browser, no page to trick) and are let in.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol
from urllib.parse import urlsplit

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request as HandshakeRequest
from websockets.http11 import Response as HandshakeResponse

from .connection import FrameWriter, SipConnection
from .limits import ConnectionGate, MessageRate

log = logging.getLogger(__name__)

SIP_PATH = "/"
SUBPROTOCOL = "sip"
RATE_CLOSE_CODE = 1013  # "Try Again Later" (RFC 6455 registry)


class SipEndpoint(Protocol):
    """Who receives the SIP connections: the hub's SIP service."""

    def open(self, writer: FrameWriter, peer: str) -> SipConnection: ...

    def lost(self, connection: SipConnection) -> None: ...


class SipWebSocketProtocol(WebSocketsSansIOProtocol):
    """One WebSocket; SIP at ``/`` handled here, anything else passed on to the ASGI app.

    uvicorn builds it per upgrade with keyword arguments only; bind ``endpoint`` (and
    ``allowed_origins``, the pages besides the hub's own that may connect, and ``gate``, the
    connection limits) with :func:`functools.partial` and pass that as uvicorn's ``ws`` setting.
    """

    def __init__(
        self,
        *args: Any,
        endpoint: SipEndpoint,
        allowed_origins: tuple[str, ...] = (),
        gate: ConnectionGate | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.endpoint = endpoint
        self.allowed_origins = frozenset(_normalised(origin) for origin in allowed_origins)
        self.gate = gate
        self.sip: SipConnection | None = None
        self.rate: MessageRate | None = None

    def handle_connect(self, event: HandshakeRequest) -> None:
        if self.gate is not None:
            self.gate.handshake_done(self.client)
        if event.path.partition("?")[0] != SIP_PATH:
            super().handle_connect(event)
            return
        self.request = event
        self.handshake_initiated = True
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        offered = [
            token.strip() for header in event.headers.get_all("Sec-WebSocket-Protocol") for token in header.split(",")
        ]
        if SUBPROTOCOL not in offered:
            log.info("refused a WebSocket without subprotocol 'sip' from %s", peer)
            self._refuse(self.conn.reject(403, "subprotocol 'sip' required\n"))
            return
        origin = event.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, event.headers.get("Host") or ""):
            log.warning("refused a SIP WebSocket from %s: Origin %r is not allowed", peer, origin[:200])
            self._refuse(self.conn.reject(403, "Origin not allowed\n"))
            return
        response = self.conn.accept(event)
        if response.status_code != 101:  # not a valid WebSocket handshake
            self._refuse(response)
            return
        del response.headers["Date"]
        response.headers.update(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in self.default_headers
        )
        response.headers["Sec-WebSocket-Protocol"] = SUBPROTOCOL
        self.handshake_complete = True
        self.conn.send_response(response)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.start_keepalive()
        if self.gate is not None:
            limits = self.gate.limits
            self.rate = MessageRate(limits.sip_messages_per_second, limits.sip_message_burst, self.loop.time())
        self.sip = self.endpoint.open(self, peer)

    def _origin_allowed(self, origin: str, host: str) -> bool:
        """The hub's own origin (the scheme and the Host this request came to), or an allowed one."""
        own = f"{'https' if self.scheme == 'wss' else 'http'}://{host}"
        return _normalised(origin) in (_normalised(own), *self.allowed_origins)

    def _refuse(self, response: HandshakeResponse) -> None:
        self.handshake_complete = self.close_sent = True
        self.conn.send_response(response)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    def send_receive_event_to_app(self) -> None:
        if self.sip is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        if self.rate is not None and not self.rate.allow(self.loop.time()):
            self._too_fast()
            return
        self.sip.receive(data)

    def _too_fast(self) -> None:
        """Over the message rate: closed at once, without waiting for the client's side of the closing
        handshake (a flooder would go on sending meanwhile, each frame decoded to be dropped), so
        that a flood costs the hub its burst and no more; it may connect again (within the limits)."""
        assert self.gate is not None and self.rate is not None
        peer = self.client[0] if self.client else "?"
        self.gate.log.refuse(
            "sip_message_rate",
            "closed the SIP connection of %s: over %g messages/s (setting sip_messages_per_second)",
            peer,
            self.rate.per_second,
        )
        self.close(RATE_CLOSE_CODE, f"more than {self.rate.per_second:g} SIP messages/s")
        self.transport.close()  # the close frame still goes out first

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.sip is not None:
            self.endpoint.lost(self.sip)

    # FrameWriter, for the SipConnection

    def send_text(self, text: str) -> None:
        if self.close_sent or self.disconnected:
            return
        self.conn.send_text(text.encode())
        self.transport.write(b"".join(self.conn.data_to_send()))

    def close(self, code: int, reason: str) -> None:
        if self.close_sent or self.disconnected:
            return
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normalised(origin: str) -> str:
    """``scheme://host:port`` in lower case with the port always written, so that
    ``https://Desk.local`` and ``https://desk.local:443`` compare equal; anything unreadable
    (``null``, a sandboxed page's) stays as it is and matches only itself."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return origin
    if not parts.hostname or port is None:
        return origin
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host}:{port}"
