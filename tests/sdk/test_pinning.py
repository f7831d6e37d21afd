"""A client that pins its hub's certificate: the right one registers over wss, any other is left
before a byte is sent, and the error says so once instead of retrying."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from intercom.auth.certificates import FingerprintError, fingerprint_of_file, own_certificate, pin_of_file
from intercom.hub import HubConfig
from intercom.sdk import CertificateError, Client, ClientStatus

from ..conftest import HUB_LOOPBACK, STEP
from .test_client import Recorder


@pytest.fixture
def hub_config(tmp_path: Path) -> HubConfig:
    """The shared hub fixture's hub, over TLS with a certificate of its own, as a desk makes it."""
    cert, key = own_certificate(tmp_path / "hub")
    return HubConfig(
        data_dir=tmp_path / "hub", host="127.0.0.1", port=0, cert_file=cert, key_file=key, media=HUB_LOOPBACK
    )


class Listener:
    """A TLS server on 127.0.0.1 that answers nothing and records every byte a client sends it
    after the TLS handshake: what a relay on the cable would read."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.received = b""
        self.connections = 0
        self.handled = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)  # TLS started per connection
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await writer.start_tls(self.context)
            while data := await reader.read(4096):
                self.received += data
                if b"\r\n\r\n" in self.received:  # an upgrade request, whole: enough to show it came through
                    break
        except (OSError, ssl.SSLError):
            pass  # the client left in or right after the handshake
        finally:
            writer.close()
            self.handled.set()


def pinned_client(address: str, pin: str) -> Client:
    return Client(host=address, refresh_token=lambda: "never-sent", tls_fingerprint=pin)


async def test_a_client_pinned_to_the_hubs_certificate_registers_over_wss(hub, hub_config):
    client = pinned_client(hub.address, fingerprint_of_file(hub_config.cert_file))
    try:
        async with asyncio.timeout(STEP):
            await client.setup(jwt=hub.token("desk"))
        assert client.status is ClientStatus.CONNECTED and client.url.startswith("wss://")
        assert len(hub.running.registrar.lookup("desk")) == 1
    finally:
        async with asyncio.timeout(STEP):
            await client.destroy()


async def test_another_certificate_is_left_before_a_byte_and_not_retried(tmp_path):
    cert, key = own_certificate(tmp_path / "relay")
    wrong = fingerprint_of_file(own_certificate(tmp_path / "hub")[0])
    async with Listener(cert, key) as relay:
        client = pinned_client(relay.address, wrong)
        events = Recorder(client)
        with pytest.raises(CertificateError, match="does not match the pinned fingerprint") as refused:
            async with asyncio.timeout(STEP):
                await client.setup(jwt="a-token-the-relay-must-not-read")
        async with asyncio.timeout(STEP):
            await relay.handled.wait()
        assert relay.received == b""  # not the token, not even the WebSocket upgrade request
        assert refused.value.shown == pin_of_file(cert) and refused.value.code == 500
        assert events.errors == [refused.value]
        assert events.statuses == [ClientStatus.CONNECTING, ClientStatus.ERROR, ClientStatus.OFFLINE]
        assert relay.connections == 1  # given up, not retried

        right = pinned_client(relay.address, fingerprint_of_file(cert))  # the listener does hear what gets through
        relay.handled.clear()
        setup = asyncio.create_task(right.setup(jwt="t"))
        try:
            async with asyncio.timeout(STEP):
                await relay.handled.wait()
            assert relay.received.startswith(b"GET / HTTP/1.1\r\n")
        finally:
            async with asyncio.timeout(STEP):
                await right.destroy()
            setup.cancel()


async def test_without_a_pin_or_context_the_systems_cas_must_vouch_for_the_hub(hub):
    client = Client(host=hub.address, refresh_token=lambda: hub.token("desk"))  # wss, the system's CAs
    with pytest.raises(CertificateError, match=r"the hub's certificate is not trusted: self.signed"):
        async with asyncio.timeout(STEP):
            await client.setup(jwt=hub.token("desk"))
    assert hub.running.registrar.lookup("desk") == [] and client.status is ClientStatus.OFFLINE


def test_a_pin_is_for_wss_alone_and_must_be_a_fingerprint(tmp_path):
    pin = "AB:" * 31 + "CD"
    with pytest.raises(ValueError, match="not with secure=False or ssl_context"):
        Client(host="127.0.0.1:1", refresh_token=str, secure=False, tls_fingerprint=pin)
    with pytest.raises(ValueError, match="not with secure=False or ssl_context"):
        Client(host="127.0.0.1:1", refresh_token=str, ssl_context=ssl.create_default_context(), tls_fingerprint=pin)
    with pytest.raises(FingerprintError):
        Client(host="127.0.0.1:1", refresh_token=str, tls_fingerprint="AB:CD")
