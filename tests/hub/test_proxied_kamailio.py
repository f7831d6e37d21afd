"""One hub behind a real Kamailio edge (deploy/kamailio/, tests/kamailio/edge.py): units of our SDK
over WSS to the edge, the edge relaying to the hub over SIP/TCP (docs/proxy.md)."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from websockets.asyncio.client import connect

from intercom.hub import HubConfig
from intercom.hub.edge_flows import EdgeFlow
from intercom.sdk import CallStatus
from intercom.sip import Response

from ..conftest import Hub, RawSip, replay
from ..kamailio.edge import Edge, kamailio_program
from ..units import DESK_HZ, DOOR_HZ, STEP, door_and_desk

pytestmark = pytest.mark.skipif(kamailio_program() is None, reason="kamailio is not installed (scripts/setup.sh)")


@pytest.fixture
def hub_config(hub_config: HubConfig) -> HubConfig:
    return replace(hub_config, sip_proxy_listen="127.0.0.1:0", sip_proxies=("127.0.0.1",))


@pytest.fixture
async def edge(hub: Hub, tmp_path: Path, tls_files: tuple[Path, Path]) -> AsyncIterator[Edge]:
    edge = Edge(tmp_path / "edge", [hub.running.app.state.edge.flows.address.host], tls_files)
    await edge.start()
    try:
        yield edge
    finally:
        await edge.stop()


def through(edge: Edge, hub: Hub, cert: Path) -> SimpleNamespace:
    """The hub as a unit behind ``edge`` sees it: the edge's address and certificate, the hub's tokens."""
    config = SimpleNamespace(secure=True, cert_file=cert)
    return SimpleNamespace(address=edge.host, token=hub.token, running=SimpleNamespace(config=config))


async def test_door_calls_desk_through_the_edge_with_audio_both_ways(
    hub: Hub, edge: Edge, tls_files: tuple[Path, Path], unit_at
) -> None:
    async with asyncio.timeout(STEP):
        door, desk = await door_and_desk(hub, functools.partial(unit_at, through(edge, hub, tls_files[0])))
    [binding] = await hub.running.registrar.find("desk")
    assert isinstance(binding.connection, EdgeFlow) and binding.path

    call = door.start_call()
    incoming = await desk.next_incoming()
    answered = await desk.accept(incoming)
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    async with asyncio.timeout(STEP):  # each hears the other's tone
        await call.sink.wait_until(lambda: call.sink.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=15), STEP)
        await answered.sink.wait_until(
            lambda: answered.sink.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=15), STEP
        )
    async with asyncio.timeout(STEP):
        await call.disconnect()
    await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
    assert hub.running.app.state.calls.answered == 1


async def test_the_published_register_through_the_edge(hub: Hub, edge: Edge, tls_files: tuple[Path, Path]) -> None:
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    async with asyncio.timeout(STEP):
        websocket = await connect(edge.url, subprotocols=["sip"], ssl=trust)  # type: ignore[list-item]
    try:
        response = await RawSip(websocket).exchange(replay("register-first.sip", edge.host, hub.token("desk")))
        assert isinstance(response, Response) and response.status_code == 200, response
        assert response.headers.get("Content-Type") == "application/json"
        [binding] = await hub.running.registrar.find("desk")
        assert isinstance(binding.connection, EdgeFlow)
        assert binding.connection.key[1].startswith("edge1;127.0.0.1:")
    finally:
        async with asyncio.timeout(STEP):
            await websocket.close()


async def test_a_units_websocket_closing_at_the_edge_drops_its_binding_at_the_hub(
    hub: Hub, edge: Edge, tls_files: tuple[Path, Path]
) -> None:
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    async with asyncio.timeout(STEP):
        websocket = await connect(edge.url, subprotocols=["sip"], ssl=trust)  # type: ignore[list-item]
        response = await RawSip(websocket).exchange(replay("register-first.sip", edge.host, hub.token("desk")))
        assert isinstance(response, Response) and response.status_code == 200, response
        assert await hub.running.registrar.find("desk")
        await websocket.close()  # no un-REGISTER: the socket just goes, as when a unit loses power
        while await hub.running.registrar.find("desk"):  # the edge tells the hub (NOTIFY, ~1 s later)
            await asyncio.sleep(0.02)  # polling the hub's bindings, with the deadline above
