"""A broker that takes the connection and never answers: the hub's calls go on as if there were none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from intercom.hub.mqtt.settings import MqttSettings

from ..units import STEP, door_and_desk
from .test_bridge import a_call


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A TCP port on 127.0.0.1 that accepts and then says nothing: a hung broker."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def hub_config(hub_config, black_hole):
    return replace(hub_config, mqtt=MqttSettings.from_url(f"mqtt://127.0.0.1:{black_hole}", queue_size=5))


async def test_a_call_through_a_hub_whose_broker_hangs_works(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit)
    bridge = hub.running.app.state.mqtt
    async with asyncio.timeout(STEP):
        await a_call(hub, door, desk)
    assert not bridge.connected
    assert bridge.dropped > 0  # the call's events beyond the queue's 5 went, and nothing waited for them
