"""A real JsSIP 3.x UA in headless Debian Chromium registers with our hub over wss."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from intercom.auth import ADMIN
from intercom.hub import HubConfig, Storage, running_hub

from .conftest import page_origin
from .jssip_page import require_browser

HARNESS = Path(__file__).with_name("jssip_register.mjs")


@pytest.fixture
async def wss_hub(tmp_path, tls_files, page_port):
    cert, key = tls_files
    config = HubConfig(
        data_dir=tmp_path / "hub",
        host="127.0.0.1",
        port=0,
        cert_file=cert,
        key_file=key,
        allowed_origins=(page_origin(page_port),),
    )
    storage = Storage(config.data_dir)
    access_key = await storage.create_key("browser", ADMIN)
    async with asyncio.timeout(10):
        context = running_hub(config, storage)
        hub = await context.__aenter__()
    yield hub, access_key
    async with asyncio.timeout(10):
        await context.__aexit__(None, None, None)


async def run_jssip(address: str, token: str, page_port: int) -> list[dict]:
    require_browser()
    process = await asyncio.create_subprocess_exec(
        "node", str(HARNESS), "--url", f"wss://{address}", "--host", address, "--token", token,
        "--timeout-ms", "30000", "--page-port", str(page_port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    assert process.returncode == 0, (stdout.decode(), stderr.decode()[-2000:])
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


async def test_jssip_registers_over_wss_with_a_webrtc_token(wss_hub, page_port):
    from intercom.auth import IncomingCapability, mint_token

    hub, key = wss_hub
    events = await run_jssip(hub.address, mint_token(key, [IncomingCapability("browser")]), page_port)
    names = [event["event"] for event in events]
    assert "registered" in names, events
    assert next(event for event in events if event["event"] == "registered")["expires"] == 60
    # The harness stops the UA, which un-registers: the hub is left with nothing.
    assert hub.registrar.lookup("browser") == []


async def test_jssip_with_a_bad_token_gets_403(wss_hub, page_port):
    hub, _ = wss_hub
    events = await run_jssip(hub.address, "eyJhbGciOiJub25lIn0.e30.", page_port)
    failed = [event for event in events if event["event"] == "registrationFailed"]
    assert failed and failed[0]["status_code"] == 403, events
    assert "algorithm" in failed[0]["reason_phrase"]
