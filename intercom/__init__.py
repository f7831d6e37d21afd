"""intercom: a Raspberry Pi hardware intercom built on WebRTC voice and SIP over WebSocket."""

__version__ = "0.1.0"
