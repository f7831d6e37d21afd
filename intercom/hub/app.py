"""The hub's ASGI app (``/healthz``, ``/metrics``, the Voice API under ``/v1``) and the services it
carries in ``app.state``: ``sip``, ``calls``, ``webhooks``.

The SIP WebSocket at ``/`` is served next to the ASGI app, not through it: see
:mod:`intercom.transport.server_socket`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse

from .. import __version__
from ..auth import PHONES
from ..transport.limits import ConnectionGate, EndsHandshake
from . import api, ca_download, desk_api, desk_pages
from .api.common import metrics_reader
from .call_log import Later, Publishers
from .call_service import CallService
from .config import HubConfig
from .file_modes import make_private
from .mqtt.assistant import HomeAssistantLink
from .mqtt.bridge import MqttBridge
from .mqtt.events import MqttEvents
from .registrar import Registrar
from .retention import Retention
from .sip_service import SipService
from .storage import Storage
from .webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from .edge_endpoint import EdgeEndpoint

log = logging.getLogger(__name__)

EXPIRY_SWEEP_SECONDS = 5.0
# Heartbeats a hub carrying calls may miss before the others on its database take it for stopped:
# generous, as a hub only slow (a long pause, a busy disk) must not have its calls ended for it.
STOPPED_HUB_HEARTBEATS = 6
KEY_POLL_SECONDS = 0.5  # how soon a key revoked by `intercom keys revoke` ends its bindings and calls
SHUTDOWN_GRACE_SECONDS = 5.0
# Each limit that refuses or closes connections, as /metrics names it (all listed, 0 or not).
REFUSAL_REASONS = (
    "max_connections",
    "evicted",
    "max_connections_per_source",
    "handshake_timeout",
    "register_timeout",
    "sip_message_rate",
)


def create_app(config: HubConfig, storage: Storage | None = None) -> FastAPI:
    storage = storage or Storage(config.data_dir, check_after_crash=True)
    make_private(config.data_dir)  # the database's -wal and -shm included, now that they exist
    registrar = Registrar(config, storage.get_key)
    webhooks = WebhookDispatcher(storage, outbound=config.outbound)
    # Given the webhooks before it closes what a crash left open (calls.recover, at start-up), so
    # that they hear of that too.
    mqtt = MqttBridge(config.mqtt) if config.mqtt is not None else None
    publisher = (
        Publishers(webhooks, Later(Publishers(MqttEvents(mqtt), HomeAssistantLink(mqtt, config, registrar, storage))))
        if mqtt is not None
        else webhooks
    )
    calls = CallService(config, registrar, storage, storage.get_key, publisher=publisher)
    gate = ConnectionGate(config.connection_limits(), tls=config.secure)
    sip = SipService(registrar, calls, gate, config.register_timeout)
    proxied = config.sip_proxy_listener()
    edge = _edge_endpoint(config, registrar, sip, storage)
    retention = Retention(storage, calls.call_log, config.storage_limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await calls.recover()
        sweeper = asyncio.create_task(_sweep(registrar, calls, storage, config.heartbeat_seconds))
        pruner = asyncio.create_task(retention.run())
        await webhooks.start()
        if edge is not None and proxied is not None:
            await edge.start(proxied[0], proxied[1], config.max_connections_per_source)
        if mqtt is not None:
            await mqtt.start()  # connects in the background: a broker away delays nothing
        # Everything made so far (modules, the app, its OpenAPI models) lives as long as the hub:
        # kept out of the collector's reach, a full collection no longer walks it, which paused
        # the event loop, and so every call's set-up and audio, for 20-75 ms (bench/api.py).
        gc.freeze()
        try:
            yield
        finally:
            sweeper.cancel()
            pruner.cancel()
            if edge is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(edge.close(), SHUTDOWN_GRACE_SECONDS)
            # By now uvicorn has closed every socket, so each call is ending; let them release
            # their media before the loop stops, or aiortc's tasks die half-way.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(calls.wait_idle(), SHUTDOWN_GRACE_SECONDS)
            await calls.close()
            await webhooks.close()  # what is not sent yet is sent after the next start
            if mqtt is not None:
                await mqtt.close()
            await storage.stopped_cleanly()

    # The schema and its pages are served by api.install, for admin keys only.
    app = FastAPI(
        title="intercom hub", version=__version__, lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None
    )
    app.state.config = config
    app.state.storage = storage
    app.state.registrar = registrar
    app.state.sip = sip
    app.state.gate = gate
    app.state.edge = edge
    app.add_middleware(EndsHandshake, gate=gate)
    app.state.calls = calls
    app.state.webhooks = webhooks
    app.state.mqtt = mqtt
    app.state.retention = retention
    api.install(app)
    ca_download.install(app, config)
    desk_pages.install(app, config.desk_dir)
    desk_api.install(app, config)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Healthy or not, and nothing more: it answers without a key (the version would tell an
        attacker which known flaws to try)."""
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(metrics_reader)])
    async def metrics() -> str:
        return (
            (
                "# TYPE intercom_sip_connections gauge\n"
                f"intercom_sip_connections {len(sip.connections)}\n"
                "# TYPE intercom_registrations gauge\n"
                f"intercom_registrations {registrar.binding_count}\n"
                "# TYPE intercom_calls gauge\n"
                f"intercom_calls {len(calls.calls)}\n"
                "# TYPE intercom_calls_bridged gauge\n"
                f"intercom_calls_bridged {calls.bridged_count}\n"
                "# TYPE intercom_calls_started_total counter\n"
                f"intercom_calls_started_total {calls.started}\n"
                "# TYPE intercom_calls_answered_total counter\n"
                f"intercom_calls_answered_total {calls.answered}\n"
                "# TYPE intercom_calls_refused_total counter\n"
                f"intercom_calls_refused_total {calls.limits.refused}\n"
                "# TYPE intercom_calls_hung_up_by_limit_total counter\n"
                f"intercom_calls_hung_up_by_limit_total {calls.limits.hung_up}\n"
                "# TYPE intercom_connections_refused_total counter\n"
                + "".join(
                    f'intercom_connections_refused_total{{reason="{reason}"}} {gate.refused[reason]}\n'
                    for reason in REFUSAL_REASONS
                )
            )
            + retention.metrics(calls.services.recordings_cut)
            + (mqtt.metrics() if mqtt is not None else "")
        )

    return app


