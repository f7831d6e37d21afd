"""Fixtures shared by the suites: a real hub on 127.0.0.1, keys, tokens, raw SIP sockets."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from websockets.asyncio.client import ClientConnection, connect

from bench.postgres import TEMPLATE, Cluster
from intercom.auth import ADMIN, AccessKey, IncomingCapability, OutgoingCapability, mint_token
from intercom.http_client import OutboundPolicy
from intercom.hub import HubConfig, RunningHub, Storage, blocking, running_hub
from intercom.media import MediaPolicy, RecordingSink, ToneSource
from intercom.sdk import CallAudio, Client, ClientStatus
from intercom.sip import Request, Response, parse_message

from .units import LOOPBACK, STEP, Events, Unit

HUB_LOOPBACK = MediaPolicy(host_addresses=LOOPBACK, jitter_frames=0)
ENDPOINT_LOOPBACK = MediaPolicy(host_addresses=LOOPBACK)

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"

# CI replays the same examples every run, so that a red build always means a change broke
# something; a developer's run keeps exploring new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@dataclass
class Hub:
    running: RunningHub
    storage: Storage
    key: AccessKey

    @property
    def address(self) -> str:
        return self.running.address

    def token(
        self, identity: str = "desk", *, incoming: bool = True, outgoing: str | None = None, ttl: int = 600
    ) -> str:
        return unit_token(self.key, identity, incoming=incoming, outgoing=outgoing, ttl=ttl)


def unit_token(
    key: AccessKey, identity: str, *, incoming: bool = True, outgoing: str | None = None, ttl: int = 600
) -> str:
    """A token signed with ``key``: calls to ``identity`` (``incoming``), calls it starts with the
    call flow ``outgoing``."""
    capabilities: list[IncomingCapability | OutgoingCapability] = []
    if incoming:
        capabilities.append(IncomingCapability(identity))
    if outgoing is not None:
        capabilities.append(OutgoingCapability(outgoing, identity))
    return mint_token(key, capabilities, ttl=ttl)


LOOPBACK_ALLOWED = OutboundPolicy(allow_loopback=True)  # the hub's requests may reach the tests' own servers


@pytest.fixture(autouse=True)
def _umask_restored() -> Any:
    """`intercom hub` and `intercom appliance` set the process's umask to 077, as their service does;
    run in this process by a test, that must not make the files of the tests after it private."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


@pytest.fixture
def hub_config(tmp_path: Path, request: pytest.FixtureRequest) -> HubConfig:
    """A hub on 127.0.0.1 whose media offers 127.0.0.1 too: the only address tests may use.

    A test whose flows or webhooks reach a server of its own on 127.0.0.1 is marked
    ``loopback_requests``: its hub allows them, as ``--allow-loopback-requests`` does.
    """
    allow = request.node.get_closest_marker("loopback_requests") is not None
    return HubConfig(
        data_dir=tmp_path / "hub",
        host="127.0.0.1",
        port=0,
        media=HUB_LOOPBACK,
        outbound=LOOPBACK_ALLOWED if allow else OutboundPolicy(),
    )


@pytest.fixture
async def hub(hub_config: HubConfig) -> AsyncIterator[Hub]:
    storage = Storage(hub_config.data_dir)
    key = await storage.create_key("tests", ADMIN)
    async with asyncio.timeout(STEP):
        context = running_hub(hub_config, storage)
        running = await context.__aenter__()
    try:
        yield Hub(running, storage, key)
    finally:
        async with asyncio.timeout(STEP):
            await context.__aexit__(None, None, None)
        storage.close()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A throwaway PostgreSQL server for the session (bench/postgres.py), its template database
    migrated: each test that asks for a database gets a fresh copy of it."""
    from intercom.hub.storage_postgresql import PostgresStorage

    cluster = Cluster()
    cluster.start()
    try:

        async def migrate() -> None:
            template = cluster.url(TEMPLATE)
            data_dir = tmp_path_factory.mktemp("template")
            await (await PostgresStorage.open(template, data_dir, "template", password=cluster.password)).aclose()

        blocking(migrate())
        yield cluster
    finally:
        cluster.stop()


class RawSip:
    """A bare SIP-over-WebSocket peer: sends text frames, reads parsed messages."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket

    async def send(self, message: Request | Response | str | bytes) -> None:
        if isinstance(message, Request | Response):
            message = message.text()
        await self.websocket.send(message)

    async def receive(self) -> Request | Response:
        async with asyncio.timeout(STEP):
            return parse_message(await self.websocket.recv())

    async def final_response(self) -> Response:
        """The next final answer, past any provisional one and any request the hub sends meanwhile."""
        async with asyncio.timeout(STEP):
            while True:
                message = await self.receive()
                if isinstance(message, Response) and message.status_code >= 200:
                    return message

    async def exchange(self, message: Request | str | bytes) -> Response:
        await self.send(message)
        reply = await self.receive()
        assert isinstance(reply, Response), reply
        return reply


