"""The SIP WebSocket and ``Origin``: a browser page may connect from the hub's own origin or an
allowed one only; a client that sends no Origin (our Python units) is let in."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from intercom.auth import ADMIN
from intercom.hub import HubConfig, Storage, running_hub
from intercom.sdk.registration import RegistrationState
from intercom.sip import parse_message

from ..conftest import HUB_LOOPBACK, STEP, Hub

ALLOWED = "https://Desk.example:8443"


@pytest.fixture
def hub_config(hub_config):
    return dataclasses.replace(hub_config, allowed_origins=(ALLOWED,))


async def registers(hub, origin: str | None, scheme: str = "ws", **options) -> bool:
    """Whether a WebSocket sending ``origin`` is let in, and then serves SIP."""
    headers = {"Origin": origin} if origin is not None else {}
    try:
        async with asyncio.timeout(STEP):
            async with connect(
                f"{scheme}://{hub.address}/", subprotocols=["sip"], additional_headers=headers, **options
            ) as websocket:
                await websocket.send(RegistrationState(hub.address).build(hub.token()).text())
                assert parse_message(await websocket.recv()).status_code == 200
                return True
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
        assert refused.response.body == b"Origin not allowed\n"
        return False


async def test_no_origin_is_let_in(hub):
    assert await registers(hub, None)


async def test_the_hubs_own_origin_is_let_in(hub):
    port = hub.running.config.port
    assert await registers(hub, f"http://{hub.address}")
    assert await registers(hub, f"HTTP://127.0.0.1:{port}")


async def test_an_allowed_origin_is_let_in_with_its_default_port_written_or_not(hub):
    assert await registers(hub, ALLOWED)
    assert await registers(hub, "https://desk.example:8443/")


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://127.0.0.1:{port}",  # the hub's host, but not its scheme
        "http://127.0.0.1:1",  # nor its port
        "http://desk.example:8443",  # the allowed one's host, in plain http
        "null",  # a sandboxed page or a file
        "",
        "http://[::1",
    ],
)
async def test_any_other_origin_is_refused_with_403_and_logged(hub, caplog, origin):
    origin = origin.format(port=hub.running.config.port)
    caplog.set_level(logging.WARNING, logger="intercom.transport.server_socket")
    assert not await registers(hub, origin)
    assert any("Origin" in record.getMessage() for record in caplog.records)
    assert hub.running.registrar.binding_count == 0


async def test_over_wss_the_own_origin_is_https(tls_files, tmp_path):
    cert, key_file = tls_files
    config = HubConfig(data_dir=tmp_path / "hub", port=0, media=HUB_LOOPBACK, cert_file=cert, key_file=key_file)
    storage = Storage(config.data_dir)
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        async with asyncio.timeout(STEP), running_hub(config, storage) as running:
            hub = Hub(running, storage, await storage.create_key("tests", ADMIN))
            assert await registers(hub, f"https://{hub.address}", "wss", ssl=trust)
            assert not await registers(hub, f"http://{hub.address}", "wss", ssl=trust)
    finally:
        storage.close()