def _edge_endpoint(config: HubConfig, registrar: Registrar, sip: SipService, storage: Storage) -> EdgeEndpoint | None:
    """Behind SIP proxies (``--sip-proxy-listen``): the endpoint for them, and the location the hubs
    share. Imported only then: the embedded hub never loads the SIP/TCP transport."""
    proxied = config.sip_proxy_listener()
    if proxied is None:
        return None
    from .edge_endpoint import EdgeEndpoint
    from .shared_location import SharedLocation

    # the hub's own connections to a proxy get as long to open as a unit's to finish its handshake
    edge = EdgeEndpoint(sip, proxied[2], config.handshake_timeout)
    registrar.share(SharedLocation(storage, edge.flows, registrar.group_of))
    return edge


async def _sweep(registrar: Registrar, calls: CallService, storage: Storage, heartbeat_seconds: float) -> None:
    """Expired bindings every few seconds; the bindings and calls of a revoked key as soon as the
    database says a key changed (one PRAGMA a tick when nothing did); the heartbeat while calls run."""
    loop = asyncio.get_running_loop()
    keys_seen, expired_at, alive_at = await storage.keys_version(), loop.time(), loop.time()
    while True:
        await asyncio.sleep(min(KEY_POLL_SECONDS, heartbeat_seconds))
        try:
            if (version := await storage.keys_version()) != keys_seen:
                keys_seen = version
                await _end_revoked(registrar, calls, storage)
            if loop.time() - expired_at >= EXPIRY_SWEEP_SECONDS:
                expired_at = loop.time()
                await registrar.sweep()
                await _close_stopped_hubs(calls, storage, heartbeat_seconds)
            if calls.calls and loop.time() - alive_at >= heartbeat_seconds:
                alive_at = loop.time()
                # Only while calls run: an idle unit writes nothing to its card (only a call left
                # open needs to know when the hub died), and a new call's own rows tell that too.
                await storage.mark_alive()
        except Exception:  # a bad tick must not stop the next ones
            log.exception("the hub's sweeper failed; trying again")


async def _close_stopped_hubs(calls: CallService, storage: Storage, heartbeat_seconds: float) -> None:
    """On a database several hubs share: the calls of a hub that stopped with calls open (no
    heartbeat for ``STOPPED_HUB_HEARTBEATS`` of them) are logged as ended by the hubs still up, as
    that hub would at its next start, which may never come. Any of them may do it: the ending is the same."""
    for hub in await storage.stopped_hubs(time.time() - STOPPED_HUB_HEARTBEATS * heartbeat_seconds):
        if left := await calls.call_log.close_unfinished(hub):
            log.warning("hub %s stopped with %d call(s) going: logged as ended", hub, left)


async def _end_revoked(registrar: Registrar, calls: CallService, storage: Storage) -> None:
    in_use = await registrar.keys_in_use() | calls.key_ids()
    revoked = {key_id for key_id in in_use if (key := storage.get_key(key_id)) is None or key.revoked}
    if not revoked:
        return
    dropped = await registrar.drop_revoked(revoked)
    log.warning("access key(s) %s revoked: %d binding(s) dropped", ", ".join(sorted(revoked)), len(dropped))
    await calls.keys_revoked(revoked)
    # A revoked phone's page is disconnected too: it asks for a token to reconnect, and gets a 401.
    for binding in dropped:
        key = storage.get_key(binding.grant.access_key_id)
        if key is not None and key.scope is not None and key.scope.group == PHONES:
            binding.connection.close(1008, "device credential revoked")  # type: ignore[attr-defined]
