"""Where the hub's own requests may connect: loopback and link-local addresses, however a name
resolves, only with the setting; LAN addresses always. Nothing here opens a connection: the
checks are asked directly (the requests themselves are in tests/media/test_media_files.py,
tests/flows/test_outbound_bounds.py and tests/hub/api/test_webhook_delivery.py)."""

from __future__ import annotations

import asyncio
import ipaddress

import httpcore
import pytest

from intercom.http_client import OutboundRefused
from intercom.outbound import GuardedBackend, GuardedTransport, refusal

from ..conftest import STEP

REFUSED = {
    "127.0.0.1": "a loopback address",
    "127.8.9.10": "a loopback address",
    "::1": "a loopback address",
    "::ffff:127.0.0.1": "a loopback address",  # IPv4-mapped: the same socket
    "0.0.0.0": "a loopback address",  # connecting to it reaches this machine
    "::": "a loopback address",
    "169.254.169.254": "a link-local address",  # cloud and router metadata services
    "fe80::1": "a link-local address",
}
ALLOWED = ["10.1.2.3", "172.16.0.5", "172.31.255.1", "192.168.1.20", "fd12:3456::1", "93.184.216.34", "2001:db8::1"]


@pytest.mark.parametrize(("address", "reason"), REFUSED.items())
def test_loopback_and_link_local_addresses_are_refused(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ALLOWED)
def test_lan_and_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


async def test_a_name_is_resolved_and_each_of_its_addresses_checked() -> None:
    guarded = GuardedBackend(allow_loopback=False, inner=httpcore.AnyIOBackend())
    with pytest.raises(OutboundRefused, match=r"^localhost \((127\.0\.0\.1|::1)\) is a loopback address: refused"):
        async with asyncio.timeout(STEP):
            await guarded.checked_addresses("localhost", 80)
    with pytest.raises(OutboundRefused, match=r"^169\.254\.169\.254 is a link-local address: refused \(allow_loopback"):
        await guarded.checked_addresses("169.254.169.254", 80)
    assert await guarded.checked_addresses("192.168.1.20", 80) == [ipaddress.ip_address("192.168.1.20")]


async def test_with_the_setting_loopback_names_resolve_to_what_is_connected() -> None:
    allowed = GuardedBackend(allow_loopback=True, inner=httpcore.AnyIOBackend())
    async with asyncio.timeout(STEP):
        addresses = await allowed.checked_addresses("localhost", 80)
    assert addresses and all(address.is_loopback for address in addresses)


def test_the_transport_connects_through_the_guard() -> None:
    """httpx builds its own connection pool: the guard must be the pool's network backend."""
    transport = GuardedTransport(allow_loopback=False)
    backend = transport._pool._network_backend  # type: ignore[attr-defined]
    assert isinstance(backend, GuardedBackend) and backend.allow_loopback is False
