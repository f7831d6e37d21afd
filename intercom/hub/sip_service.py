"""The SIP endpoint at ``/``: one :class:`SipConnection` per WebSocket, and each request to its handler.

REGISTER goes to the registrar; INVITE, CANCEL and in-dialog requests to the calls; OPTIONS
is answered here. Any other method gets 405 with the ``Allow`` list, so a client learns at
once what this hub supports.

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

from ..sip import RequestReceived, make_response
from ..sip.transaction import Event
from ..transport import FrameWriter, SipConnection
from ..transport.limits import ConnectionGate
from .call_service import IN_DIALOG_METHODS, CallService
from .registrar import Registrar

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("REGISTER", "OPTIONS", "INVITE", "ACK", "CANCEL", "BYE", "UPDATE", "INFO", "MESSAGE")
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
        connection = SipConnection(writer, self._handle, name=peer)
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
            connection.name.rpartition(":")[0],
            self.register_timeout,
        )
        connection.close(REGISTER_CLOSE_CODE, f"not registered within {self.register_timeout:g} s")

    def _carries_a_call(self, connection: SipConnection) -> bool:
        return any(
            leg is not None and leg.connection is connection
            for call in self.calls.calls.values()
            for leg in (call.caller, call.callee)
        )

    def lost(self, connection: SipConnection) -> None:
        """The client's socket closed: forget the connection and its bindings, end its calls."""
        connection.lost()
        self.connections.discard(connection)
        if (timer := self._unregistered.pop(connection, None)) is not None:
            timer.cancel()
        removed = self.registrar.remove_connection(connection)
        log.debug("%s closed, %d binding(s) removed", connection.name, removed)
        task = asyncio.get_running_loop().create_task(self.calls.connection_lost(connection))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    def _handle(self, connection: SipConnection, event: Event) -> Awaitable[None] | None:
        if not isinstance(event, RequestReceived):
            return None  # stray responses: nothing of ours is waiting for them
        request, transaction = event.request, event.transaction
        if transaction is None:  # the ACK of a 2xx
            return self.calls.in_dialog(connection, None, request)
        method = request.method
        in_dialog = request.to.tag is not None
        if method == "REGISTER":
            connection.send_response(transaction, self.registrar.handle_register(connection, request))
            if self.registrar.holds(connection) and (timer := self._unregistered.pop(connection, None)):
                timer.cancel()
                self.gate.vouch(_peer(connection))
        elif method == "OPTIONS":
            headers = [("Allow", ",".join(ALLOWED_METHODS)), ("Accept", "application/sdp")]
            connection.send_response(transaction, make_response(request, 200, headers=headers))
        elif method == "INVITE" and not in_dialog:
            return self.calls.invite(connection, transaction, request)
        elif method == "CANCEL":
            return self.calls.cancel(connection, transaction, request)
        elif method == "MESSAGE" and not in_dialog:
            self.calls.message(connection, transaction, request)
        elif in_dialog and (method in IN_DIALOG_METHODS or method == "INVITE"):
            return self.calls.in_dialog(connection, transaction, request)
        else:
            connection.send_response(
                transaction, make_response(request, 405, headers=[("Allow", ",".join(ALLOWED_METHODS))])
            )
        return None


def _peer(connection: SipConnection) -> tuple[str, int]:
    """The (address, port) of a connection, from its name ``address:port``."""
    address, _, port = connection.name.rpartition(":")
    return address, int(port) if port.isdigit() else 0
