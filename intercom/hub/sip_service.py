"""The SIP endpoint at ``/``: one :class:`SipConnection` per WebSocket, and each request to its handler.

REGISTER goes to the registrar; INVITE, CANCEL and in-dialog requests to the calls; OPTIONS
is answered here. Before that, every request is inspected in the order of RFC 3261 section 8.2:

* method (8.2.1): one the hub does not implement at all (``FOO``, and also ``SUBSCRIBE``,
  ``REFER``, ``PRACK``...) gets 501 Not Implemented with ``Allow``: no user of this hub could
  take it (21.5.2). 405 Method Not Allowed, with ``Allow``, is kept for a method the hub
  implements sent where it does not apply (21.4.6): a MESSAGE inside a dialog, a re-INVITE.
  BYE, INFO and UPDATE outside any dialog get 481, as for a dialog that does not exist (15.1.2);
* Request-URI scheme (8.2.2.1): anything but ``sip:``/``sips:`` (``tel:``, ``urn:``...) gets
  416 Unsupported URI Scheme, whatever the method;
* ``Require`` (8.2.2.3): an option tag outside :data:`SUPPORTED_EXTENSIONS` gets 420 Bad
  Extension listing it in ``Unsupported``. ACK and CANCEL are not checked (the RFC says so; an
  ACK has no answer, and goes to its call whatever it holds).

Every final answer to a request outside a dialog carries a To tag: the server transaction adds
it (:mod:`intercom.sip.transaction`).

A connection that registers is vouched for to the connection gate (never closed to make room for
a newcomer). A connection that has not registered with a valid token (and carries no call) within
``register_timeout`` is closed (:data:`REGISTER_CLOSE_CODE`): every client, the outgoing-only
ones too, registers as soon as its socket is open (PROTOCOL.md section 1), so only a stranger
stays unregistered, holding a descriptor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from ..sip import Request, RequestReceived, Response, ServerTransaction, SipUri, make_response
from ..sip.transaction import Event
from ..transport import FrameWriter, SipConnection
from ..transport.limits import ConnectionGate
from .call_service import IN_DIALOG_METHODS, CallService
from .registrar import Registrar

if TYPE_CHECKING:
    from .edge_flows import EdgeFlow

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("REGISTER", "OPTIONS", "INVITE", "ACK", "CANCEL", "BYE", "UPDATE", "INFO", "MESSAGE")
# The option tags a request may Require. None: the clients only ever send Supported (path, gruu,
# outbound, timer, ice, replaces; PROTOCOL.md), and the hub honours none of them in full. It
# answers session refreshes but puts no Session-Expires in its 2xx and ends no call whose
# refreshes stop (timer, RFC 4028); it keeps a binding on its connection but answers no CRLF
# keep-alive and sends no "Require: outbound" (RFC 5626); it stores a Path (RFC 3327) only from
# its SIP proxies (intercom.hub.edge_flows), never on a client's word, and mints no GRUU (RFC 5627).
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()
REGISTER_CLOSE_CODE = 1008  # "Policy Violation" (RFC 6455)


class SipService:
    """The hub's :class:`~intercom.transport.SipEndpoint`."""

    def __init__(
        self, registrar: Registrar, calls: CallService, gate: ConnectionGate, register_timeout: float = 20.0
    ) -> None:
        if not register_timeout > 0:
            raise ValueError(f"register_timeout must be above 0, not {register_timeout!r}")
        self.registrar = registrar
        self.calls = calls
        self.gate = gate
        self.register_timeout = register_timeout
        self.connections: set[SipConnection] = set()
        self._unregistered: dict[SipConnection, asyncio.TimerHandle] = {}
        self._cleanups: set[asyncio.Task[None]] = set()

    def open(self, writer: FrameWriter, peer: str) -> SipConnection:
        connection = SipConnection(writer, self.handle, name=peer)
        self.connections.add(connection)
        loop = asyncio.get_running_loop()
        self._unregistered[connection] = loop.call_later(self.register_timeout, self._not_registered, connection)
        return connection

    def _not_registered(self, connection: SipConnection) -> None:
        del self._unregistered[connection]
        if self._carries_a_call(connection):
            return  # an authorised INVITE: the call's own limits bound it
        self.gate.log.refuse(
            "register_timeout",
            "closed the SIP connection of %s: not registered within %g s (setting register_timeout)",
            peer_of(connection)[0],
            self.register_timeout,
        )
        connection.close(REGISTER_CLOSE_CODE, f"not registered within {self.register_timeout:g} s")

    def _carries_a_call(self, connection: SipConnection) -> bool:
        return any(
            leg is not None and leg.connection is connection
            for call in self.calls.calls.values()
            for leg in (call.caller, call.callee)
        )

    def lost(self, connection: SipConnection | EdgeFlow) -> None:
        """The client's socket closed (for a unit behind a proxy: the proxy said its WebSocket
        closed): forget the connection and its bindings, end its calls."""
        connection.lost()
        if isinstance(connection, SipConnection):
            self.connections.discard(connection)
        if (timer := self._unregistered.pop(connection, None)) is not None:
            timer.cancel()
        removed = self.registrar.remove_connection(connection)
        log.debug("%s closed, %d binding(s) removed", connection.name, removed)
        task = asyncio.get_running_loop().create_task(self._clean_up(connection))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _clean_up(self, connection: SipConnection | EdgeFlow) -> None:
        if self.registrar.shares(connection):
            try:
                await self.registrar.forget(connection)
            except Exception:  # the rows expire anyway; the calls must still end
                log.exception("%s: its shared bindings were not removed", connection.name)
        await self.calls.connection_lost(connection)

    def handle(self, connection: SipConnection | EdgeFlow, event: Event) -> Awaitable[None] | None:
        """Route one event of ``connection`` (a unit's WebSocket, or its flow behind a SIP proxy)."""
        if not isinstance(event, RequestReceived):
            return None  # stray responses: nothing of ours is waiting for them
        request, transaction = event.request, event.transaction
        if transaction is None:  # the ACK of a 2xx
            return self.calls.in_dialog(connection, None, request)
        if (refusal := inspect_request(request)) is not None:
            log.info("%s: %s refused: %d %s", connection.name, request.method, refusal.status_code, refusal.reason)
            connection.send_response(transaction, refusal)
            return None
        method = request.method
        in_dialog = request.to.tag is not None
        if method == "REGISTER":
            if self.registrar.shares(connection):
                return self._register_shared(connection, transaction, request)
            connection.send_response(transaction, self.registrar.handle_register(connection, request))
            if self.registrar.holds(connection) and (timer := self._unregistered.pop(connection, None)):
                timer.cancel()
                self.gate.vouch(peer_of(connection))
        elif method == "OPTIONS":
            headers = [_ALLOW, ("Accept", "application/sdp")]
            connection.send_response(transaction, make_response(request, 200, headers=headers))
        elif method == "INVITE" and not in_dialog:
            return self.calls.invite(connection, transaction, request)
        elif method == "CANCEL":
            return self.calls.cancel(connection, transaction, request)
        elif method == "MESSAGE" and not in_dialog:
            return self.calls.message(connection, transaction, request)
        elif method in IN_DIALOG_METHODS or (in_dialog and method == "INVITE"):
            return self.calls.in_dialog(connection, transaction, request)  # 481 when no dialog matches
        else:
            connection.send_response(transaction, make_response(request, 405, headers=[_ALLOW]))
        return None

    async def _register_shared(
        self, connection: SipConnection | EdgeFlow, transaction: ServerTransaction, request: Request
    ) -> None:
        """A REGISTER of a unit behind a SIP proxy, whose bindings are in the database the hubs
        share: a database that fails answers 500 (the unit tries again; the proxy, another hub)."""
        path = tuple(request.headers.get_all("Path"))
        try:
            response = await self.registrar.register(connection, request, path)
        except Exception as exc:
            log.warning("%s: REGISTER not stored: %s", connection.name, exc)
            response = make_response(request, 500, "Server Internal Error (the location's database)")
        connection.send_response(transaction, response)


_ALLOW = ("Allow", ",".join(ALLOWED_METHODS))


def inspect_request(request: Request) -> Response | None:
    """The refusal RFC 3261 section 8.2 asks for before a request is processed, if any."""
    if request.method not in ALLOWED_METHODS:
        return make_response(request, 501, f"Not Implemented ({request.method})", headers=[_ALLOW])
    if not isinstance(request.uri, SipUri):  # the parser keeps another scheme's URI as text
        scheme = str(request.uri).partition(":")[0]
        return make_response(request, 416, f"Unsupported URI Scheme ({scheme[:20]})")
    if request.method == "CANCEL":  # goes with its INVITE, whatever it requires (an ACK never comes here)
        return None
    required = dict.fromkeys(request.headers.get_all("Require"))  # in order, each once
    unsupported = [tag for tag in required if tag not in SUPPORTED_EXTENSIONS]
    if unsupported:
        return make_response(request, 420, headers=[("Unsupported", ",".join(unsupported))])
    return None


def peer_of(connection: SipConnection) -> tuple[str, int]:
    """The (address, port) of a connection, from its name ``address:port``."""
    address, _, port = connection.name.rpartition(":")
    return address, int(port) if port.isdigit() else 0
