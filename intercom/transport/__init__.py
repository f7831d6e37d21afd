"""asyncio WebSocket transport for the sans-I/O SIP core, for the hub and the client."""

from .connection import ConnectionClosed, FrameSocket, SipConnection
from .sockets import AsgiFrameSocket, ClientFrameSocket

__all__ = ["AsgiFrameSocket", "ClientFrameSocket", "ConnectionClosed", "FrameSocket", "SipConnection"]
