"""SIP over TCP, between the hub and the SIP proxies in front of it (docs/proxy.md).

A WebSocket frame holds one SIP message; a byte stream does not: RFC 3261 section 18.3 frames
it by the header block and then exactly ``Content-Length`` bytes of body. :class:`StreamFramer`
does that, sans-I/O: it skips the CRLFs sent as keep-alives between messages, and refuses (with
:class:`FramingError`, and the connection is then closed) a message larger than the SIP limit
or without a ``Content-Length``, which on a stream cannot be framed at all. It never holds more
than one message's worth of bytes.

:class:`SipStreamProtocol` is the :class:`~intercom.transport.connection.FrameWriter` of one
TCP connection: each framed message is fed to its :class:`SipConnection`, as a WebSocket frame
is. :func:`serve_stream` listens for the proxies' connections and admits only the addresses
it is given; :class:`StreamLinks` opens the hub's own connections to a proxy, one per proxy
address, reused for every request sent there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable

from ..sip import MAX_MESSAGE_SIZE
from .addresses import normalised_host
from .connection import SipConnection
from .server_socket import SipEndpoint

log = logging.getLogger(__name__)

HEAD_END = b"\r\n\r\n"
CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


class FramingError(Exception):
    """The stream cannot be cut into SIP messages any more: the connection must close."""


class StreamFramer:
    """Cuts a byte stream into SIP messages (RFC 3261 section 18.3)."""

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The messages ``data`` completes, in order; raises :class:`FramingError` when the stream
        holds something that is not a message of at most ``max_size`` bytes with a Content-Length."""
        self._buffer += data
        messages = []
        while message := self._next():
            messages.append(message)
        return messages

    def _next(self) -> bytes | None:
        start = 0
        while self._buffer.startswith(b"\r\n", start):  # keep-alives (RFC 5626 section 4.4.1)
            start += 2
        if start:
            del self._buffer[:start]
        end = self._buffer.find(HEAD_END)
        if end < 0:
            if len(self._buffer) > self.max_size:
                raise FramingError(f"no end of headers within {self.max_size} bytes")
            return None
        head = bytes(self._buffer[:end])
        lengths = CONTENT_LENGTH.findall(head)
        if not lengths:
            raise FramingError("a message without Content-Length")
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            raise FramingError(f"unreadable Content-Length {lengths[0][:20]!r}")
        size = end + len(HEAD_END) + int(lengths[0])
        if size > self.max_size:
            raise FramingError(f"a message of {size} bytes, over the limit of {self.max_size}")
        if len(self._buffer) < size:
            return None
        message = bytes(self._buffer[:size])
        del self._buffer[:size]
        return message


class SipStreamProtocol(asyncio.Protocol):
    """One TCP connection carrying SIP, for ``endpoint`` (which opens its :class:`SipConnection`)."""

    def __init__(self, endpoint: SipEndpoint, admit: Callable[[str, int], bool] = lambda host, port: True) -> None:
        self.endpoint = endpoint
        self.admit = admit
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.sip: SipConnection | None = None
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = f"{host}:{port}"
        if not self.admit(host, port):
            transport.abort()
            return
        self.sip = self.endpoint.open(self, self.peer)

    def data_received(self, data: bytes) -> None:
        if self.sip is None:
            return
        try:
            messages = self.framer.feed(data)
        except FramingError as exc:
            log.warning("closed the SIP/TCP connection of %s: %s", self.peer, exc)
            self.close(0, str(exc))
            return
        for message in messages:
            self.sip.receive(message)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sip is not None:
            self.endpoint.lost(self.sip)

    # FrameWriter, for the SipConnection

    def send_text(self, text: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(text.encode())

    def close(self, code: int, reason: str) -> None:
        """TCP has no close code: what was written goes out, then the connection closes."""
        if self.transport is not None:
            self.transport.close()


class Admission:
    """Who may connect to the SIP/TCP listener: the proxies' addresses, each at most
    ``per_source`` connections at once; any other is refused with one log line."""

    def __init__(self, proxies: frozenset[str], per_source: int) -> None:
        self.proxies = proxies
        self.per_source = per_source
        self.open: Counter[str] = Counter()

    def admit(self, host: str, port: int) -> bool:
        source = normalised_host(host)
        if source not in self.proxies:
            log.warning("refused a SIP/TCP connection from %s: not a SIP proxy of this hub (setting sip_proxies)", host)
            return False
        if self.open[source] >= self.per_source:
            log.warning(
                "refused a SIP/TCP connection from %s: %d open from it, the limit (setting max_connections_per_source)",
                host,
                self.open[source],
            )
            return False
        self.open[source] += 1
        return True

    def released(self, host: str) -> None:
        source = normalised_host(host)
        self.open[source] -= 1
        if self.open[source] <= 0:
            del self.open[source]


class _CountedProtocol(SipStreamProtocol):
    """An accepted connection, counted by its :class:`Admission` while it is open."""

    def __init__(self, endpoint: SipEndpoint, admission: Admission) -> None:
        super().__init__(endpoint, admission.admit)
        self.admission = admission

    def connection_lost(self, exc: Exception | None) -> None:
        if self.sip is not None:
            self.admission.released(self.peer.rpartition(":")[0])
        super().connection_lost(exc)


async def serve_stream(endpoint: SipEndpoint, host: str, port: int, admission: Admission) -> asyncio.Server:
    """Listen for SIP over TCP on ``host:port`` (port 0: a free one), admitting by ``admission``."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _CountedProtocol(endpoint, admission), host, port)


class StreamLinks:
    """The hub's own TCP connections to the proxies: one per proxy address, opened at first use
    and again after it closed; requests from the proxy on it go to ``endpoint`` too."""

    def __init__(self, endpoint: SipEndpoint, connect_timeout: float) -> None:
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self._links: dict[tuple[str, int], tuple[SipConnection, asyncio.BaseTransport]] = {}
        self._opening: dict[tuple[str, int], asyncio.Future[SipConnection]] = {}

    def existing(self, address: tuple[str, int]) -> SipConnection | None:
        """The open connection to ``address``, if there is one."""
        link = self._links.get(address)
        return link[0] if link is not None and not link[0].closed else None

    async def connect(self, address: tuple[str, int]) -> SipConnection:
        """The connection to ``address``, opened if needed (once, however many ask at the same time);
        raises :class:`OSError` or :class:`TimeoutError` when it cannot be opened."""
        if (link := self.existing(address)) is not None:
            return link
        if (opening := self._opening.get(address)) is None:
            opening = self._opening[address] = asyncio.ensure_future(self._open(address))
            opening.add_done_callback(lambda _: self._opening.pop(address, None))
        return await asyncio.shield(opening)

    async def _open(self, address: tuple[str, int]) -> SipConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            transport, protocol = await loop.create_connection(lambda: SipStreamProtocol(self.endpoint), *address)
        assert isinstance(protocol, SipStreamProtocol) and protocol.sip is not None
        self._links[address] = (protocol.sip, transport)
        log.info("opened a SIP/TCP connection to %s:%d", *address)
        return protocol.sip

    def close(self) -> None:
        """Close every link (at shutdown)."""
        for _, transport in self._links.values():
            with contextlib.suppress(RuntimeError):  # its loop is already closed
                transport.close()
        self._links.clear()


__all__ = [
    "Admission",
    "FramingError",
    "SipStreamProtocol",
    "StreamFramer",
    "StreamLinks",
    "serve_stream",
]
