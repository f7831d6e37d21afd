"""The SDK Client's lifecycle against a real hub: statuses, refresh, the seed's error table."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from intercom import __version__
from intercom.auth import ADMIN, IncomingCapability, mint_token
from intercom.sdk import Client, ClientStatus, ForbiddenError, InternalError, NotAcceptableError
from intercom.sdk.client import reconnect_delay
from intercom.sip import Request, Response, make_response

from ..conftest import STEP


class Recorder:
    """Collects a client's events; waits for a condition without polling."""

    def __init__(self, client: Client) -> None:
        self.statuses: list[ClientStatus] = []
        self.errors: list[Exception] = []
        self._changed = asyncio.Event()
        client.on("status", self._add(self.statuses))
        client.on("error", self._add(self.errors))

    def _add(self, target: list) -> Callable[[Any], None]:
        def handler(value: Any) -> None:
            target.append(value)
            self._changed.set()

        return handler

    async def until(self, condition: Callable[[], bool], timeout: float = STEP) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


class RegisterLog:
    """Every REGISTER the hub answers, with the answer and the connection it came on."""

    def __init__(self, hub, monkeypatch) -> None:
        self.entries: list[tuple[Request, Response, object]] = []
        self.changed = asyncio.Event()
        self.override: Callable[[Request], Response | None] | None = None
        registrar = hub.running.registrar
        original = registrar.handle_register

        def spy(connection: object, request: Request, path: tuple[str, ...] = ()) -> Response:
            response = (self.override and self.override(request)) or original(connection, request, path)
            self.entries.append((request, response, connection))
            self.changed.set()
            return response

        monkeypatch.setattr(registrar, "handle_register", spy)

    @property
    def requests(self) -> list[Request]:
        return [request for request, _, _ in self.entries]

    async def until_count(self, count: int, timeout: float = STEP) -> None:
        async with asyncio.timeout(timeout):
            while len(self.entries) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def register_log(hub, monkeypatch) -> RegisterLog:
    return RegisterLog(hub, monkeypatch)


@pytest.fixture
async def make_client(hub):
    clients: list[Client] = []

    def factory(refresh_token=None, **options) -> Client:
        client = Client(host=hub.address, refresh_token=refresh_token or hub.token, secure=False, **options)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        async with asyncio.timeout(STEP):
            await client.destroy()


def test_refresh_token_is_required():
    with pytest.raises(TypeError, match="refresh_token"):
        Client(host="127.0.0.1:1")
    with pytest.raises(TypeError, match="refresh_token"):
        Client(host="127.0.0.1:1", refresh_token="not callable")  # type: ignore[arg-type]


async def test_setup_connects_and_destroy_unregisters(hub, make_client, register_log):
    client = make_client()
    events = Recorder(client)
    async with asyncio.timeout(STEP):
        await client.setup(jwt=hub.token("desk"))
    assert events.statuses == [ClientStatus.CONNECTING, ClientStatus.CONNECTED]
    assert client.status is ClientStatus.CONNECTED
    assert len(hub.running.registrar.lookup("desk")) == 1

    async with asyncio.timeout(STEP):
        await client.destroy()
    assert events.statuses == [ClientStatus.CONNECTING, ClientStatus.CONNECTED, ClientStatus.OFFLINE]
    unregister = register_log.requests[-1]
    assert unregister.headers.get("Expires") == "0"
    assert unregister.contacts[0].params["expires"] == "0"
    assert hub.running.registrar.lookup("desk") == []


