"""Our JavaScript SDK in Chromium registers with a real hub over wss as the published client does:
ok, then destroy; a 403 token through the seed's five tries; a 406 token at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import jwt
import pytest

from ..conftest import STEP
from .conftest import WebHub
from .sdk_page import SdkPage


@pytest.fixture
async def page(web_hub: WebHub) -> AsyncIterator[SdkPage]:
    async with asyncio.timeout(STEP):
        opened = await SdkPage.open_on(web_hub)
    yield opened
    code = await opened.close()
    print(opened.report())  # pytest shows it when the test failed
    assert code == 0, opened.report()


async def test_registers_on_the_pages_origin_then_destroy_unregisters(web_hub: WebHub, page: SdkPage):
    result = await page.run("setup", token=web_hub.token("anna_phone"))
    assert result == {"host": web_hub.address}  # no host given: the page's own origin
    await page.until(lambda: "connected" in page.statuses())
    assert page.statuses() == ["connecting", "connected"]
    assert len(web_hub.running.registrar.lookup("anna_phone")) == 1
    (register,) = [frame for frame in page.sip if frame.startswith(">> REGISTER ")]
    assert f"\r\nTo: <sip:anonymous@{web_hub.address}>\r\n" in register
    assert "\r\nUser-Details: " in register and "\r\nExpires: 60\r\n" in register

    await page.run("destroy")
    assert page.statuses()[-1] == "offline"
    assert any(frame.startswith(">> REGISTER ") and "\r\nExpires: 0\r\n" in frame for frame in page.sip)
    assert web_hub.running.registrar.lookup("anna_phone") == []
    assert not page.of("error")


async def test_a_forbidden_token_gets_the_seeds_error_sequence(page: SdkPage):
    await page.run("setup", token="eyJhbGciOiJub25lIn0.e30.", retryDelayMs=100)
    await page.until(lambda: "offline" in page.statuses())
    registers = [frame for frame in page.sip if frame.startswith(">> REGISTER ")]
    assert len(registers) == 5, page.report()
    assert len(page.of("refreshToken")) == 4
    assert page.statuses() == ["connecting", "error", "offline"]
    (error,) = page.of("error")
    assert error["name"] == "ForbiddenError" and error["code"] == 403
    assert "algorithm" in error["message"]


async def test_a_token_with_a_bad_identity_is_not_acceptable_at_once(web_hub: WebHub, page: SdkPage):
    now = int(time.time())
    claims = {
        "accessKeyID": web_hub.key.id,
        "capabilities": ["client.incoming?identity=a b"],
        "iat": now,
        "exp": now + 600,
    }
    await page.run("setup", token=jwt.encode(claims, web_hub.key.secret, algorithm="HS256"))
    await page.until(lambda: "offline" in page.statuses())
    assert page.statuses() == ["connecting", "error", "offline"]
    (error,) = page.of("error")
    assert error["name"] == "NotAcceptableError" and error["code"] == 406
    assert error["message"].startswith("Invalid identity")
    assert len([frame for frame in page.sip if frame.startswith(">> REGISTER ")]) == 1
    assert not page.of("refreshToken")
