"""The web desk in Debian Chromium against a real hub over https (its certificate issued by the
test's CA, which this Chromium trusts): paired from the printed link, rung by a Python door, answered
with sound both ways, the door opened, rejected, missed, removed.

The door is a real SDK client with the appliance's controller (tests/appliance/controllers.py): its
board records the relay's pulses. Its call sends DOOR_HZ; the page's microphone is Chromium's fake
device (a 400 Hz beep every 500 ms).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from intercom.appliance.controller import Controller
from intercom.auth import IncomingCapability, mint_token, unit_scope
from intercom.hub.pairing import PhoneBook, pairing_link
from intercom.sdk import CallStatus

from ..appliance.controllers import CODE, Board
from ..conftest import connect_unit
from ..flows.flows import call_log, store, until_over
from ..units import DOOR_HZ, STEP, store_flow
from .desk_page import PHONE, DeskBrowser, desk_browser

RESIDENT = "anna_phone"
BEEP_HZ = 400.0  # Chromium's fake microphone
PAGE_HZ_TOLERANCE = 25.0  # the page's analyser bins are 48000 / 4096 = 11.7 Hz wide
RELAY_PULSE_S = 2.5
# The README's screenshots: INTERCOM_DESK_SCREENSHOTS=docs/images makes them there; a plain run
# takes them all the same (a page that cannot be shot fails), in the test's own directory.
SCREENSHOTS_ENV = "INTERCOM_DESK_SCREENSHOTS"
TOKEN_URL = "**/desk/api/token"
FORBIDDEN_ATTEMPTS = 5  # the seed's: REGISTERs refused 403 before the SDK gives up
VOICEMAIL_SECONDS = 2
# What sw.js keeps: the page (under /desk/, whatever the address) and its assets (without ?v=).
SHELL = ("", "app.js", "desk.css", "manifest.webmanifest", "icons/icon-192.png", "icons/icon-512.png", "ring.wav")
REFRESH_SECONDS = 5  # app.js: how often the page asks for the doors, and so learns it was revoked


@pytest.fixture
async def browser(web_hub) -> AsyncIterator[DeskBrowser]:
    async with desk_browser(web_hub.ca_file, viewport=PHONE) as browser:
        yield browser


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def phones(web_hub) -> PhoneBook:
    return PhoneBook(web_hub.storage)


@pytest.fixture
async def door(web_hub):
    """The door's controller, whose CALL button rings the resident's phone, and its board."""
    await store_flow(web_hub, "door", f"client:{RESIDENT}", timeout=30)
    unit = await connect_unit(web_hub, "door", DOOR_HZ, outgoing="door", incoming=False)
    board = Board()
    controller = Controller(
        "door", unit.client, board.show, board.pulse, unlock_code=CODE, relay_pulse_s=RELAY_PULSE_S,
        unlock_from=(RESIDENT,),
    )  # fmt: skip
    yield controller, board
    async with asyncio.timeout(STEP):
        await unit.client.destroy()


async def pair(browser: DeskBrowser, web_hub, phones: PhoneBook) -> None:
    """Open the link `intercom web add` prints, as the resident does, until the page is connected."""
    invitation = await phones.invite(RESIDENT, name="Anna's phone")
    await browser.goto(pairing_link(web_hub.origin, invitation.code))
    await browser.shows('#status[data-status="connected"]')


async def door_rings(browser: DeskBrowser, door) -> None:
    controller, _ = door
    controller.press("call")
    await browser.shows("#view-ringing")


async def page_hears(browser: DeskBrowser) -> float:
    heard = await browser.do("farEndPitch", timeout=STEP, seconds=STEP - 2)
    assert heard is not None, "the page heard nothing from the door"
    return heard["hz"]


async def until_call_ends(controller) -> None:
    async with asyncio.timeout(STEP):
        while controller.call is not None and controller.call.status not in (CallStatus.ENDED, CallStatus.FAILED):
            await asyncio.sleep(0.05)  # polled with a deadline: the controller has no event for it


async def test_a_browser_without_a_credential_says_how_to_pair(browser, web_hub):
    await browser.goto(web_hub.url("/desk/"))
    await browser.shows("#view-unpaired")
    assert "intercom web add" in await browser.text("#view-unpaired")


async def test_the_printed_link_pairs_the_browser_once(browser, web_hub, phones, door):
    invitation = await phones.invite(RESIDENT, name="Anna's phone")
    link = pairing_link(web_hub.origin, invitation.code)
    await browser.goto(link)
    await browser.shows('#status[data-status="connected"]')
    stored = await browser.evaluate(
        "() => [localStorage.getItem('intercom.identity'), Boolean(localStorage.getItem('intercom.credential')),"
        " location.href]"
    )
    assert stored == [RESIDENT, True, web_hub.url("/desk/")]  # the code is out of the address bar
    await browser.shows('#doors li[data-identity="door"][data-online="true"]')
    # Chromium's fake devices, from the SDK's MediaSources (in the folded "Microphone and speaker")
    await browser.do("waitFor", selector="#microphone option", state="attached")
    # the same link again, in a fresh page with the credential gone: used, said so
    await browser.evaluate("() => localStorage.clear()")
    await browser.goto(link)
    await browser.shows('#pairing-result[data-failed="410"]')
    assert "used already or has expired" in await browser.text("#pairing-result")


async def test_the_door_rings_the_page_which_answers_talks_and_opens_the_door(
    browser, web_hub, phones, door, screenshots
):
    controller, board = door
    await pair(browser, web_hub, phones)
    await door_rings(browser, door)
    assert await browser.text("#caller") in ("door", "Door")
    assert await browser.evaluate("() => document.body.dataset.ringing") == "true"
    await browser.do("screenshot", path=str(screenshots / "desk-ringing.png"))
    await browser.click("#answer")
    await browser.shows('#call-status[data-status="confirmed"]')
    assert await page_hears(browser) == pytest.approx(DOOR_HZ, abs=PAGE_HZ_TOLERANCE)
    sink = controller.call.sink
    async with asyncio.timeout(STEP):
        await sink.wait_until(lambda: sink.dominant_frequency(1.0) is not None, STEP)
    assert sink.dominant_frequency(1.0) == pytest.approx(BEEP_HZ, abs=15)
    await browser.click("#open-door")
    await board.until(lambda: board.pulses)
    assert board.pulses == [RELAY_PULSE_S]
    await browser.shows('#unlock-result[data-result="sent"]')
    heard: list[str] = []
    digit_heard = asyncio.Event()
    controller.call.on("digits", lambda digit, *_: (heard.append(digit), digit_heard.set()))
    await browser.click('#keypad button:text-is("5")')
    async with asyncio.timeout(STEP):
        await digit_heard.wait()
    assert heard == ["5"]
    await browser.click("#mute")
    await browser.shows('#mute[aria-pressed="true"]')  # set from the call's own `muted` event
    await browser.do("screenshot", path=str(screenshots / "desk-in-call.png"))
    await browser.click("#hangup")
    await until_call_ends(controller)
    await browser.shows("#view-idle")
    assert await browser.evaluate("() => window.__cspViolations") == []  # it needs nothing its policy forbids


async def test_a_rejected_ring_ends_the_doors_call(browser, web_hub, phones, door):
    controller, _ = door
    await pair(browser, web_hub, phones)
    await door_rings(browser, door)
    await browser.click("#reject")
    await browser.shows("#view-idle")
    await until_call_ends(controller)
    assert await browser.evaluate("() => document.body.dataset.ringing") is None  # the ring stopped


async def test_the_caller_hanging_up_while_ringing_is_a_missed_call(browser, web_hub, phones, door):
    controller, _ = door
    await pair(browser, web_hub, phones)
    await door_rings(browser, door)
    async with asyncio.timeout(STEP):
        await controller.call.disconnect()
    await browser.shows("#view-idle")
    assert "Missed call" in await browser.text("#notice")
    assert await browser.evaluate("() => document.body.dataset.ringing") is None


async def test_a_revoked_phone_stops_and_gets_no_more_tokens(browser, web_hub, phones):
    await pair(browser, web_hub, phones)
    await phones.revoke(RESIDENT)
    await browser.shows("#view-removed", timeout=REFRESH_SECONDS + STEP)
    assert await browser.text("#view-removed h2") == "This phone was removed from the intercom"
    await browser.shows('#status[data-status="offline"]')
    assert await browser.evaluate("() => localStorage.getItem('intercom.credential')") is None


# The pitch of what the page's voicemail player holds: its blob decoded, its zero crossings
# counted from its first loud sample to its last.
VOICEMAIL_PITCH = """async () => {
  const player = document.getElementById('voicemail');
  const bytes = await window.__blobs.get(player.src).arrayBuffer();
  const context = new AudioContext();
  const audio = await context.decodeAudioData(bytes);
  context.close();
  const samples = audio.getChannelData(0);
  // only where the tone sounds: the recording may start before the door's sound arrived
  const loud = (x) => Math.abs(x) > 0.05;
  const first = samples.findIndex(loud);
  const last = samples.findLastIndex(loud);
  let crossings = 0;
  for (let i = first + 1; i <= last; i++) if ((samples[i - 1] < 0) !== (samples[i] < 0)) crossings++;
  const seconds = (last - first) / audio.sampleRate;
  return {src: player.src, hz: crossings / 2 / seconds, seconds, played: player.currentTime > 0 || player.ended};
}"""


async def test_a_voicemail_left_earlier_plays_from_the_call_log(browser, web_hub, phones):
    await store(web_hub, [{"action": "record", "options": {"maxLength": VOICEMAIL_SECONDS, "timeout": 0}}])
    door = await connect_unit(web_hub, "door", DOOR_HZ, outgoing="door", incoming=False)
    try:
        door.start_call()
        await until_over(door)
        (_, _, (recording,)) = await call_log(web_hub)
    finally:
        async with asyncio.timeout(STEP):
            await door.client.destroy()
    await pair(browser, web_hub, phones)
    await browser.click(f'#calls li[data-id="{recording.call_id}"] button.play')
    await browser.do("waitUntil", expression="() => document.getElementById('voicemail').currentTime > 0")
    played = await browser.evaluate(VOICEMAIL_PITCH)
    assert played["src"].startswith("blob:") and played["played"] and played["seconds"] > VOICEMAIL_SECONDS / 2
    assert played["hz"] == pytest.approx(DOOR_HZ, rel=0.1)  # the door's own tone, left a moment ago

    # A notification's link (docs/home-assistant.md) opens the page with that voicemail in the player.
    await browser.goto("about:blank")
    await browser.goto(web_hub.url(f"/desk/#voicemail={recording.id}"))
    await browser.shows(f'#voicemail[data-voicemail="{recording.id}"]')
    await browser.do("waitUntil", expression="() => document.getElementById('voicemail').currentTime > 0")
    assert (await browser.evaluate(VOICEMAIL_PITCH))["hz"] == pytest.approx(DOOR_HZ, rel=0.1)
    assert await browser.evaluate("() => location.hash") == ""  # the link is spent: a reload plays nothing
    await browser.goto(web_hub.url("/desk/#voicemail=gone"))  # one since deleted: the page says so
    await browser.do("waitUntil", expression="() => document.getElementById('notice').textContent.includes('gone')")


async def refused(browser: DeskBrowser, web_hub, phones: PhoneBook, token: str, seconds: float) -> list[str]:
    """Pair, with the hub's token endpoint answering ``token`` (one the hub would never give a
    phone) until the page's status went through error; the statuses it showed."""
    await browser.do("fulfil", url=TOKEN_URL, body={"jwt": token, "expiresAt": 0})
    invitation = await phones.invite(RESIDENT, name="Anna's phone")
    await browser.goto(pairing_link(web_hub.origin, invitation.code))
    await browser.do(
        "waitUntil", timeout=seconds + 1, expression="() => window.__statuses().includes('error')", ms=seconds * 1000
    )
    return await browser.evaluate("() => window.__statuses()")


