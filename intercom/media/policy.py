"""The media policy of a unit or hub, and the one factory that applies it to peer connections.

aiortc's defaults do not fit an intercom: it adds Google's public STUN server when no ICE servers
are configured, aioice never offers 127.0.0.1 as a host candidate, and its receivers buffer four
frames (~80 ms) before decoding. :class:`MediaPolicy` states the choices explicitly and
:func:`new_peer_connection` is the only place they are applied, so the SDK and the hub build every
peer connection the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from .aiortc_adaptation import AdaptedPeerConnection

ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
ENDPOINT_JITTER_FRAMES = 1


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server, as in WebRTC's ``RTCIceServer``.

    aioice uses the first STUN URL and the first usable TURN URL of the whole list; further ones
    are ignored.
    """

    urls: Sequence[str]
    username: str | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        urls = (self.urls,) if isinstance(self.urls, str) else tuple(self.urls)
        for url in urls:
            if not url.startswith(ICE_SCHEMES):
                raise ValueError(f"ICE server URL {url!r} does not start with one of {', '.join(ICE_SCHEMES)}")
        object.__setattr__(self, "urls", urls)

    def to_aiortc(self) -> RTCIceServer:
        return RTCIceServer(urls=list(self.urls), username=self.username, credential=self.credential)


@dataclass(frozen=True)
class MediaPolicy:
    """How a peer connection finds its network path and how much audio it buffers on receipt.

    ``host_addresses``: local addresses offered as host candidates; ``("127.0.0.1",)`` for tests
    and loopback deployments. Empty: aioice's own choice, every non-loopback interface.

    ``ice_servers``: STUN/TURN servers. Empty means none at all: no public STUN server is added.

    ``jitter_frames``: 20 ms frames a receiver holds before handing audio on. ``0`` or ``None``
    hands on each packet as it arrives (the hub, which forwards and leaves buffering to the
    endpoints); ``N`` adds N x 20 ms. It absorbs reordering only: the smoothing of arrival times
    is the playout's job.
    """

    host_addresses: Sequence[str] = ()
    ice_servers: Sequence[IceServer] = ()
    jitter_frames: int | None = ENDPOINT_JITTER_FRAMES

    def __post_init__(self) -> None:
        if isinstance(self.host_addresses, str):
            raise TypeError("host_addresses is a list of addresses, not one string")
        object.__setattr__(self, "host_addresses", tuple(self.host_addresses))
        object.__setattr__(self, "ice_servers", tuple(self.ice_servers))
        if self.jitter_frames is not None and self.jitter_frames < 0:
            raise ValueError(f"jitter_frames must be 0 or more, not {self.jitter_frames}")

    def rtc_configuration(self) -> RTCConfiguration:
        """An explicit server list: an empty list keeps aiortc from adding its default STUN server."""
        return RTCConfiguration(iceServers=[server.to_aiortc() for server in self.ice_servers])


def new_peer_connection(policy: MediaPolicy, *, opus_passthrough: bool = False) -> RTCPeerConnection:
    """A peer connection that gathers, buffers and decodes as ``policy`` says.

    ``opus_passthrough``: its audio receivers hand on the received Opus payloads as ``av.Packet``
    instead of decoding them, for a hub leg that forwards audio (see :mod:`.bridge`).
    """
    return AdaptedPeerConnection(
        policy.rtc_configuration(),
        host_addresses=policy.host_addresses,
        jitter_frames=policy.jitter_frames or 0,
        opus_passthrough=opus_passthrough,
    )


def ice_servers_from_turn(turn: Mapping[str, object]) -> list[IceServer]:
    """The ICE servers in the hub's REGISTER answer: ``{"servers": [urls], "credentials": {...}}``."""
    urls = turn.get("servers")
    credentials = turn.get("credentials")
    if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
        raise ValueError(f"TURN info needs 'servers' as a list of URLs, got {urls!r}")
    if not isinstance(credentials, Mapping):
        raise ValueError("TURN info needs 'credentials' with 'username' and 'password'")
    username, password = credentials.get("username"), credentials.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ValueError("TURN credentials need 'username' and 'password' as strings")
    return [IceServer(urls=tuple(urls), username=username, credential=password)] if urls else []
