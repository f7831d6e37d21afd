"""IP addresses and host:port pairs as the settings and the SIP/TCP transport read them: small and
free of sockets, so that reading a hub's settings loads nothing of the transport itself."""

from __future__ import annotations

import ipaddress


def normalised_host(address: str) -> str:
    """An IP address in one spelling (``::1`` for ``0:0::1``), so that addresses compare equal;
    raises :class:`ValueError` for anything else."""
    return str(ipaddress.ip_address(address.strip().removeprefix("[").removesuffix("]")))


def split_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as a pair; raises :class:`ValueError` when unreadable."""
    host, colon, port = text.strip().rpartition(":")
    if not colon or (host.count(":") and not host.startswith("[")):  # no port, or a bare IPv6 address
        if default_port is None:
            raise ValueError(f"{text!r} is not host:port")
        host, port = text.strip(), str(default_port)
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{text!r} has no valid port")
    return host.removeprefix("[").removesuffix("]"), int(port)
