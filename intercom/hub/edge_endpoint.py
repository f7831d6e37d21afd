"""The hub's side of its SIP proxies (docs/proxy.md): the TCP connections to and from them, and each
request they relay handed to the SIP service on the unit's flow. Loaded only by a hub given
``--sip-proxy-listen``: the embedded hub never imports the SIP/TCP transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from ..sip import Request, RequestReceived, ServerTransaction, make_response
from ..sip.transaction import Event
from ..transport import FrameWriter, SipConnection
from ..transport.stream import Admission, StreamLinks, serve_stream
from .edge_flows import FLOW_HEADER, EdgeFlow, EdgeFlows
from .legs import HubAddress
from .sip_service import SipService, peer_of

log = logging.getLogger(__name__)


FLOW_CLOSED_EVENT = "intercom-flow-closed"  # the proxy's NOTIFY when a unit's WebSocket closed


class EdgeEndpoint:
    """The :class:`~intercom.transport.SipEndpoint` of the TCP connections to and from the hub's
    SIP proxies (docs/proxy.md): each request is handed to :class:`SipService` on the unit's
    flow (:mod:`intercom.hub.edge_flows`) instead of the connection it came on. Only an OPTIONS
    (the proxy probing whether the hub is up) may come without a flow; anything else without
    one gets 400, and so does a REGISTER without the proxy's Path."""

    def __init__(self, sip: SipService, proxies: frozenset[str], connect_timeout: float = 10.0) -> None:
        self.sip = sip
        self.connections: set[SipConnection] = set()
        self.flows = EdgeFlows(proxies, StreamLinks(self, connect_timeout))
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int, per_source: int) -> None:
        """Listen on ``host:port`` (0: a free port; the hub's Via and Contact name the one bound)."""
        self._server = await serve_stream(self, host, port, Admission(self.flows.proxies, per_source))
        bound = self._server.sockets[0].getsockname()
        address = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"
        self.flows.address = HubAddress(address, "TCP")
        log.info("SIP/TCP for the SIP proxies %s on %s", ", ".join(sorted(self.flows.proxies)), address)

    async def close(self) -> None:
        """At shutdown: hang up the calls of the units behind the proxies (their BYEs go out through
        the proxies while the connections are still up), then close the connections."""
        if self._server is not None:
            self._server.close()
        through_proxies = [
            call
            for call in self.sip.calls.calls.values()
            if any(isinstance(leg.connection, EdgeFlow) for leg in (call.caller, call.callee) if leg is not None)
        ]
        await asyncio.gather(*(call.hang_up("the hub stopped") for call in through_proxies))
        self.flows.links.close()
        for connection in list(self.connections):
            connection.close()

    def open(self, writer: FrameWriter, peer: str) -> SipConnection:
        connection = SipConnection(writer, self._handle, name=peer)
        self.connections.add(connection)
        return connection

    def lost(self, connection: SipConnection) -> None:
        """A proxy's connection closed: the units behind it keep their flows (the proxy holds their
        WebSockets, and reaches the hub again on a new connection)."""
        connection.lost()
        self.connections.discard(connection)

    def _handle(self, connection: SipConnection, event: Event) -> Awaitable[None] | None:
        if not isinstance(event, RequestReceived):
            return None
        request, transaction = event.request, event.transaction
        name = request.headers.get(FLOW_HEADER)
        if name is None and request.method == "OPTIONS":
            return self.sip.handle(connection, event)
        try:
            if name is None:
                raise ValueError(f"no {FLOW_HEADER} from the SIP proxy")
            if request.method == "REGISTER":
                self.flows.check_path(request.headers.get_all("Path"))
            flow = self.flows.flow(peer_of(connection)[0], name.strip())
        except ValueError as exc:
            log.info("%s: %s refused: %s", connection.name, request.method, exc)
            if transaction is not None:
                connection.send_response(transaction, make_response(request, 400, f"Bad Request ({exc})"))
            return None
        if transaction is not None:
            flow.arrived(transaction, connection)
        if request.method == "NOTIFY" and transaction is not None:
            return self._flow_closed(flow, transaction, request)
        return self.sip.handle(flow, event)

    def _flow_closed(self, flow: EdgeFlow, transaction: ServerTransaction, request: Request) -> None:
        """The proxy's news that a unit's WebSocket closed (deploy/kamailio/: ``Event:
        intercom-flow-closed``): its bindings and calls end as a direct WebSocket's do."""
        if (request.headers.get("Event") or "").strip().lower() != FLOW_CLOSED_EVENT:
            flow.send_response(transaction, make_response(request, 489, headers=[("Allow-Events", FLOW_CLOSED_EVENT)]))
            return
        flow.send_response(transaction, make_response(request, 200))
        log.debug("%s: closed at the SIP proxy", flow.name)
        self.sip.lost(flow)
