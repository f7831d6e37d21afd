"""The SIP endpoint at ``/``: one :class:`SipConnection` per WebSocket, and the requests' answers.

This issue's hub registers clients and answers OPTIONS; every other method gets 405 with
the ``Allow`` list, so a client learns at once what this hub supports.
"""

from __future__ import annotations

import logging

from ..sip import RequestReceived, make_response
from ..sip.transaction import Event
from ..transport import FrameWriter, SipConnection
from .registrar import Registrar

log = logging.getLogger(__name__)

ALLOWED_METHODS = ("REGISTER", "OPTIONS")


class SipService:
    """The hub's :class:`~intercom.transport.SipEndpoint`."""

    def __init__(self, registrar: Registrar) -> None:
        self.registrar = registrar
        self.connections: set[SipConnection] = set()

    def open(self, writer: FrameWriter, peer: str) -> SipConnection:
        connection = SipConnection(writer, self._handle, name=peer)
        self.connections.add(connection)
        return connection

    def lost(self, connection: SipConnection) -> None:
        """The client's socket closed: forget the connection and its bindings."""
        connection.lost()
        self.connections.discard(connection)
        removed = self.registrar.remove_connection(connection)
        log.debug("%s closed, %d binding(s) removed", connection.name, removed)

    def _handle(self, connection: SipConnection, event: Event) -> None:
        if not isinstance(event, RequestReceived) or event.transaction is None:
            return  # stray responses and ACKs: nothing of ours is waiting for them
        request = event.request
        if request.method == "REGISTER":
            response = self.registrar.handle_register(connection, request)
        elif request.method == "OPTIONS":
            response = make_response(
                request, 200, headers=[("Allow", ",".join(ALLOWED_METHODS)), ("Accept", "application/sdp")]
            )
        else:
            response = make_response(request, 405, headers=[("Allow", ",".join(ALLOWED_METHODS))])
        connection.send_response(event.transaction, response)
