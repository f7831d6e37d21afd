"""The hub's connection limits over real sockets: in all and per source address (refused at accept),
the handshake deadline, the register timeout, the SIP message rate; each counted in /metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import resource
import ssl
from collections.abc import Callable

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from intercom.hub import HubConfig
from intercom.hub.app import create_app
from intercom.hub.sip_service import REGISTER_CLOSE_CODE
from intercom.sdk.registration import RegistrationState
from intercom.sip import parse_message
from intercom.transport.limits import ConnectionLimits, RefusalLog, fit_to_descriptors, raise_descriptor_limit
from intercom.transport.server_socket import RATE_CLOSE_CODE

from ..conftest import STEP, RawSip

POLL = 0.01


def options(address: str) -> str:
    """An OPTIONS in a transaction of its own (the REGISTER the SDK sends, renamed)."""
    return RegistrationState(address).build("").text().replace("REGISTER", "OPTIONS")


async def until(condition: Callable[[], bool], timeout: float = STEP) -> None:
    """Poll ``condition`` until it holds (the hub's counters change inside its own callbacks)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(POLL)


async def tcp(hub, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = hub.address.rsplit(":", 1)
    async with asyncio.timeout(STEP):
        return await asyncio.open_connection(host, int(port), local_addr=(source, 0))


async def closed_by_hub(reader: asyncio.StreamReader) -> bytes:
    """Everything the hub sent until it closed the connection."""
    async with asyncio.timeout(STEP):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


def gate(hub):
    return hub.running.app.state.gate


async def metric(hub, reason: str) -> int:
    headers = {"Authorization": f"AccessKey {hub.key.secret}"}
    async with httpx.AsyncClient(base_url=f"http://{hub.address}", timeout=STEP) as http:
        text = (await http.get("/metrics", headers=headers)).text
    (line,) = [
        line
        for line in text.splitlines()
        if line.startswith(f'intercom_connections_refused_total{{reason="{reason}"}}')
    ]
    return int(line.rpartition(" ")[2])


@pytest.fixture
def hub_config(hub_config: HubConfig, request: pytest.FixtureRequest, tls_files) -> HubConfig:
    """Small limits; ``indirect`` parametrisation with a dict changes some (``"tls"``: wss/https)."""
    config = dataclasses.replace(
        hub_config,
        max_connections=4,
        max_connections_per_source=2,
        handshake_timeout=0.5,
        register_timeout=0.5,
        sip_messages_per_second=5,
        sip_message_burst=10,
    )
    changes = dict(getattr(request, "param", {}))
    if changes.pop("tls", False):
        config = dataclasses.replace(config, cert_file=tls_files[0], key_file=tls_files[1])
    return dataclasses.replace(config, **changes)


async def registered(hub, source: str) -> RawSip:
    """A SIP connection from ``source`` with a valid REGISTER: vouched for."""
    async with asyncio.timeout(STEP):
        websocket = await connect(f"ws://{hub.address}/", subprotocols=["sip"], local_addr=(source, 0))  # type: ignore[list-item]
    sip = RawSip(websocket)
    assert (await sip.exchange(RegistrationState(hub.address).build(hub.token("desk")))).status_code == 200
    return sip


LONG_DEADLINES = {"handshake_timeout": 60, "register_timeout": 60}  # only the limit in all at work


@pytest.mark.parametrize("hub_config", [LONG_DEADLINES], indirect=True)
async def test_over_the_total_the_oldest_unregistered_is_closed_for_a_newcomer(hub):
    door = await registered(hub, "127.0.0.2")
    oldest, *others = [await tcp(hub, f"127.0.0.{source}") for source in (3, 4, 5)]
    await until(lambda: gate(hub).count == 4)
    newcomer = await registered(hub, "127.0.0.6")  # the limit reached, and yet it got in
    assert await closed_by_hub(oldest[0]) == b""
    assert gate(hub).refused["evicted"] == 1 and gate(hub).refused["max_connections"] == 0
    for sip in (door, newcomer):  # registered: never pushed out
        assert (await sip.exchange(options(hub.address))).status_code == 200
    for _, writer in others:
        writer.close()
    for sip in (door, newcomer):
        await sip.websocket.close()
    assert await metric(hub, "evicted") == 1


@pytest.mark.parametrize("hub_config", [LONG_DEADLINES], indirect=True)
async def test_when_all_are_registered_a_newcomer_is_refused_at_accept_with_a_503(hub):
    units = [await registered(hub, f"127.0.0.{source}") for source in (2, 3, 4, 5)]
    reader, _ = await tcp(hub, "127.0.0.9")
    answer = await closed_by_hub(reader)
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"Retry-After: 10" in answer
    assert gate(hub).refused["max_connections"] == 1
    await units.pop().websocket.close()  # one leaves: another may come
    await until(lambda: gate(hub).count == 3)
    units.append(await registered(hub, "127.0.0.9"))
    for sip in units:
        await sip.websocket.close()
    await until(lambda: gate(hub).count == 0)
    assert await metric(hub, "max_connections") == 1


async def test_connections_over_the_limit_per_source_are_refused_others_come_in(hub):
    held = [await tcp(hub, "127.0.0.2") for _ in range(2)]
    await until(lambda: gate(hub).per_source["127.0.0.2"] == 2)
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(STEP):
            await connect(f"ws://{hub.address}/", subprotocols=["sip"], local_addr=("127.0.0.2", 0))  # type: ignore[list-item]
    assert refused.value.response.status_code == 503
    assert gate(hub).refused["max_connections_per_source"] == 1
    async with asyncio.timeout(STEP):
        other = await connect(f"ws://{hub.address}/", subprotocols=["sip"], local_addr=("127.0.0.3", 0))  # type: ignore[list-item]
    response = await RawSip(other).exchange(options(hub.address))
    assert response.status_code == 200
    await other.close()
    for _, writer in held:
        writer.close()
    assert await metric(hub, "max_connections_per_source") == 1


async def test_a_header_trickled_line_by_line_is_cut_at_the_handshake_deadline(hub):
    complete = RawSip(await connect(f"ws://{hub.address}/", subprotocols=["sip"]))  # type: ignore[list-item]
    assert (await complete.exchange(RegistrationState(hub.address).build(hub.token("desk")))).status_code == 200
    reader, writer = await tcp(hub)
    writer.write(b"GET / HTTP/1.1\r\nHost: hub\r\n")
    cut = asyncio.create_task(closed_by_hub(reader))
    lines = 0
    while not cut.done():  # a header line every 0.1 s: never a complete head
        writer.write(b"X-Slow-%d: 1\r\n" % lines)
        lines += 1
        await asyncio.wait([cut], timeout=0.1)
    assert await cut == b""
    assert gate(hub).refused["handshake_timeout"] == 1
    assert lines >= 3  # it was kept trickling until the deadline, not refused at once
    # the complete one, as old as the deadline by now, is still served
    assert (await complete.exchange(options(hub.address))).status_code == 200
    await complete.websocket.close()


async def test_a_silent_http_client_is_cut_and_an_api_request_is_not(hub):
    reader, _ = await tcp(hub)
    async with httpx.AsyncClient(base_url=f"http://{hub.address}", timeout=STEP) as http:
        assert (await http.get("/healthz")).status_code == 200
        assert await closed_by_hub(reader) == b""
        assert (await http.get("/healthz")).status_code == 200  # the same kept-alive connection
    assert await metric(hub, "handshake_timeout") == 1


@pytest.mark.parametrize("hub_config", [{"tls": True}], indirect=True)
async def test_without_a_tls_handshake_cut_at_the_deadline_over_the_limit_closed_at_once(hub, tls_files):
    reader, _ = await tcp(hub)
    assert await closed_by_hub(reader) == b""
    assert gate(hub).refused["handshake_timeout"] == 1
    held = [await tcp(hub, "127.0.0.2") for _ in range(2)]
    await until(lambda: gate(hub).per_source["127.0.0.2"] == 2)
    reader, _ = await tcp(hub, "127.0.0.2")
    assert await closed_by_hub(reader) == b""  # before TLS: nothing it could read
    assert gate(hub).refused["max_connections_per_source"] == 1
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    async with asyncio.timeout(STEP):
        websocket = await connect(f"wss://{hub.address}/", subprotocols=["sip"], ssl=trust)  # type: ignore[list-item]
    await websocket.close()
    for _, writer in held:
        writer.close()


async def test_a_connection_that_never_registers_is_closed_a_registered_one_stays(hub, make_unit):
    unit = await make_unit("desk", 440)
    stranger = RawSip(await connect(f"ws://{hub.address}/", subprotocols=["sip"]))  # type: ignore[list-item]
    assert (await stranger.exchange(options(hub.address))).status_code == 200  # OPTIONS is no registration
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(STEP):
            await stranger.websocket.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (REGISTER_CLOSE_CODE, "not registered within 0.5 s")
    assert unit.client.status == "connected" and hub.running.registrar.lookup("desk")
    assert await metric(hub, "register_timeout") == 1


async def test_an_outgoing_only_client_registers_and_stays(hub, make_unit):
    unit = await make_unit("door", 440, outgoing="ring_desks", incoming=False)
    stranger = RawSip(await connect(f"ws://{hub.address}/", subprotocols=["sip"]))  # type: ignore[list-item]
    with pytest.raises(ConnectionClosed):  # its own deadline has passed once the stranger is closed
        async with asyncio.timeout(STEP):
            await stranger.websocket.recv()
    assert unit.client.status == "connected"
    assert gate(hub).refused["register_timeout"] == 1


async def test_a_client_over_the_message_rate_is_closed_after_its_burst(hub, raw_sip):
    sip = await raw_sip()
    answered = 0
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(100):
            await sip.send(options(hub.address))
        async with asyncio.timeout(STEP):
            while True:
                parse_message(await sip.websocket.recv())
                answered += 1
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (RATE_CLOSE_CODE, "more than 5 SIP messages/s")
    assert 10 <= answered < 20  # the burst, and what the rate refilled meanwhile; never the 100
    assert await metric(hub, "sip_message_rate") == 1


@pytest.mark.parametrize(
    "field", ["max_connections", "max_connections_per_source", "handshake_timeout", "sip_message_burst"]
)
def test_a_limit_of_zero_is_refused_naming_it(hub_config, field):
    with pytest.raises(ValueError, match=f"{field} must be above 0, not 0"):
        create_app(dataclasses.replace(hub_config, **{field: 0}))


def test_a_register_timeout_below_zero_is_refused(hub_config):
    with pytest.raises(ValueError, match="register_timeout must be above 0, not -1"):
        create_app(dataclasses.replace(hub_config, register_timeout=-1))


def test_the_descriptor_limit_is_raised_to_the_hard_one():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_descriptor_limit() == hard
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_the_connection_limit_is_lowered_to_fit_the_descriptors_or_the_start_refused(caplog):
    limits = ConnectionLimits(max_connections=1024)
    assert fit_to_descriptors(limits, available=524_288, reserve=256) is limits
    with caplog.at_level(logging.WARNING, logger="intercom.transport.limits"):
        assert fit_to_descriptors(limits, available=1024, reserve=256).max_connections == 768
    assert caplog.messages == [
        "only 1024 descriptors: max_connections lowered from 1024 to 768, 256 kept in reserve (raise LimitNOFILE)"
    ]
    with pytest.raises(ValueError, match=r"only 260 descriptors: with 256 in reserve .* that leaves 4 connections"):
        fit_to_descriptors(limits, available=260, reserve=256)


def test_refusals_are_logged_once_per_interval_with_their_count(caplog):
    now = [0.0]
    log = RefusalLog(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="intercom.transport.limits"):
        for _ in range(500):
            log.refuse("max_connections", "refused %s (setting max_connections)", "127.0.0.2")
        now[0] = 10.0
        log.refuse("max_connections", "refused %s (setting max_connections)", "127.0.0.2")
    assert log.refused["max_connections"] == 501
    assert [record.getMessage() for record in caplog.records] == [
        "refused 127.0.0.2 (setting max_connections) (1 refused since the last such line)",
        "refused 127.0.0.2 (setting max_connections) (500 refused since the last such line)",
    ]
