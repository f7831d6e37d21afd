"""The units behind a SIP proxy, as the hub sees them: one :class:`EdgeFlow` per unit's connection.

In front of several hubs, a SIP proxy (Kamailio, deploy/kamailio/, docs/proxy.md) holds the
units' WebSockets and relays their requests over a few TCP connections. So the hub can no longer
bind a registration or a call to the socket a request came on: it binds them to the unit's
*flow*, which the proxy names in ``P-Intercom-Flow`` on every request it relays (and removes from
what a client sent). The hub believes that header only from a configured proxy address; a flow
is the pair (proxy address, header value), compared for equality only.

An :class:`EdgeFlow` is what the registrar and the calls hold where they hold a WebSocket's
:class:`~intercom.transport.SipConnection`, with the same methods: answers go back on the TCP
connection the request came on; requests go to the proxy named by their first ``Route`` (the
binding's Path, or the dialog's route set), over the hub's own connection to it. So the rule
"only the connection of a dialog may end or change it" holds with the flow as the connection.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..sip import Address, ParseError, Request, Response, ServerTransaction, SipUri
from ..transport import ConnectionClosed, SipConnection
from ..transport.addresses import normalised_host
from .legs import HubAddress

if TYPE_CHECKING:
    from ..transport.stream import StreamLinks

log = logging.getLogger(__name__)

FLOW_HEADER = "P-Intercom-Flow"
MAX_FLOW_LENGTH = 256  # the proxy's flow names are short; a longer one is refused, not kept
SIP_PORT = 5060


class EdgeFlow:
    """One unit's connection through a SIP proxy: the :class:`SipConnection` surface the hub uses."""

    def __init__(self, edge: str, flow: str, flows: EdgeFlows) -> None:
        self.key = (edge, flow)
        self.name = f"{edge} flow {flow}"
        self.closed = False
        self._flows = flows
        # Each request's answers go back on the TCP connection it came on (RFC 3261 18.2.2).
        self._arrived_on: weakref.WeakKeyDictionary[ServerTransaction, SipConnection] = weakref.WeakKeyDictionary()
        self._pending: set[asyncio.Future[Response]] = set()  # its requests awaiting their answers

    @property
    def hub(self) -> HubAddress:
        """How the hub names itself to this unit: its SIP/TCP listener, where the proxy reaches it."""
        assert self._flows.address is not None, "the SIP/TCP listener is not started"
        return self._flows.address

    def arrived(self, transaction: ServerTransaction, connection: SipConnection) -> None:
        self._arrived_on[transaction] = connection

    def send_response(self, transaction: ServerTransaction, response: Response) -> None:
        connection = self._arrived_on.get(transaction)
        if connection is not None and not connection.closed:
            connection.send_response(transaction, response)

    async def request(self, request: Request, on_provisional: Callable[[Response], None] | None = None) -> Response:
        """Send ``request`` to its first Route's proxy; as :meth:`SipConnection.request`."""
        if self.closed:
            raise ConnectionClosed(f"{self.name}: closed")
        try:
            link = await self._flows.links.connect(self._flows.next_hop(request))
        except (OSError, ValueError) as exc:
            raise ConnectionClosed(f"{self.name}: {exc}") from None
        # The link outlives the flow: a request pending when the unit's WebSocket closes fails
        # then, as one on a closed WebSocket does, instead of waiting for its timeout.
        pending = asyncio.ensure_future(link.request(request, on_provisional))
        self._pending.add(pending)
        try:
            return await pending
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.closed and (current is None or not current.cancelling()):
                raise ConnectionClosed(f"{self.name}: closed") from None
            raise
        finally:
            self._pending.discard(pending)

    def send(self, message: Request | Response) -> None:
        """A request outside any transaction (the ACK of a 2xx), over the link its INVITE took."""
        assert isinstance(message, Request), "answers go through send_response"
        try:
            link = self._flows.links.existing(self._flows.next_hop(message))
        except ValueError as exc:
            link = None
            log.info("%s: %s not sent: %s", self.name, message.method, exc)
        if link is not None:
            link.send(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """The hub cannot close the unit's WebSocket (the proxy holds it): the flow is dropped
        here, and anything it sends is a new flow that must register again."""
        log.info("%s: dropped (%s)", self.name, reason or code)
        self.lost()

    def lost(self) -> None:
        self.closed = True
        for pending in self._pending:
            pending.cancel()


class EdgeFlows:
    """The flows of the units behind the hub's SIP proxies; a flow is kept as long as a binding
    or a call holds it."""

    def __init__(self, proxies: frozenset[str], links: StreamLinks) -> None:
        self.proxies = proxies
        self.links = links
        self.address: HubAddress | None = None  # set once the SIP/TCP listener is bound
        self._flows: weakref.WeakValueDictionary[tuple[str, str], EdgeFlow] = weakref.WeakValueDictionary()

    def flow(self, edge: str, name: str) -> EdgeFlow:
        """The flow ``name`` of the proxy at ``edge`` (the same object every time while it is held)."""
        if len(name) > MAX_FLOW_LENGTH:
            raise ValueError(f"{FLOW_HEADER} longer than {MAX_FLOW_LENGTH} characters")
        flow = self._flows.get((edge, name))
        if flow is None or flow.closed:
            flow = self._flows[(edge, name)] = EdgeFlow(edge, name, self)
        return flow

    def __len__(self) -> int:
        return len(self._flows)

    def next_hop(self, request: Request) -> tuple[str, int]:
        """Where ``request`` goes: its first Route's host and port (else its Request-URI's),
        which must be one of the proxies; raises :class:`ValueError` otherwise."""
        routes = request.headers.get_all("Route")
        return self._proxy_of(routes[0]) if routes else self._proxy_of(request.uri)

    def check_path(self, path: list[str]) -> None:
        """A REGISTER's Path must lead to one of the proxies; raises :class:`ValueError` otherwise."""
        if not path:
            raise ValueError("no Path from the SIP proxy")
        self._proxy_of(path[0])

    def _proxy_of(self, hop: str | SipUri) -> tuple[str, int]:
        try:
            uri = Address.parse(hop).uri if isinstance(hop, str) else hop
        except ParseError as exc:
            raise ValueError(f"unreadable Route or Path: {exc}") from None
        if not isinstance(uri, SipUri):
            raise ValueError(f"{str(uri)[:80]!r} is not a SIP URI")
        try:
            host = normalised_host(uri.host)
        except ValueError:
            host = uri.host
        if host not in self.proxies:
            raise ValueError(f"{uri.host_port} is not a SIP proxy of this hub (setting sip_proxies)")
        return host, uri.port or SIP_PORT


def hub_address(connection: object, default: HubAddress) -> HubAddress:
    """How the hub names itself to the unit on ``connection``: ``default`` (its WebSocket address)
    unless the unit is behind a SIP proxy."""
    return connection.hub if isinstance(connection, EdgeFlow) else default
