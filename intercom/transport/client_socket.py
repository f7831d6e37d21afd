"""The client side: a ``websockets`` client connection feeding a :class:`SipConnection`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed as WebSocketsClosed

from .connection import SipConnection


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


_STOP = object()  # the socket is gone: the writer has nothing more to do


class ClientSocket:
    """A :class:`~intercom.transport.connection.FrameWriter` over a client WebSocket.

    ``websockets`` sends asynchronously, so frames queue for one writer task: they leave in
    the order they were sent, and a close waits for the frames before it.
    """

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self._queue: asyncio.Queue[str | _Close | object] = asyncio.Queue()

    def send_text(self, text: str) -> None:
        self._queue.put_nowait(text)

    def close(self, code: int, reason: str) -> None:
        self._queue.put_nowait(_Close(code, reason))

    async def run(self, connection: SipConnection) -> None:
        """Feed every received frame to ``connection`` until the socket closes."""
        writer = asyncio.create_task(self._write_queued())
        try:
            async for frame in self.websocket:
                connection.receive(frame)
        except WebSocketsClosed:
            pass  # an abnormal close ends the loop like a normal one; lost() below tells the connection
        finally:
            connection.lost()
            self._queue.put_nowait(_STOP)
            await writer

    async def _write_queued(self) -> None:
        try:
            while (item := await self._queue.get()) is not _STOP:
                if isinstance(item, _Close):
                    await self.websocket.close(item.code, item.reason)
                else:
                    await self.websocket.send(item)  # type: ignore[arg-type]
        except WebSocketsClosed:
            pass  # the socket is gone: what was still queued cannot be sent, and run() reports the loss
