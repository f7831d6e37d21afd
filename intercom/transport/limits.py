"""Bounds on the hub's connections: how many in all and per source address, how long a new one may
take to finish its handshake, and how fast a SIP connection may send.

Idle strangers must not use up the descriptors a door needs to register. So a connection is
counted, and refused, where it is cheapest: at ``accept()``, before TLS and before a byte of HTTP.
The listening socket is a :class:`GatedSocket`, whose ``accept()`` asyncio calls; a refused
connection is closed there and then (on a plain listener after a one-line ``503``; with TLS
nothing can be said before the handshake, so the client sees the connection closed). The count
drops when asyncio closes the accepted socket, whatever protocol (TLS, HTTP, WebSocket) it held.

The handshake deadline runs from ``accept()`` until the request head is complete (the WebSocket
upgrade, or an HTTP request reaching the app): a client that trickles a header line every few
seconds is cut there. Neither asyncio (TLS only, 60 s) nor uvicorn and h11 (keep-alive only
*after* a response) bound that time. Cut means ``shutdown()`` on the socket: the transport
above reads the end of the stream and closes as if the client had left.

Every refusal is counted by reason (``refused``, shown by ``/metrics``) and logged at most once
per :data:`LOG_EVERY` seconds and reason, so that a flood does not flood the journal too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

LOG_EVERY = 10.0  # seconds between two log lines about the same limit
REFUSALS_PER_ACCEPT = 64  # then asyncio's other work gets a turn before the next ones
REFUSED_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
)


@dataclass(frozen=True)
class ConnectionLimits:
    """The numbers; the hub builds them from its :class:`~intercom.hub.HubConfig`, whose fields
    of the same names the log lines name."""

    max_connections: int = 1024
    max_connections_per_source: int = 32
    handshake_timeout: float = 10.0
    sip_messages_per_second: float = 50.0
    sip_message_burst: int = 50

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"{name} must be above 0, not {value!r}")


class RefusalLog:
    """Counts refusals by reason and logs each reason at most every :data:`LOG_EVERY` seconds,
    with how many were refused since its last line."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.refused: Counter[str] = Counter()
        self._clock = clock
        self._logged_at: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()

    def refuse(self, reason: str, message: str, *args: object) -> None:
        """One refusal for ``reason``; ``message`` names the limit and its setting."""
        self.refused[reason] += 1
        self._unlogged[reason] += 1
        now = self._clock()
        if now - self._logged_at.get(reason, -LOG_EVERY) < LOG_EVERY:
            return
        self._logged_at[reason] = now
        count, self._unlogged[reason] = self._unlogged[reason], 0
        log.warning(message + " (%d refused since the last such line)", *args, count)


Peer = tuple[str, int]  # (address, port): one connection


