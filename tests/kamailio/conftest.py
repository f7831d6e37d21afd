"""A real Kamailio edge (deploy/kamailio/kamailio.cfg) on 127.0.0.1 with fake hubs behind it, and
units as real WebSocket clients over TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from ..conftest import RawSip
from ..units import STEP
from .edge import Edge, FakeHub, kamailio_program

StartEdge = Callable[..., Awaitable[Edge]]
OpenUnit = Callable[..., Awaitable[RawSip]]


@pytest.fixture
async def start_edge(tmp_path: Path, tls_files: tuple[Path, Path]) -> AsyncIterator[StartEdge]:
    """Starts edges: ``await start_edge(["127.0.0.1:5071", ...], PIKE_DENSITY=20)``; stopped at teardown."""
    if kamailio_program() is None:
        pytest.skip("kamailio is not installed (scripts/setup.sh installs it)")
    edges: list[Edge] = []

    async def start(hubs: list[str], **settings: str | int | None) -> Edge:
        edge = Edge(tmp_path / f"edge{len(edges) + 1}", hubs, tls_files, settings)
        edges.append(edge)
        await edge.start()
        return edge

    yield start
    for edge in edges:
        await edge.stop()


@pytest.fixture
async def fake_hubs() -> AsyncIterator[list[FakeHub]]:
    """Two fake hubs, listening."""
    hubs = [FakeHub(), FakeHub()]
    for hub in hubs:
        await hub.start()
    yield hubs
    for hub in hubs:
        await hub.stop()


@pytest.fixture
def fake_hub(fake_hubs: list[FakeHub]) -> FakeHub:
    return fake_hubs[0]


@pytest.fixture
async def edge(start_edge: StartEdge, fake_hub: FakeHub) -> Edge:
    """An edge with one hub behind it."""
    return await start_edge([fake_hub.address])


@pytest.fixture
async def open_unit(tls_files: tuple[Path, Path]) -> AsyncIterator[OpenUnit]:
    """Units: ``await open_unit(edge, source="127.0.0.3")`` is a SIP WebSocket to the edge over TLS
    trusting the test's certificate, from ``source``; closed at teardown."""
    opened: list[ClientConnection] = []
    trust = ssl.create_default_context(cafile=str(tls_files[0]))

    async def open_unit(edge: Edge, source: str = "127.0.0.1", **options: object) -> RawSip:
        async with asyncio.timeout(STEP):
            websocket = await connect(
                edge.url,
                subprotocols=["sip"],
                ssl=trust,
                local_addr=(source, 0),
                **options,  # type: ignore[list-item,arg-type]
            )
        opened.append(websocket)
        return RawSip(websocket)

    yield open_unit
    for websocket in opened:
        async with asyncio.timeout(STEP):
            await websocket.close()
