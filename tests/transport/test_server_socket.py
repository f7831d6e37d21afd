"""The hub's WebSocket protocol: SIP at ``/`` in place, everything else still reaches the ASGI app."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from intercom.auth import ADMIN, IncomingCapability, mint_token
from intercom.hub import HubConfig, Storage, running_hub
from intercom.sdk.registration import RegistrationState
from intercom.sip import parse_message

from ..conftest import STEP


async def test_a_fragmented_register_is_reassembled_and_answered(hub, raw_sip):
    sip = await raw_sip()
    text = RegistrationState(hub.address).build(hub.token()).text()
    async with asyncio.timeout(STEP):
        await sip.websocket.send([text[:100], text[100:400], text[400:]])  # three frames, one message
    response = await sip.receive()
    assert response.status_code == 200


async def test_a_register_in_a_binary_frame_is_answered(hub, raw_sip):
    sip = await raw_sip()
    response = await sip.exchange(RegistrationState(hub.address).build(hub.token()).text().encode())
    assert response.status_code == 200


async def test_the_answer_keeps_the_subprotocol_and_the_server_header(hub):
    async with asyncio.timeout(STEP):
        async with connect(f"ws://{hub.address}/?transport=ws", subprotocols=["chat", "sip"]) as websocket:
            assert websocket.subprotocol == "sip"
            assert websocket.response.headers["Server"] == "uvicorn"
            await websocket.send(RegistrationState(hub.address).build(hub.token()).text())
            assert parse_message(await websocket.recv()).status_code == 200


async def test_other_websocket_paths_go_to_the_asgi_app_which_refuses_them(hub):
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(STEP):
            await connect(f"ws://{hub.address}/elsewhere", subprotocols=["sip"])
    assert refused.value.response.status_code == 403


async def test_http_is_served_on_the_same_port(hub):
    def get() -> bytes:
        with urllib.request.urlopen(f"http://{hub.address}/healthz", timeout=STEP) as answer:
            return answer.read()

    async with asyncio.timeout(STEP):
        body = await asyncio.to_thread(get)
    assert b'"status":"ok"' in body


async def test_stopping_the_hub_closes_sip_sockets_with_1012_and_drops_their_bindings(tmp_path):
    config = HubConfig(data_dir=tmp_path / "hub", host="127.0.0.1", port=0)
    storage = Storage(config.data_dir)
    key = await storage.create_key("tests", ADMIN)
    token = mint_token(key, [IncomingCapability("desk")], ttl=600)
    try:
        async with asyncio.timeout(STEP):
            async with running_hub(config, storage) as running:
                websocket = await connect(f"ws://{running.address}/", subprotocols=["sip"])
                await websocket.send(RegistrationState(running.address).build(token).text())
                assert parse_message(await websocket.recv()).status_code == 200
                assert len(running.registrar.lookup("desk")) == 1
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(STEP):
                await websocket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert running.registrar.lookup("desk") == []
        assert running.app.state.sip.connections == set()
    finally:
        storage.close()