@pytest.fixture
async def raw_sip(hub: Hub) -> AsyncIterator[Callable[[], object]]:
    """Factory of raw SIP connections to the hub, closed at teardown."""
    opened: list[ClientConnection] = []

    async def open_raw() -> RawSip:
        async with asyncio.timeout(STEP):
            websocket = await connect(f"ws://{hub.address}/", subprotocols=["sip"])  # type: ignore[list-item]
        opened.append(websocket)
        return RawSip(websocket)

    yield open_raw
    for websocket in opened:
        async with asyncio.timeout(STEP):
            await websocket.close()


async def end_with_its_input(process: asyncio.subprocess.Process) -> None:
    """Close a child's stdin, which tells it to finish, and wait for it; killed if it takes longer
    than a step. What it still writes is read and dropped: a child blocked on a full pipe never
    sees its input end, and asyncio waits for its pipes' end too, even once it is killed."""
    if process.returncode is not None:
        return
    assert process.stdin is not None
    process.stdin.close()
    try:
        async with asyncio.timeout(STEP):
            await process.communicate()
    except TimeoutError:
        process.kill()
        async with asyncio.timeout(STEP):
            await process.communicate()


def vector(name: str) -> str:
    return (VECTORS / name).read_bytes().decode()


def replay(name: str, host: str, token: str | None = None) -> str:
    """A captured browser message aimed at our hub: its host rewritten, a real token put in."""
    text = vector(name).replace("127.0.0.1:8443", host)
    if token is not None:
        lines = [f"WebRTC-Token: {token}" if line.startswith("WebRTC-Token:") else line for line in text.split("\r\n")]
        text = "\r\n".join(lines)
    return text


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl for this test run."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def unit_at() -> AsyncIterator[Callable[..., Any]]:
    """Connected clients of the hub given first (the test's, or one as units behind an edge see
    it), each sending a tone of its own; destroyed at teardown: ``await unit_at(hub, "desk", 880.0)``."""
    units: list[Unit] = []

    async def make(hub: Hub, *args: Any, **kwargs: Any) -> Unit:
        unit = await connect_unit(hub, *args, **kwargs)
        units.append(unit)
        return unit

    yield make
    for unit in units:
        async with asyncio.timeout(STEP):
            await unit.client.destroy()


@pytest.fixture
def make_unit(hub, unit_at) -> Callable[..., Any]:
    """Connected clients of the test's hub (:func:`unit_at`)."""
    return functools.partial(unit_at, hub)


async def connect_unit(
    hub: Hub,
    identity: str,
    sound: float | CallAudio,
    outgoing: str | None = None,
    incoming: bool = True,
    record: bool = True,
    events: Events | None = None,
    token: str | None = None,
) -> Unit:
    """A client of ``hub``, connected, whose calls send a tone of ``sound`` Hz (recorded by a
    :class:`RecordingSink`) or use ``sound``'s source and sink; on loopback either way. Its events
    are recorded (in ``events`` if given) unless ``record`` is off (a recorder keeps every call it saw alive).
    Its token is ``token`` (a paired phone's, say) or one the test's admin key signs."""
    token = token or hub.token(identity, incoming=incoming, outgoing=outgoing)
    if isinstance(sound, CallAudio):
        audio = replace(sound, policy=replace(sound.policy, host_addresses=LOOPBACK))
    else:
        audio = CallAudio(source=lambda: ToneSource(sound), sink=RecordingSink, policy=ENDPOINT_LOOPBACK)
    config = hub.running.config
    trust = ssl.create_default_context(cafile=str(config.cert_file)) if config.secure else None
    client = Client(host=hub.address, refresh_token=lambda: token, secure=config.secure, ssl_context=trust, audio=audio)
    events = events or Events()
    for name in ("status", "incoming", "canceled", "error") if record else ():
        client.on(name, events.record(name))
    async with asyncio.timeout(STEP):
        await client.setup(jwt=token)
    assert client.status is ClientStatus.CONNECTED
    return Unit(client, events)
