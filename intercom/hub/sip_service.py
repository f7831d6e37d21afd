"""The SIP endpoint at ``/``: one :class:`SipConnection` per WebSocket, and each request to its handler.

REGISTER goes to the registrar; INVITE, CANCEL and in-dialog requests to the calls; OPTIONS
is answered here. Any other method gets 405 with the ``Allow`` list, so a client learns at
once what this hub supports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from ..sip import RequestReceived, make_response
from ..sip.transaction import Event
from ..transport import FrameWriter, SipConnection
from .call_service import IN_DIALOG_METHODS, CallService
from .registrar import Registrar

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("REGISTER", "OPTIONS", "INVITE", "ACK", "CANCEL", "BYE", "UPDATE", "INFO", "MESSAGE")


class SipService:
    """The hub's :class:`~intercom.transport.SipEndpoint`."""

    def __init__(self, registrar: Registrar, calls: CallService) -> None:
        self.registrar = registrar
        self.calls = calls
        self.connections: set[SipConnection] = set()
        self._cleanups: set[asyncio.Task[None]] = set()

    def open(self, writer: FrameWriter, peer: str) -> SipConnection:
        connection = SipConnection(writer, self._handle, name=peer)
        self.connections.add(connection)
        return connection

    def lost(self, connection: SipConnection) -> None:
        """The client's socket closed: forget the connection and its bindings, end its calls."""
        connection.lost()
        self.connections.discard(connection)
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
