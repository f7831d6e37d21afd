"""Chromium trusts a hub whose certificate the CA it was given issued, and only that: the fixture
the web desk's tests stand on, and the local CA a resident's phone installs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from intercom.auth.certificates import new_authority, own_certificate
from intercom.hub import HubConfig, RunningHub, Storage, running_hub
from intercom.hub.tls import authority_certificate

from ..units import STEP
from .conftest import WebAuthority, WebHub, run_node


async def open_url(url: str, ca_file: Path | None) -> dict:
    """What Chromium got for ``url``: ``{"status", "body"}`` or ``{"error"}``."""
    (result,) = await run_node("open_url.mjs", "--url", url, *(["--ca", str(ca_file)] if ca_file else []))
    return result


@asynccontextmanager
async def hub_with(config: HubConfig) -> AsyncIterator[RunningHub]:
    storage = Storage(config.data_dir)
    async with asyncio.timeout(STEP):
        context = running_hub(config, storage)
        running = await context.__aenter__()
    try:
        yield running
    finally:
        async with asyncio.timeout(STEP):
            await context.__aexit__(None, None, None)
        storage.close()


async def test_chromium_trusting_the_tests_ca_opens_the_hub_without_a_certificate_error(web_hub: WebHub):
    result = await open_url(web_hub.url("/healthz"), web_hub.ca_file)
    assert result.get("status") == 200, result
    assert json.loads(result["body"]) == {"status": "ok"}


async def test_chromium_not_given_the_ca_refuses_the_hub(web_hub: WebHub):
    result = await open_url(web_hub.url("/healthz"), None)
    assert "ERR_CERT_AUTHORITY_INVALID" in result.get("error", ""), result


async def test_chromium_refuses_a_leaf_beyond_its_cas_name_constraints(hub_config, tmp_path):
    """The constraint is what limits a CA on a phone to the hub's names: a CA allowed 127.0.0.1
    only cannot vouch for 127.0.0.2; the same leaf from a CA without constraints passes."""
    results = {}
    for constrained in (True, False):
        authority = new_authority("constrained" if constrained else "free", (), ["127.0.0.1/32"] if constrained else ())
        ca_file = tmp_path / f"{constrained}-ca.pem"
        ca_file.write_bytes(authority.certificate_pem())
        cert, key = WebAuthority(authority, ca_file).issue_files(tmp_path / str(constrained), ["127.0.0.2"])
        config = replace(
            hub_config, host="127.0.0.2", cert_file=cert, key_file=key, data_dir=tmp_path / f"hub{constrained}"
        )
        async with hub_with(config) as running:
            results[constrained] = await open_url(f"https://{running.address}/healthz", ca_file)
    assert results[False].get("status") == 200, results
    assert "ERR_CERT_INVALID" in results[True].get("error", ""), results


async def test_the_hubs_own_ca_is_what_the_phone_installs(hub_config, tmp_path):
    """End to end as a resident's phone: the hub serves the leaf its own CA issued; the phone
    gets the CA from /ca.crt; trusting it, the hub's origin opens without a warning."""
    cert, key = own_certificate(hub_config.data_dir, ["127.0.0.1", "localhost"])
    config = replace(hub_config, cert_file=cert, key_file=key)
    async with hub_with(config) as running:
        assert await open_url(f"https://{running.address}/healthz", None) == {
            "error": f"page.goto: net::ERR_CERT_AUTHORITY_INVALID at https://{running.address}/healthz"
        }
        ca_path = authority_certificate(config.data_dir, cert)
        assert ca_path is not None
        result = await open_url(f"https://{running.address}/healthz", ca_path)
    assert result.get("status") == 200, result
