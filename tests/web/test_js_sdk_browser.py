"""The published browser client's scenarios, with our JavaScript SDK in Chromium on a real hub
(https, the test's CA trusted, the page on the hub's origin): registration ok, 403 and 406; an
outgoing call through a flow to a Python desk with audio both ways, DTMF, an unlock request, mute
and hang-up; a Python door calling the page, accepted, rejected and cancelled; and a call the
hub's own ``say`` flow answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import jwt
import pytest

from intercom.hub.callflows import CallFlow
from intercom.media.tracks import SILENCE_RMS
from intercom.sdk import CallStatus

from ..browser.test_jssip_call import PAGE_HZ_TOLERANCE, hears_the_beep
from ..conftest import STEP, Hub
from ..units import DESK_HZ, DOOR_HZ, store_flow
from .conftest import WebHub
from .sdk_page import SdkPage

AUDIBLE_RMS = 0.01  # the page's analyser: anything louder than a quiet line


@pytest.fixture
async def page(web_hub: WebHub) -> AsyncIterator[SdkPage]:
    async with asyncio.timeout(STEP):
        opened = await SdkPage.open_on(web_hub)
    yield opened
    code = await opened.close()
    print(opened.report())  # pytest shows it when the test failed
    assert code == 0, opened.report()


async def connected(page: SdkPage, token: str) -> None:
    await page.run("setup", token=token)
    await page.until(lambda: "connected" in page.statuses())


def tone_at(hz: float):
    return lambda measure: measure["rms"] > AUDIBLE_RMS and abs(measure["peak_hz"] - hz) < PAGE_HZ_TOLERANCE


async def test_registers_on_the_pages_origin_then_destroy_unregisters(web_hub: Hub, page: SdkPage):
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


async def test_a_token_with_a_bad_identity_is_not_acceptable_at_once(web_hub: Hub, page: SdkPage):
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


async def test_outgoing_call_to_a_desk_audio_dtmf_unlock_mute_hangup(hub: Hub, page: SdkPage, make_unit):
    await store_flow(hub, "door", "client:desk")
    desk = await make_unit("desk", DESK_HZ)
    await connected(page, hub.token("anna_phone", outgoing="door"))
    assert await page.run("call", params={"foo": "bar"}) == {"status": "connecting"}
    incoming = await desk.next_incoming()
    answered = await desk.accept(incoming)
    unlocks: list[str | None] = []
    answered.on("unlock", unlocks.append)
    await page.until(lambda: "confirmed" in page.call_statuses())
    assert page.call_statuses() == ["connecting", "ringing", "accepted", "confirmed"]
    (invite,) = [frame for frame in page.sip if frame.startswith(">> INVITE ")]
    assert "\r\nWebRTC-UserData: Zm9vPWJhcg==\r\n" in invite

    await hears_the_beep(answered.sink)
    await page.heard(tone_at(DESK_HZ))

    assert (await page.run("digits", digits="12a"))["error"]["name"] == "TypeError"
    await page.run("digits", digits="1#")
    await desk.events.until(lambda: len(desk.events.of("call.digits")) == 2)
    assert desk.events.of("call.digits") == ["1", "#"]
    assert {digits.asserted_identity for digits in desk.events.of("call.digits")} == {"anna_phone"}

    assert await page.run("unlock") is True
    assert unlocks == ["anna_phone"]

    assert await page.run("mute", muted=True) == {"isMuted": True}
    async with asyncio.timeout(STEP):
        await answered.sink.wait_until(lambda: answered.sink.rms(0.5) < SILENCE_RMS, STEP)
    # Another microphone while muted: its track goes on the same sender, muted too; unmuted, the
    # desk hears it (Chromium's fake devices all beep).
    devices = await page.run("devices")
    assert set(devices) == {"inputs", "outputs"} and devices["inputs"]["audio"], devices
    assert await page.run("input", deviceId=devices["inputs"]["audio"][-1]["deviceId"]) is None
    assert (await page.run("input", deviceId="no-such-microphone"))["error"]["name"] == "OverconstrainedError"
    speaker = devices["outputs"]["audio"][0]["deviceId"]
    assert await page.run("output", deviceId=speaker) == {"outputSource": speaker}
    await page.run("mute", muted=False)
    async with asyncio.timeout(STEP):
        await answered.sink.wait_until(lambda: answered.sink.rms(1.0) > SILENCE_RMS, STEP)
    assert [event["muted"] for event in page.of("muted")] == [True, False]

    await page.run("hangup")
    assert page.call_statuses()[-1] == "ended"
    await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
    assert not page.of("call.error"), page.report()
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()


async def test_a_door_calls_the_page_which_answers_and_both_hear_each_other(hub: Hub, page: SdkPage, make_unit):
    await store_flow(hub, "door", "client:anna_phone")
    await connected(page, hub.token("anna_phone"))
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    call = door.start_call()
    incoming = await page.event("incoming")
    assert incoming["remoteIdentity"] == "door" and incoming["displayName"] == "door", incoming
    await page.run("answer")
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    await page.until(lambda: "confirmed" in page.call_statuses())
    assert page.call_statuses() == ["accepted", "confirmed"]

    await hears_the_beep(call.sink)
    await page.heard(tone_at(DOOR_HZ))

    async with asyncio.timeout(STEP):
        await call.disconnect()
    await page.until(lambda: "ended" in page.call_statuses())
    assert not page.of("canceled") and not page.of("call.error"), page.report()


async def test_the_page_rejects_a_call_and_a_door_cancels_one(hub: Hub, page: SdkPage, make_unit):
    await store_flow(hub, "door", "client:anna_phone")
    await connected(page, hub.token("anna_phone"))
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)

    door.start_call()
    first = await page.event("incoming")
    await page.run("reject")
    await page.until(lambda: len(page.of("canceled")) == 1)
    assert page.of("canceled")[0]["id"] == first["id"]
    assert any(frame.startswith(">> SIP/2.0 480 ") for frame in page.sip)
    await door.events.until(lambda: door.events.of("call.status")[-1:] in ([CallStatus.FAILED], [CallStatus.ENDED]))
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()

    call = door.start_call()
    await page.until(lambda: len(page.of("incoming")) == 2)
    second = page.of("incoming")[1]
    async with asyncio.timeout(STEP):
        await call.disconnect()  # while the page rings: a CANCEL
    await page.until(lambda: len(page.of("canceled")) == 2)
    assert page.of("canceled")[1]["id"] == second["id"]
    assert any(frame.startswith(">> SIP/2.0 487 ") for frame in page.sip)
    assert page.call_statuses() == [], page.report()  # neither call was answered


async def test_a_say_flow_answers_speaks_and_hangs_up(hub: Hub, page: SdkPage):
    flow = {
        "id": "hello",
        "title": "hello",
        "steps": [
            {"id": "s", "action": "say", "options": {"payload": "Hello from the hub, this is a test"}},
            {"id": "bye", "action": "hangup"},
        ],
    }
    await hub.storage.create_call_flow(CallFlow.model_validate(flow))
    await connected(page, hub.token("anna_phone", outgoing="hello"))
    await page.run("call", params={})
    await page.until(lambda: "confirmed" in page.call_statuses())
    (invite,) = [frame for frame in page.sip if frame.startswith(">> INVITE ")]
    assert "WebRTC-UserData" not in invite
    await page.heard(lambda measure: measure["max_rms"] > AUDIBLE_RMS)
    assert await page.run("unlock") is False  # no client at the other end: the hub refuses (403)
    await page.until(lambda: "ended" in page.call_statuses())
    assert page.call_statuses() == ["connecting", "accepted", "confirmed", "ended"], page.report()