async def test_a_token_naming_an_identity_the_hub_refuses_is_406_at_once(browser, web_hub, phones):
    statuses = await refused(browser, web_hub, phones, mint_token(web_hub.key, [IncomingCapability("x" * 31)]), STEP)
    assert "connected" not in statuses and statuses.index("connecting") < statuses.index("error")
    assert (await browser.text("#notice")).startswith("406: ")
    assert await browser.do("fulfilled", url=TOKEN_URL) == 1  # not retried: a new token will not help


@pytest.mark.slow
async def test_a_token_beyond_its_keys_scope_ends_in_the_seeds_403_sequence(browser, web_hub, phones):
    """REGISTER gets 403; the SDK waits 5 s, asks for a fresh token and tries again, as the seed
    does, and after the fifth refusal reports error 403 (25 s of the seed's own timing)."""
    door_key = await web_hub.storage.create_key("door", unit_scope("door", "door", "door"))
    beyond_scope = mint_token(door_key, [IncomingCapability(RESIDENT)], ttl=600)
    statuses = await refused(browser, web_hub, phones, beyond_scope, 6 * STEP)
    assert "connected" not in statuses and statuses.index("connecting") < statuses.index("error")
    assert (await browser.text("#notice")).startswith("403: ")
    assert await browser.do("fulfilled", url=TOKEN_URL) == FORBIDDEN_ATTEMPTS


