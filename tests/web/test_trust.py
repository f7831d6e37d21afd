"""Chromium trusts a hub whose certificate the CA it was given issued, and only that: the fixture
the web desk's tests stand on, and the local CA a resident's phone installs."""

from __future__ import annotations

import asyncio
import contextlib
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


async def open_urls(urls: list[str], ca_files: list[Path]) -> list[dict]:
    """What one Chromium trusting ``ca_files`` got for each of ``urls``: ``{"status", "body"}`` or ``{"error"}``."""
    args = [arg for url in urls for arg in ("--url", url)] + [arg for ca in ca_files for arg in ("--ca", str(ca))]
    results = await run_node("open_url.mjs", *args)
    assert len(results) == len(urls), results
    return results


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
    (result,) = await open_urls([web_hub.url("/healthz")], [web_hub.ca_file])
    assert result.get("status") == 200, result
    assert json.loads(result["body"]) == {"status": "ok"}


async def test_chromium_not_given_the_ca_refuses_the_hub(web_hub: WebHub):
    (result,) = await open_urls([web_hub.url("/healthz")], [])
    assert "ERR_CERT_AUTHORITY_INVALID" in result.get("error", ""), result


async def test_chromium_refuses_a_leaf_beyond_its_cas_name_constraints(hub_config, tmp_path):
    """The constraint is what limits a CA on a phone to the hub's names: a CA allowed 127.0.0.1
    only cannot vouch for 127.0.0.2; the same kind of leaf from a CA without constraints passes."""
    ca_files, urls = [], []
    async with contextlib.AsyncExitStack() as hubs:
        for constrained in (True, False):
            authority = new_authority(str(constrained), (), ["127.0.0.1/32"] if constrained else ())
            ca_file = tmp_path / f"{constrained}-ca.pem"
            ca_file.write_bytes(authority.certificate_pem())
            cert, key = WebAuthority(authority, ca_file).issue_files(tmp_path / str(constrained), ["127.0.0.2"])
            config = replace(
                hub_config, host="127.0.0.2", cert_file=cert, key_file=key, data_dir=tmp_path / f"hub-{constrained}"
            )
            running = await hubs.enter_async_context(hub_with(config))
            ca_files.append(ca_file)
            urls.append(f"https://{running.address}/healthz")
        constrained_result, free_result = await open_urls(urls, ca_files)
    assert free_result.get("status") == 200, free_result
    assert "ERR_CERT_INVALID" in constrained_result.get("error", ""), constrained_result


async def test_the_hubs_own_ca_is_what_the_phone_installs(hub_config):
    """End to end as a resident's phone that installed the hub's CA: the hub serves the leaf its
    own CA issued (from its data directory), and its origin opens without a warning."""
    cert, key = own_certificate(hub_config.data_dir, ["127.0.0.1", "localhost"])
    ca_path = authority_certificate(hub_config.data_dir, cert)
    assert ca_path is not None
    async with hub_with(replace(hub_config, cert_file=cert, key_file=key)) as running:
        (result,) = await open_urls([f"https://{running.address}/healthz"], [ca_path])
    assert result.get("status") == 200, result
