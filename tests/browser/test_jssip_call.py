"""Real calls between a JsSIP UA in headless Chromium and the Python SDK, through the hub over wss.

The page is ``jssip_call.mjs``: Chromium's fake microphone (a beep every 500 ms), JsSIP placing
and answering calls the way the published browser SDK does (PROTOCOL.md sections 3 and 5), and a
WebAudio analyser on what it receives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from intercom.hub import HubConfig
from intercom.media import MediaPolicy, RecordingSink, packets_received
from intercom.media.tracks import SILENCE_RMS
from intercom.sdk import CallStatus

from ..conftest import STEP
from ..units import DESK_HZ, DOOR_HZ, LOOPBACK, store_flow
from .conftest import page_origin
from .jssip_page import JsSipPage

BEEP_HZ = 400.0  # Chromium's fake microphone: 400 Hz, full scale, a few frames every 500 ms
PAGE_HZ_TOLERANCE = 25.0  # the page's analyser bins are 48000 / 4096 = 11.7 Hz wide


@pytest.fixture
def hub_config(tmp_path: Path, tls_files: tuple[Path, Path], page_port: int) -> HubConfig:
    cert, key = tls_files
    return HubConfig(
        data_dir=tmp_path / "hub",
        host="127.0.0.1",
        port=0,
        cert_file=cert,
        key_file=key,
        media=MediaPolicy(host_addresses=LOOPBACK, jitter_frames=0),
        allowed_origins=(page_origin(page_port),),
    )


@pytest.fixture
async def open_page(hub, tmp_path: Path, page_port: int) -> AsyncIterator[Callable[[str], Any]]:
    """Pages registered with the hub, each on a new empty Chromium profile; closed at teardown."""
    pages: list[JsSipPage] = []

    async def open_(token: str) -> JsSipPage:
        profile = tmp_path / f"chromium-profile-{len(pages)}"
        profile.mkdir()
        async with asyncio.timeout(STEP):
            page = await JsSipPage.open(hub.address, token, profile, page_port)
        pages.append(page)
        await page.until(lambda: bool(page.of("registered") or page.of("registrationFailed")))
        assert page.of("registered"), page.report()
        return page

    yield open_
    for page in pages:
        code = await page.close()
        print(page.report())  # pytest shows it when the test failed
        assert code == 0, page.report()


async def hears_the_beep(sink: RecordingSink) -> None:
    """The browser's microphone reaches the Python end: loud, and at the fake device's pitch (not a tone of ours)."""
    async with asyncio.timeout(STEP):
        await sink.wait_for_audio(STEP)
        await sink.wait_until(lambda: sink.rms(1.0) > SILENCE_RMS, STEP)
        await sink.wait_until(lambda: sink.dominant_frequency(1.0) is not None, STEP)
    assert sink.dominant_frequency(1.0) == pytest.approx(BEEP_HZ, abs=15)


async def test_browser_calls_the_door_flow_and_a_python_desk_hears_it(hub, open_page, make_unit):
    await store_flow(hub, "door", "client:desk")
    desk = await make_unit("desk", DESK_HZ)
    token = hub.token("door", incoming=False, outgoing="door")
    page = await open_page(token)
    await page.command("call", target=f"sip:00000@{hub.address}", token=token)
    incoming = await desk.next_incoming()
    assert incoming.display_name == "door"
    # The page reports the frames it sent through its output, which may trail the hub's forwarding.
    await page.until(lambda: any(frame.startswith(">> INVITE ") for frame in page.sip))
    (invite,) = [frame for frame in page.sip if frame.startswith(">> INVITE ")]
    candidates = [line for line in invite.split("\r\n") if line.startswith("a=candidate:")]
    assert candidates and all(" 127.0.0.1 " in line or " ::1 " in line for line in candidates), candidates
    ringing = await page.event("progress")
    assert ringing["status_code"] == 180, ringing
    report = await page.event("postDialDelay")
    assert report["status_code"] == 200, report
    hub_call = hub.running.app.state.calls.calls[page.of("session")[0]["call_id"]]
    assert hub_call.stats["caller"].post_dial_delay_ms == float(report["delay"])
    answered = await desk.accept(incoming)
    await page.event("confirmed")
    await desk.events.until(lambda: CallStatus.CONFIRMED in desk.events.of("call.status"))
    steps = ("session", "progress", "accepted", "confirmed")
    assert [event["event"] for event in page.events if event["event"] in steps] == list(steps), page.report()

    await hears_the_beep(answered.sink)
    heard = await page.event("remoteAudio")
    assert heard["peak_hz"] == pytest.approx(DESK_HZ, abs=PAGE_HZ_TOLERANCE), heard
    assert heard["codec"] == "audio/opus", heard

    await page.command("hangup")
    ended = await page.event("ended")
    assert ended["originator"] == "local", ended
    await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
    assert desk.events.of("call.status") == [CallStatus.ACCEPTED, CallStatus.CONFIRMED, CallStatus.ENDED]
    assert not page.of("failed"), page.report()
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()


async def test_python_door_calls_a_browser_desk_and_both_hear_each_other(hub, open_page, make_unit):
    hub.running.config.media_timeout = 2.0
    await store_flow(hub, "door", "client:desk")
    page = await open_page(hub.token("desk", incoming=True))
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    call = door.start_call()
    session = await page.event("session")
    assert session["direction"] == "incoming" and session["display_name"] == "door", session
    await door.events.until(lambda: CallStatus.RINGING in door.events.of("call.status"))
    await page.command("answer")
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    await page.event("confirmed")
    assert door.events.of("call.status") == [
        CallStatus.CONNECTING, CallStatus.RINGING, CallStatus.ACCEPTED, CallStatus.CONFIRMED,
    ]  # fmt: skip

    await hears_the_beep(call.sink)
    heard = await page.event("remoteAudio")
    assert heard["peak_hz"] == pytest.approx(DOOR_HZ, abs=PAGE_HZ_TOLERANCE), heard
    assert heard["total_audio_energy"] > 0 and heard["audio_level"] > 0, heard

    # Muted, Chromium keeps sending (silence): longer than the media timeout of it ends nothing.
    await page.command("mute")
    callee = next(iter(hub.running.app.state.calls.calls.values())).callee
    start = packets_received(callee.media)
    async with asyncio.timeout(STEP):
        while packets_received(callee.media) < start + 125:  # 2.5 s of 20 ms packets
            await asyncio.sleep(0.05)
    assert call.status is CallStatus.CONFIRMED and not page.of("ended"), page.report()

    async with asyncio.timeout(STEP):
        await call.disconnect()
    ended = await page.event("ended")
    assert ended["originator"] == "remote", ended
    assert door.events.of("call.status")[-1] is CallStatus.ENDED
    assert not page.of("failed"), page.report()
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
