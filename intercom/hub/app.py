"""The hub's ASGI app: the SIP WebSocket endpoint at ``/``, ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from .. import __version__
from .config import HubConfig
from .registrar import Registrar
from .sip_service import SipService
from .storage import Storage

EXPIRY_SWEEP_SECONDS = 5.0


class HubApp:
    """The hub's ASGI entry point: WebSockets at ``/`` go straight to the SIP service, the rest
    (HTTP, lifespan) to FastAPI.

    FastAPI's middleware stack wraps every frame sent and costs ~10 KB per connection, which the
    SIP socket, the hot path, has no use for.
    """

    def __init__(self, api: FastAPI, sip: SipService) -> None:
        self.api = api
        self.sip = sip

    @property
    def state(self) -> State:
        return self.api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/":
            await self.sip.serve(WebSocket(scope, receive, send))
        else:
            await self.api(scope, receive, send)


def create_app(config: HubConfig, storage: Storage | None = None) -> HubApp:
    storage = storage or Storage(config.data_dir)
    registrar = Registrar(config, storage.get_key)
    sip = SipService(registrar)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep_expired(registrar))
        try:
            yield
        finally:
            sweeper.cancel()

    app = FastAPI(title="intercom hub", version=__version__, lifespan=lifespan)
    app.state.config = config
    app.state.storage = storage
    app.state.registrar = registrar
    app.state.sip = sip

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "version": __version__}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        return (
            "# TYPE intercom_sip_connections gauge\n"
            f"intercom_sip_connections {len(sip.connections)}\n"
            "# TYPE intercom_registrations gauge\n"
            f"intercom_registrations {registrar.binding_count}\n"
        )

    return HubApp(app, sip)


async def _sweep_expired(registrar: Registrar) -> None:
    while True:
        await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
        registrar.expire()
