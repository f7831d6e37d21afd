"""The browser client's own call requests, replayed: its INVITE, then UPDATE, stats INFO and BYE in the call."""

from __future__ import annotations

import asyncio

from intercom.sdk import CallStatus
from intercom.sip import Dialog, Request, Via, parse_message

from ..conftest import STEP, replay, vector
from ..units import store_flow


async def test_the_browsers_invite_and_in_call_requests(hub, raw_sip, make_unit):
    await store_flow(hub, "door", "client:desk")
    desk = await make_unit("desk", 880.0)
    door = await raw_sip()
    token = hub.token("door", incoming=False, outgoing="door")
    invite = parse_message(replay("invite.sip", hub.address, token))
    assert isinstance(invite, Request)
    await door.send(invite)
    await desk.accept(await desk.next_incoming())
    ok = await door.final_response()
    assert ok.status_code == 200 and ok.to.tag and ok.contacts and b"opus/48000" in ok.body
    dialog = Dialog.from_uac(invite, ok)
    via = Via("WSS", "setdn3a1sf12.invalid", None, {})
    await door.send(dialog.create_ack(invite.cseq.number, via))
    await desk.events.until(lambda: CallStatus.CONFIRMED in desk.events.of("call.status"))

    update = dialog.create_request("UPDATE", via, headers=[("Session-Expires", "90;refresher=uac")])
    refreshed = await door.exchange(update)
    assert refreshed.status_code == 200 and refreshed.headers.get("Session-Expires") == "90;refresher=uac"

    stats_body = vector("info-stats.sip").split("\r\n\r\n", 1)[1].encode()
    stats = dialog.create_request("INFO", via, headers=[("Content-Type", "application/json")], body=stats_body)
    assert (await door.exchange(stats)).status_code == 200
    (call,) = hub.running.app.state.calls.calls.values()
    assert (call.stats["caller"].last_report, call.stats["caller"].reports) == (stats_body.decode(), 1)
    unknown = dialog.create_request("INFO", via, headers=[("Content-Type", "text/plain")], body=b"hello")
    assert (await door.exchange(unknown)).status_code == 415

    assert (await door.exchange(dialog.create_request("BYE", via))).status_code == 200
    await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()


async def test_a_request_for_no_known_dialog_gets_481(hub, raw_sip):
    sip = await raw_sip()
    bye = parse_message(vector("bye.sip").replace("127.0.0.1:8443", hub.address))
    assert (await sip.exchange(bye)).status_code == 481
