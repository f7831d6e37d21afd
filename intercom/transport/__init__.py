"""WebSockets on both sides, feeding the sans-I/O SIP core."""

from .client_socket import ClientSocket
from .connection import ConnectionClosed, FrameWriter, SipConnection
from .server_socket import SipEndpoint, SipWebSocketProtocol

__all__ = ["ClientSocket", "ConnectionClosed", "FrameWriter", "SipConnection", "SipEndpoint", "SipWebSocketProtocol"]
