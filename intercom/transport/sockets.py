"""Adapters from the two WebSocket libraries we use to :class:`FrameSocket`."""

from __future__ import annotations

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed as WebSocketsClosed


class AsgiFrameSocket:
    """The hub side: a Starlette WebSocket under uvicorn."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def send_text(self, text: str) -> None:
        await self.websocket.send_text(text)

    async def receive_frame(self) -> str | bytes | None:
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes") or b""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.websocket.application_state is WebSocketState.CONNECTED:
            await self.websocket.close(code, reason)


class ClientFrameSocket:
    """The client side: a ``websockets`` client connection."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def receive_frame(self) -> str | bytes | None:
        try:
            return await self.connection.recv()
        except WebSocketsClosed:
            return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.connection.close(code, reason)