async def test_register_carries_the_browser_clients_headers(hub, make_client, register_log):
    client = make_client()
    token = hub.token("desk")
    async with asyncio.timeout(STEP):
        await client.setup(jwt=token)
    request = register_log.requests[0]
    assert str(request.uri) == f"sip:{hub.address}"
    assert request.headers.get("WebRTC-Token") == token
    assert request.headers.get("SDK-Version") == __version__
    details = json.loads(base64.b64decode(request.headers.get("User-Details") or ""))
    assert details["browser"]["name"] == "Python" and details["os"]["family"] == "Linux"
    assert request.top_via.host.endswith(".invalid") and request.top_via.transport == "WSS"
    assert request.from_.uri == request.to.uri and request.to.uri.user == "anonymous"
    contact = request.contacts[0]
    assert contact.uri.host.endswith(".invalid") and contact.uri.params == {"transport": "ws"}
    assert contact.params["reg-id"] == "1" and contact.params["+sip.instance"].startswith('"<urn:uuid:')
    assert request.headers.get("Expires") == "60"


async def test_reregisters_before_expiry_with_a_fresh_token(hub, make_client, register_log):
    hub.running.config.max_expires = 10  # granted 10 s: JsSIP's rule refreshes at 5 s
    issued: list[str] = []

    def refresh() -> str:
        issued.append(hub.token("desk", ttl=600 + len(issued)))
        return issued[-1]

    client = make_client(refresh_token=refresh)
    events = Recorder(client)
    started = time.monotonic()
    async with asyncio.timeout(STEP):
        await client.setup(jwt=hub.token("desk"))
    await register_log.until_count(2, timeout=12)
    elapsed = time.monotonic() - started
    first, second = register_log.requests[:2]
    assert issued and second.headers.get("WebRTC-Token") == issued[0]
    assert second.call_id == first.call_id
    assert second.cseq.number == first.cseq.number + 1
    assert second.from_.tag != first.from_.tag
    assert register_log.entries[0][2] is register_log.entries[1][2]  # same WebSocket
    assert elapsed >= 4.9
    assert events.statuses == [ClientStatus.CONNECTING, ClientStatus.CONNECTED]  # each status once


async def test_a_short_lived_token_is_replaced_before_its_registration_ends(hub, make_client, register_log):
    """The hub grants no more than the token has left (4 s here, though 60 were asked): the client
    re-registers with a fresh token before then, each time, and stays reachable throughout."""
    issued: list[str] = []

    def refresh() -> str:
        issued.append(hub.token("desk", ttl=4))
        return issued[-1]

    client = make_client(refresh_token=refresh)
    async with asyncio.timeout(STEP):
        await client.setup(jwt=refresh())
    await register_log.until_count(4, timeout=12)
    for (request, response, _), (following, _, _) in itertools.pairwise(register_log.entries[:4]):
        assert response.status_code == 200
        (contact,) = response.contacts
        granted = int(contact.params["expires"])
        assert granted <= 4 and request.headers.get("Expires") == "60"
        assert following.headers.get("WebRTC-Token") != request.headers.get("WebRTC-Token")  # a fresh one
    (binding,) = hub.running.registrar.lookup("desk")
    assert binding.expires_at <= binding.grant.expires_at
    assert client.status is ClientStatus.CONNECTED


async def test_forbidden_retries_on_new_sockets_then_fails(hub, make_client, register_log):
    """403: wait 5 s, refresh_token(), new WebSocket; 5 REGISTERs in all, then error."""
    refreshes: list[float] = []

    def refresh() -> str:
        refreshes.append(time.monotonic())
        return "still-not-a-token"

    client = make_client(refresh_token=refresh)
    events = Recorder(client)
    with pytest.raises(ForbiddenError) as failure:
        async with asyncio.timeout(30):
            await client.setup(jwt="not-a-token")
    assert failure.value.code == 403 and failure.value.message == "Invalid token: not a JWT"
    assert len(register_log.entries) == 5
    assert len(refreshes) == 4
    assert len({id(connection) for _, _, connection in register_log.entries}) == 5
    call_ids = {request.call_id for request in register_log.requests}
    assert len(call_ids) == 1
    assert [request.cseq.number for request in register_log.requests] == [1, 2, 3, 4, 5]
    gaps = [later - earlier for earlier, later in itertools.pairwise(refreshes)]
    assert all(gap >= 4.9 for gap in gaps), gaps
    assert events.statuses == [ClientStatus.CONNECTING, ClientStatus.ERROR, ClientStatus.OFFLINE]
    assert events.errors == [failure.value]


