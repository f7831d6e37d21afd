"""The SIP endpoint at ``/``: accepts WebSockets with subprotocol ``sip`` and answers requests.

This issue's hub registers clients and answers OPTIONS; every other method gets 405 with
the ``Allow`` list, so a client learns at once what this hub supports.
"""

from __future__ import annotations

import logging

from starlette.websockets import WebSocket

from ..sip import RequestReceived, make_response
from ..sip.transaction import Event
from ..transport import AsgiFrameSocket, SipConnection
from .registrar import Registrar

log = logging.getLogger(__name__)

SUBPROTOCOL = "sip"
ALLOWED_METHODS = ("REGISTER", "OPTIONS")


class SipService:
    def __init__(self, registrar: Registrar) -> None:
        self.registrar = registrar
        self.connections: set[SipConnection] = set()

    async def serve(self, websocket: WebSocket) -> None:
        """Run one client's WebSocket until it closes, then forget its bindings."""
        if SUBPROTOCOL not in websocket.scope.get("subprotocols", []):
            log.info("refused a WebSocket without subprotocol 'sip' from %s", websocket.client)
            await websocket.close(code=1002, reason="subprotocol 'sip' required")
            return
        await websocket.accept(subprotocol=SUBPROTOCOL)
        peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
        connection = SipConnection(AsgiFrameSocket(websocket), self._handle, name=peer)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            removed = self.registrar.remove_connection(connection)
            log.debug("%s closed, %d binding(s) removed", peer, removed)

    async def _handle(self, connection: SipConnection, event: Event) -> None:
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
        await connection.send_response(event.transaction, response)