async def test_the_page_installs_its_service_worker_which_keeps_the_shell_but_never_the_api(browser, web_hub, phones):
    await pair(browser, web_hub, phones)
    await browser.do("waitUntil", expression="() => navigator.serviceWorker.controller !== null")  # clients.claim()
    await browser.goto(web_hub.url("/desk/"))  # a load through the worker: the API's answers pass it by
    await browser.shows('#status[data-status="connected"]')
    kept = await browser.evaluate(
        "async () => (await Promise.all((await caches.keys()).map(async (name) =>"
        " (await (await caches.open(name)).keys()).map((request) => request.url)))).flat()"
    )
    paths = sorted(url.removeprefix(web_hub.origin) for url in kept)
    assert paths == sorted(f"/desk/{name}" for name in SHELL)
    manifest = await browser.evaluate("async () => (await fetch('manifest.webmanifest')).json()")
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == ("/desk/", "/desk/", "standalone")
    assert {icon["sizes"] for icon in manifest["icons"]} == {"192x192", "512x512"}


async def test_a_browser_that_needs_a_tap_for_sound_asks_once_then_rings(web_hub, phones, door):
    async with desk_browser(web_hub.ca_file, viewport=PHONE, autoplay=False) as browser:
        await pair(browser, web_hub, phones)
        await browser.shows("#sound")
        assert "no sound until you tap" in await browser.text("#sound")
        await browser.click("#enable-sound")
        await browser.hidden("#sound")
        await door_rings(browser, door)
        await browser.do("waitUntil", expression="() => !document.getElementById('ring').paused")
        await browser.hidden("#sound")