async def test_forbidden_then_a_good_refreshed_token_connects(hub, make_client, register_log):
    client = make_client(refresh_token=lambda: hub.token("desk"))
    client.forbidden_retry_delay = 0.05
    events = Recorder(client)
    async with asyncio.timeout(STEP):
        await client.setup(jwt="expired-or-garbage")
    assert [response.status_code for _, response, _ in register_log.entries] == [403, 200]
    assert events.statuses == [ClientStatus.CONNECTING, ClientStatus.CONNECTED]


async def test_not_acceptable_is_not_retried(hub, make_client, register_log):
    calls = []
    client = make_client(refresh_token=lambda: calls.append(1) or "x")
    events = Recorder(client)
    token = mint_token(hub.key, [IncomingCapability("not valid!")])
    with pytest.raises(NotAcceptableError) as failure:
        async with asyncio.timeout(STEP):
            await client.setup(jwt=token)
    assert failure.value.code == 406 and "identity" in failure.value.message
    assert len(register_log.entries) == 1 and calls == []
    assert events.statuses == [ClientStatus.CONNECTING, ClientStatus.ERROR, ClientStatus.OFFLINE]


@pytest.mark.parametrize("code", [500, 404, 488])
async def test_other_errors_are_internal(hub, make_client, register_log, code):
    register_log.override = lambda request: make_response(request, code)
    client = make_client()
    with pytest.raises(InternalError) as failure:
        async with asyncio.timeout(STEP):
            await client.setup(jwt=hub.token())
    assert failure.value.code == 500
    assert failure.value.message == "Could not register to WebRTC Server"
    assert len(register_log.entries) == 1


async def test_a_200_without_our_contact_is_an_error(hub, make_client, register_log):
    register_log.override = lambda request: make_response(request, 200, to_tag="x", body=b'{"zone":"z"}')
    client = make_client()
    with pytest.raises(InternalError, match="Contact"):
        async with asyncio.timeout(STEP):
            await client.setup(jwt=hub.token())


async def test_interval_too_brief_is_raised_and_retried(hub, make_client, register_log):
    hub.running.config.min_expires = 120
    client = make_client()
    async with asyncio.timeout(STEP):
        await client.setup(jwt=hub.token())
    assert [response.status_code for _, response, _ in register_log.entries] == [423, 200]
    assert register_log.requests[1].headers.get("Expires") == "120"


async def test_unexpected_close_reconnects(hub, make_client, register_log):
    client = make_client()
    events = Recorder(client)
    async with asyncio.timeout(STEP):
        await client.setup(jwt=hub.token("desk"))
    (connection,) = hub.running.app.state.sip.connections
    connection.close(1011, "hub going away")
    await events.until(lambda: events.statuses.count(ClientStatus.CONNECTED) == 2)
    assert events.statuses == [
        ClientStatus.CONNECTING,
        ClientStatus.CONNECTED,
        ClientStatus.CONNECTING,
        ClientStatus.CONNECTED,
    ]
    assert len(hub.running.registrar.lookup("desk")) == 1
    assert register_log.entries[0][2] is not register_log.entries[-1][2]


async def test_waits_for_a_hub_that_is_not_up_yet(hub_config, tmp_path):
    """A unit that boots before its hub keeps trying, then connects."""
    import socket

    from intercom.hub import Storage, running_hub

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        hub_config.port = probe.getsockname()[1]
    storage = Storage(hub_config.data_dir)
    key = await storage.create_key("late", ADMIN)
    token = mint_token(key, [IncomingCapability("desk")])
    client = Client(host=f"127.0.0.1:{hub_config.port}", refresh_token=lambda: token, secure=False)
    client.reconnect_delay_min = 0.2
    events = Recorder(client)
    setup = asyncio.create_task(client.setup(jwt=token))
    await events.until(lambda: ClientStatus.CONNECTING in events.statuses)
    assert not setup.done()
    async with running_hub(hub_config, storage):
        async with asyncio.timeout(STEP):
            await setup
        assert client.status is ClientStatus.CONNECTED
        async with asyncio.timeout(STEP):
            await client.destroy()


