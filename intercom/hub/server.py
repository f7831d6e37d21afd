"""Serving the hub with uvicorn, from the CLI or inside another asyncio program."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from ..transport import SipWebSocketProtocol
from ..transport.limits import fit_to_descriptors, raise_descriptor_limit
from .app import create_app
from .config import HubConfig
from .registrar import Registrar
from .storage import Storage

# A SIP message may be up to 64 KiB (intercom.sip.MAX_MESSAGE_SIZE). Frames a little larger
# still reach the parser, which answers 400 instead of the socket being closed.
MAX_FRAME_SIZE = 256 * 1024

log = logging.getLogger(__name__)


def uvicorn_config(config: HubConfig, storage: Storage | None = None, log_level: str = "info") -> uvicorn.Config:
    app = create_app(config, storage)
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        ssl_certfile=str(config.cert_file) if config.cert_file else None,
        ssl_keyfile=str(config.key_file) if config.key_file else None,
        ws=functools.partial(  # type: ignore[arg-type]
            SipWebSocketProtocol, endpoint=app.state.sip, allowed_origins=config.allowed_origins, gate=app.state.gate
        ),
        # asyncio's own loop: it accepts through the listening socket's accept(), which the
        # connection gate answers (uvloop accepts in C, past it).
        loop="asyncio",
        ws_max_size=MAX_FRAME_SIZE,
        # SIP messages are small and sent one at a time: compression saved little and cost
        # ~42 KB of zlib state per connection (bench/register.py).
        ws_per_message_deflate=False,
        log_level=log_level,
        access_log=False,
        lifespan="on",
    )


def gated_listener(uv_config: uvicorn.Config, sock: socket.socket | None = None) -> socket.socket:
    """The hub's listening socket (``sock``, or one bound to the configured address), its accept()
    answered by the connection limits; first the descriptors those limits need are made sure of."""
    state = uv_config.app.state  # type: ignore[union-attr]
    available = raise_descriptor_limit()
    state.gate.limits = limits = fit_to_descriptors(state.gate.limits, available, state.config.descriptor_reserve)
    log.info(
        "descriptors: %d available; at most %d connections (%d per source), %d kept in reserve",
        available,
        limits.max_connections,
        limits.max_connections_per_source,
        state.config.descriptor_reserve,
    )
    if sock is None:
        family = socket.AF_INET6 if ":" in uv_config.host else socket.AF_INET
        sock = socket.create_server((uv_config.host, uv_config.port), family=family, backlog=uv_config.backlog)
    return state.gate.listening(sock)


class _CliServer(uvicorn.Server):
    """uvicorn says where it serves only for sockets it bound itself: say it for ours too, once
    it accepts (scripts and tests wait for that line)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if sockets:
            self._log_started_message(sockets)


async def open_storage(config: HubConfig, check_after_crash: bool = True) -> Storage:
    """The hub's database: SQLite in ``data_dir``, or the PostgreSQL ``config.database`` names.
    ``check_after_crash``: a hub starting checks the SQLite file a crash may have left; the admin
    commands, which open it for a moment beside a running hub, do not."""
    if config.database is None:
        return Storage(config.data_dir, check_after_crash=check_after_crash)
    from .storage_postgresql import PostgresStorage  # only now: a unit never loads psycopg

    return await PostgresStorage.open(
        config.database,
        config.data_dir,
        hub_id=config.hub_id or socket.gethostname(),
        password=config.database_password,
        pool_size=config.database_pool_size,
        pool_timeout=config.database_pool_timeout,
    )


def run_hub(config: HubConfig, log_level: str = "info") -> None:
    """Serve until interrupted (the ``intercom hub`` command)."""
    asyncio.run(_serve(config, log_level))


async def _serve(config: HubConfig, log_level: str) -> None:
    storage = await open_storage(config)
    try:
        uv_config = uvicorn_config(config, storage, log_level=log_level)
        await _CliServer(uv_config).serve(sockets=[gated_listener(uv_config)])
    finally:
        await storage.aclose()


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the program embedding the hub."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningHub:
    """A hub serving inside this process."""

    config: HubConfig
    app: FastAPI

    @property
    def address(self) -> str:
        """``host:port``, as the SDK's ``Client(host=...)`` takes it."""
        return f"{self.config.host}:{self.config.port}"

    @property
    def registrar(self) -> Registrar:
        return self.app.state.registrar


@contextlib.asynccontextmanager
async def running_hub(
    config: HubConfig, storage: Storage | None = None, sock: socket.socket | None = None
) -> AsyncIterator[RunningHub]:
    """Run a hub in this event loop; ``config.port`` 0 picks a free port, written back. ``sock``:
    a listening socket bound beforehand (a unit binds its port before it builds the client)."""
    async with contextlib.AsyncExitStack() as stack:
        if storage is None and config.database is not None:
            storage = await open_storage(config)
            stack.push_async_callback(storage.aclose)
        async with _serving(config, storage, sock) as running:
            yield running


@contextlib.asynccontextmanager
async def _serving(config: HubConfig, storage: Storage | None, sock: socket.socket | None) -> AsyncIterator[RunningHub]:
    uv_config = uvicorn_config(config, storage, log_level="warning")
    server = _EmbeddedServer(uv_config)
    task = asyncio.create_task(server.serve(sockets=[gated_listener(uv_config, sock)]))
    while not server.started:
        if task.done():
            task.result()  # surfaces the start-up error
            raise RuntimeError("hub stopped during start-up")
        await asyncio.sleep(0.01)
    config.port = server.servers[0].sockets[0].getsockname()[1]
    logging.getLogger(__name__).info("hub listening on %s:%d", config.host, config.port)
    try:
        yield RunningHub(config, uv_config.app)
    finally:
        server.should_exit = True
        await task