class ConnectionGate:
    """Admits or refuses each accepted connection and watches its handshake deadline.

    When ``max_connections`` are open, a newcomer is still let in if one of them is not *vouched
    for* (a SIP connection registered with a valid token, :meth:`vouch`): the oldest such is
    closed for it. Strangers from many addresses then only push each other out; a door, whose
    connection is unvouched only for the moment between its accept and its REGISTER, gets in,
    and once registered is never pushed out. Only when every connection is vouched for is the
    newcomer refused.
    """

    def __init__(self, limits: ConnectionLimits, tls: bool) -> None:
        self.limits = limits
        self.tls = tls
        self.log = RefusalLog()
        self.per_source: Counter[str] = Counter()
        self.count = 0
        self._pending: dict[Peer, tuple[AdmittedSocket, asyncio.TimerHandle]] = {}
        self._unvouched: dict[Peer, AdmittedSocket] = {}  # in the order accepted: the oldest first
        self._closing: set[Peer] = set()  # shut down (evicted or too slow), not gone yet

    @property
    def refused(self) -> Counter[str]:
        return self.log.refused

    def listening(self, sock: socket.socket) -> GatedSocket:
        """``sock`` (bound, listening or not) as a socket whose ``accept()`` goes through this gate."""
        gated = GatedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        gated.gate = self
        return gated

    def admit(self, conn: AdmittedSocket, address: tuple[str, int]) -> bool:
        """Count ``conn`` in, or refuse it (closed here) when a limit is reached."""
        source = address[0]
        if self.count - len(self._closing) >= self.limits.max_connections and not self._evict_oldest(source):
            self.log.refuse(
                "max_connections",
                "refused a connection from %s: %d connections open, the limit (setting max_connections)",
                source,
                self.count,
            )
        elif self.per_source[source] >= self.limits.max_connections_per_source:
            self.log.refuse(
                "max_connections_per_source",
                "refused a connection from %s: %d open from it, the limit (setting max_connections_per_source)",
                source,
                self.per_source[source],
            )
        else:
            self.count += 1
            self.per_source[source] += 1
            key = (source, address[1])
            conn.released = lambda: self._release(key)
            deadline = asyncio.get_running_loop().call_later(self.limits.handshake_timeout, self._too_slow, key)
            self._pending[key] = (conn, deadline)
            self._unvouched[key] = conn
            return True
        self._refuse(conn)
        return False

    def handshake_done(self, peer: Peer | None) -> None:
        """The request head from ``peer`` (as uvicorn reports it) is complete: no deadline any more."""
        if peer is not None and (pending := self._pending.pop((peer[0], peer[1]), None)) is not None:
            pending[1].cancel()

    def vouch(self, peer: Peer) -> None:
        """``peer`` registered with a valid token: never closed to make room for a newcomer."""
        self._unvouched.pop(peer, None)

    def _evict_oldest(self, newcomer: str) -> bool:
        """Close the oldest connection nobody vouched for, if there is one, to make room."""
        if not self._unvouched:
            return False
        key = next(iter(self._unvouched))
        conn = self._unvouched.pop(key)
        self._closing.add(key)
        self.log.refuse(
            "evicted",
            "closed the oldest unregistered connection, from %s, for one from %s: %d open, the limit "
            "(setting max_connections)",
            key[0],
            newcomer,
            self.count,
        )
        with contextlib.suppress(OSError):  # already gone
            conn.shutdown(socket.SHUT_RDWR)
        return True

    def _refuse(self, conn: socket.socket) -> None:
        if not self.tls:  # over TLS any byte before the handshake would only be a protocol error
            reason = b"too many connections\n"
            with contextlib.suppress(OSError):  # the answer is a courtesy; the close is what matters
                conn.send(REFUSED_ANSWER % (len(reason), reason))
        conn.close()

    def _too_slow(self, key: Peer) -> None:
        conn, _ = self._pending.pop(key)
        self._unvouched.pop(key, None)
        self._closing.add(key)
        self.log.refuse(
            "handshake_timeout",
            "closed a connection from %s: no complete request within %g s (setting handshake_timeout)",
            key[0],
            self.limits.handshake_timeout,
        )
        with contextlib.suppress(OSError):  # already gone
            conn.shutdown(socket.SHUT_RDWR)  # the transport reads the end and closes itself

    def _release(self, key: Peer) -> None:
        self.count -= 1
        self.per_source[key[0]] -= 1
        if not self.per_source[key[0]]:
            del self.per_source[key[0]]
        if (pending := self._pending.pop(key, None)) is not None:
            pending[1].cancel()
        self._unvouched.pop(key, None)
        self._closing.discard(key)


class MessageRate:
    """A token bucket: on average ``per_second`` messages, ``burst`` at once."""

    def __init__(self, per_second: float, burst: int, now: float) -> None:
        self.per_second = per_second
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def allow(self, now: float) -> bool:
        """Take one token if there is one."""
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class EndsHandshake:
    """ASGI middleware: an HTTP request that reaches the app has finished its handshake."""

    def __init__(self, app: Any, gate: ConnectionGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.gate.handshake_done(scope.get("client"))
        await self.app(scope, receive, send)


class AdmittedSocket(socket.socket):
    """An accepted connection that tells its gate when it is closed, once."""

    released: Callable[[], None] | None = None

    def close(self) -> None:
        release, self.released = self.released, None
        super().close()
        if release is not None:
            release()


class GatedSocket(socket.socket):
    """A listening socket whose ``accept()`` (called by asyncio) hands on only admitted connections."""

    gate: ConnectionGate

    def accept(self) -> tuple[socket.socket, tuple[str, int]]:  # type: ignore[override]
        for _ in range(REFUSALS_PER_ACCEPT):
            fd, address = self._accept()  # type: ignore[attr-defined]  # BlockingIOError: none left
            conn = AdmittedSocket(self.family, self.type, self.proto, fileno=fd)
            if self.gate.admit(conn, address):
                return conn, address
        raise ConnectionAbortedError  # asyncio stops accepting for this turn of the loop


MIN_CONNECTIONS = 16  # fewer than this and a hub is no use: refuse to start instead


def raise_descriptor_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (systemd's default is 1,024
    soft, 524,288 hard); return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fit_to_descriptors(limits: ConnectionLimits, available: int, reserve: int) -> ConnectionLimits:
    """``limits`` with ``max_connections`` lowered, with a warning, to what ``available``
    descriptors allow beyond the ``reserve`` kept for the database, recordings, media and the API.
    Raises :class:`ValueError` when that leaves fewer than :data:`MIN_CONNECTIONS`."""
    allowed = available - reserve
    if allowed >= limits.max_connections:
        return limits
    if allowed < MIN_CONNECTIONS:
        raise ValueError(
            f"the hub may open only {available} descriptors: with {reserve} in reserve (setting descriptor_reserve) "
            f"that leaves {max(allowed, 0)} connections, fewer than {MIN_CONNECTIONS}: raise LimitNOFILE"
        )
    log.warning(
        "only %d descriptors: max_connections lowered from %d to %d, %d kept in reserve (raise LimitNOFILE)",
        available,
        limits.max_connections,
        allowed,
        reserve,
    )
    return dataclasses.replace(limits, max_connections=allowed)