def test_reconnect_delay_doubles_to_thirty_seconds_with_jitter():
    rng = random.Random(7)
    delays = [reconnect_delay(attempt, 2.0, 30.0, rng) for attempt in range(8)]
    bases = [2, 4, 8, 16, 30, 30, 30, 30]
    for delay, base in zip(delays, bases, strict=True):
        assert base <= delay <= min(30.0, base * 1.25)
    assert len({round(delay, 6) for delay in delays[:4]}) == 4


async def test_setup_twice_is_refused(hub, make_client):
    client = make_client()
    async with asyncio.timeout(STEP):
        await client.setup(jwt=hub.token())
    with pytest.raises(RuntimeError, match="already set up"):
        await client.setup(jwt=hub.token())


async def test_coroutine_handlers_and_failing_handlers(hub, make_client, caplog):
    client = make_client()
    seen: list[ClientStatus] = []
    done = asyncio.Event()

    async def async_handler(status: ClientStatus) -> None:
        seen.append(status)
        if status is ClientStatus.CONNECTED:
            done.set()

    def broken_handler(status: ClientStatus) -> None:
        raise RuntimeError("handler bug")

    client.on("status", async_handler)
    client.on("status", broken_handler)
    async with asyncio.timeout(STEP):
        await client.setup(jwt=hub.token())
        await done.wait()
    assert seen == [ClientStatus.CONNECTING, ClientStatus.CONNECTED]
    assert "handler bug" in caplog.text
    client.off("status", async_handler)
    client.remove_event_listener("status", broken_handler)
    async with asyncio.timeout(STEP):
        await client.destroy()
    assert seen == [ClientStatus.CONNECTING, ClientStatus.CONNECTED]


async def test_destroy_during_setup_ends_offline():
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(host=f"127.0.0.1:{port}", refresh_token=lambda: "t", secure=False)
    events = Recorder(client)
    setup = asyncio.create_task(client.setup(jwt="t"))
    await events.until(lambda: ClientStatus.CONNECTING in events.statuses)
    async with asyncio.timeout(STEP):
        await client.destroy()
        with pytest.raises(asyncio.CancelledError):
            await setup
    assert events.statuses == [ClientStatus.CONNECTING, ClientStatus.OFFLINE]


async def test_setup_again_after_an_error(hub, make_client):
    client = make_client()
    token = mint_token(hub.key, [IncomingCapability("bad name")])
    with pytest.raises(NotAcceptableError):
        async with asyncio.timeout(STEP):
            await client.setup(jwt=token)
    assert client.status is ClientStatus.OFFLINE
    async with asyncio.timeout(STEP):
        await client.setup(jwt=hub.token("desk"))
    assert client.status is ClientStatus.CONNECTED


def test_turn_servers_are_read_from_the_register_answer_and_bad_ones_ignored():
    from intercom.sdk.registration import turn_servers

    ok = Response(status_code=200)
    ok.body = json.dumps(
        {
            "zone": "local",
            "turn": {"servers": ["turn:t.invalid:3478"], "credentials": {"username": "1:desk", "password": "pw"}},
        }
    ).encode()
    (server,) = turn_servers(ok)
    assert (server.urls, server.username, server.credential) == (("turn:t.invalid:3478",), "1:desk", "pw")
    ok.body = b'{"zone": "local"}'
    assert turn_servers(ok) == []
    ok.body = b'{"zone": "local", "turn": {"servers": "turn:t.invalid"}}'
    assert turn_servers(ok) == []
    ok.body = b"not json"
    assert turn_servers(ok) == []
