"""The hub's own HTTP requests, bounded as :class:`~intercom.http_client.OutboundPolicy` says: where
they may connect, how many redirects they follow, and how much of an answer they read.

The address is checked where the connection is made: :class:`GuardedBackend` resolves the name
itself, refuses it when any of its addresses is loopback or link-local, and connects to the very
address it checked. A name that answers a public address to a first look-up and 127.0.0.1 to the
next (DNS rebinding) gains nothing, and every redirect's target goes through the same door.
TLS still checks the certificate against the name.

Imported at first need, off the event loop (:func:`intercom.http_client.new_client`): it imports httpx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpcore
import httpx

from .http_client import OutboundPolicy, OutboundRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def refusal(address: Address) -> str | None:
    """Why the hub may not connect to ``address`` unless loopback targets are allowed, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback or address.is_unspecified:  # 0.0.0.0 and :: reach this machine too
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses it resolved and checked itself."""

    def __init__(self, allow_loopback: bool, inner: httpcore.AsyncNetworkBackend) -> None:
        self.allow_loopback = allow_loopback
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.checked_addresses(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host}: no address within {timeout:g} s") from None
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as error:
                failure = error
        assert failure is not None  # getaddrinfo answers at least one address or raises
        raise failure

    async def checked_addresses(self, host: str, port: int) -> list[Address]:
        """The addresses ``host`` resolves to, all of them allowed, or :class:`OutboundRefused`."""
        try:
            addresses: list[Address] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as error:
                raise httpcore.ConnectError(f"{host}: {error.strerror}") from None
            addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
        if not self.allow_loopback:
            # all or nothing: a name with one private-to-the-machine address is not to be tried at all
            for address in addresses:
                reason = refusal(address)
                if reason is not None:
                    shown = host if str(address) == host else f"{host} ({address})"
                    setting = "allow_loopback: intercom hub --allow-loopback-requests"
                    raise OutboundRefused(f"{shown} is {reason}: refused ({setting})")
        return addresses

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused(f"{path}: the hub's requests go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over :class:`GuardedBackend`. httpx takes no network backend of its own
    choosing, so its connection pool's is wrapped: a check fails loudly if httpcore moves it."""

    def __init__(self, allow_loopback: bool) -> None:
        super().__init__(trust_env=False)  # no proxy from the environment: the address checked is the one reached
        pool = self._pool
        if not isinstance(pool, httpcore.AsyncConnectionPool) or not hasattr(pool, "_network_backend"):
            raise RuntimeError(
                "httpcore's AsyncConnectionPool has no _network_backend: intercom.outbound needs updating"
            )
        pool._network_backend = GuardedBackend(allow_loopback, pool._network_backend)


def guarded_client(policy: OutboundPolicy, **options: Any) -> httpx.AsyncClient:
    """A client that connects only where ``policy`` allows and follows no redirect by itself."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy.allow_loopback), trust_env=False, follow_redirects=False, **options
    )


@asynccontextmanager
async def opened(
    client: httpx.AsyncClient,
    policy: OutboundPolicy,
    method: str,
    url: str,
    follow_redirects: bool = True,
    **options: Any,
) -> AsyncIterator[httpx.Response]:
    """The answer to ``method url`` once redirects are followed, its body not read yet (closed
    unread, an answer costs nothing however large).

    Each redirect is followed by hand (httpx builds the next request: a 303 becomes a GET, a
    credential stays with its origin), its target checked like the first, at most
    ``policy.max_redirects`` of them. Without ``follow_redirects`` a 3xx is the answer.
    """
    headers = {"Accept-Encoding": "identity", **options.pop("headers", {})}  # sizes are what comes on the wire
    request = client.build_request(method, url, headers=headers, **options)
    for _ in range(policy.max_redirects + 1):
        response = await client.send(request, stream=True)
        if response.next_request is None or not follow_redirects:
            try:
                yield response
            finally:
                await response.aclose()
            return
        await response.aclose()
        request = response.next_request
    raise OutboundRefused(f"more than {policy.max_redirects} redirects ({policy.setting('max_redirects')})")


async def chunks(response: httpx.Response, max_bytes: int, setting: str) -> AsyncIterator[bytes]:
    """The answer's body as it comes, refused as soon as it is known to be more than ``max_bytes``."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        # a compressed answer could expand a thousandfold before it is counted
        raise OutboundRefused(f"the answer is compressed ({encoding}), and the hub asked for none")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise OutboundRefused(f"the answer is {declared} bytes, more than {max_bytes} ({setting})")
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received > max_bytes:
            raise OutboundRefused(f"the answer is more than {max_bytes} bytes ({setting})")
        yield chunk


async def read(
    client: httpx.AsyncClient,
    policy: OutboundPolicy,
    method: str,
    url: str,
    *,
    max_bytes: int,
    setting: str,
    **options: Any,
) -> tuple[httpx.Response, bytes]:
    """The answer to ``method url`` and its body, read as a stream up to ``max_bytes``."""
    async with opened(client, policy, method, url, **options) as response:
        body = b"".join([chunk async for chunk in chunks(response, max_bytes, setting)])
    return response, body
