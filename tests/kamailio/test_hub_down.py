"""A hub that dies mid-call: the edge hangs up the calls it carried, a BYE to each unit (a ringing
call: the calling unit answered 503, the called one CANCELed), and no other call
(deploy/kamailio/kamailio.cfg: the dialog module, event_route[dispatcher:dst-down]). Fake hubs,
raw units; a real hub once, for the edge's own BYE to a hub."""

from __future__ import annotations

import asyncio
import functools
import secrets
from dataclasses import dataclass

from intercom.sdk import CallStatus
from intercom.sip import Address, Dialog, Request, Response, SipUri, Via, make_response, parse_message

from ..conftest import Hub, RawSip, replay
from ..hub.test_proxied_kamailio import hub_config, through  # noqa: F401 (hub_config: the hub behind an edge)
from ..units import STEP, door_and_desk
from .edge import PROBING, Arrival, Edge, FakeHub, SipStream, by_path, fresh_register, hub_request, next_at_any
from .test_edge import ringing

UNIT_VIA = Via.parse("SIP/2.0/WSS setdn3a1sf12.invalid")
UNIT_CONTACT = Address(SipUri.parse("sip:desk@lu88cps5llju.invalid;transport=ws"))


@dataclass
class Call:
    """An answered, ACKed call through the edge: the unit's side of it and the hub's."""

    hub: FakeHub
    unit: RawSip
    unit_dialog: Dialog
    hub_dialog: Dialog
    hub_stream: SipStream
    flow: str  # the unit's P-Intercom-Flow, as the hub knows it


def fresh_invite(edge: Edge) -> Request:
    """The published protocol's INVITE aimed at ``edge``, a call of its own (Call-ID, tag, branch)."""
    text = replay("invite.sip", edge.host)
    for old in ("l92lglkmprigoal4ls0r", "u6r2eb1i9l", "z9hG4bK9291998"):
        text = text.replace(old, old[:2] + secrets.token_hex(8))
    invite = parse_message(text)
    assert isinstance(invite, Request)
    return invite


async def unit_sends(edge: Edge, unit: RawSip) -> Request:
    invite = fresh_invite(edge)
    await unit.send(invite)
    return invite


async def hub_answers(unit: RawSip, invite: Request, hub: FakeHub, arrival: Arrival) -> Call:
    """The hub answers the unit's INVITE 200, the unit ACKs it."""
    hub_contact = Address(SipUri.parse(f"sip:hub@{hub.address};transport=tcp"))
    await arrival.answer(200, headers=[("Contact", str(hub_contact))], body=b"v=0\r\n")
    answer = await unit.final_response()
    assert (answer.status_code, answer.call_id) == (200, invite.call_id)
    unit_dialog = Dialog.from_uac(invite, answer)
    await unit.send(unit_dialog.create_ack(invite.cseq.number, UNIT_VIA))
    assert (await hub.next("ACK")).request.call_id == invite.call_id
    hub_dialog = Dialog.from_uas(arrival.request, "hubtag", hub_contact)
    return Call(
        hub, unit, unit_dialog, hub_dialog, arrival.stream, arrival.request.headers.get("P-Intercom-Flow") or ""
    )


async def one_invite_at_each_hub(
    edge: Edge, hubs: list[FakeHub], units: list[RawSip]
) -> list[tuple[FakeHub, Request, Arrival]]:
    """An INVITE from each of two units, in turn: round robin gives them to the two hubs."""
    invites = [await unit_sends(edge, unit) for unit in units]
    arrived: dict[str, tuple[FakeHub, Arrival]] = {}
    for _ in invites:
        hub, arrival = await next_at_any(hubs, "INVITE")
        arrived[arrival.request.call_id] = (hub, arrival)
    placed = [(arrived[invite.call_id][0], invite, arrived[invite.call_id][1]) for invite in invites]
    assert placed[0][0] is not placed[1][0]
    return placed


async def unit_calls(edge: Edge, unit: RawSip, hubs: list[FakeHub]) -> Call:
    """The unit calls; whichever hub gets the INVITE answers it."""
    invite = await unit_sends(edge, unit)
    hub, arrival = await next_at_any(hubs, "INVITE")
    return await hub_answers(unit, invite, hub, arrival)


async def hub_calls(edge: Edge, hub: FakeHub, unit: RawSip, register: Request, sent_by: str | None = None) -> Call:
    """The hub calls the unit that sent ``register`` by its Path; the unit answers, the hub ACKs."""
    stream = await hub.connect(edge)
    target = register.contacts[0].uri
    invite = hub_request("INVITE", hub, target, register.headers.get_all("Path"), b"v=0\r\n", sent_by)
    await stream.send(invite)
    at_unit = await unit.receive()
    assert isinstance(at_unit, Request) and (at_unit.method, at_unit.call_id) == ("INVITE", invite.call_id)
    await unit.send(make_response(at_unit, 200, to_tag="desk", headers=[("Contact", str(UNIT_CONTACT))]))
    answer = await stream.final_response()
    assert answer.status_code == 200
    hub_dialog = Dialog.from_uac(invite, answer)
    await stream.send(hub_dialog.create_ack(invite.cseq.number, Via.parse(f"SIP/2.0/TCP {hub.address}")))
    ack = await unit.receive()
    assert isinstance(ack, Request) and ack.method == "ACK"
    flow = register.headers.get("P-Intercom-Flow") or ""
    return Call(hub, unit, Dialog.from_uas(at_unit, "desk", UNIT_CONTACT), hub_dialog, stream, flow)


async def registered(edge: Edge, unit: RawSip, hubs: list[FakeHub]) -> Request:
    """The unit's REGISTER as a hub got it (with its Path), answered."""
    await unit.send(fresh_register(edge))
    _, arrival = await next_at_any(hubs, "REGISTER")
    assert (await unit.final_response()).status_code == 200
    return arrival.request


async def hung_up_by_the_edge(call: Call) -> None:
    """The next message the unit gets is a BYE in the call's dialog (Call-ID, both tags, a CSeq
    above the hub's); the unit answers it 200."""
    bye = await call.unit.receive()
    assert isinstance(bye, Request) and bye.method == "BYE", bye
    assert call.unit_dialog.matches(bye), (bye.call_id, bye.from_.tag, bye.to.tag, call.unit_dialog.id)
    call.unit_dialog.receive_request(bye)
    await call.unit.send(make_response(bye, 200))


async def still_up(call: Call) -> None:
    """An in-dialog INFO of the unit's reaches the call's hub (its next request: no BYE came
    before it) and the hub's 200 comes back (the unit's next message: no BYE either)."""
    await call.unit.send(call.unit_dialog.create_request("INFO", UNIT_VIA, body=b"dtmf"))
    info = await call.hub.next()
    assert (info.request.method, info.request.call_id) == ("INFO", call.unit_dialog.call_id)
    await info.answer(200)
    reply = await call.unit.receive()
    assert isinstance(reply, Response) and (reply.status_code, reply.cseq.method) == (200, "INFO"), reply


async def no_bye_for(unit: RawSip, edge: Edge) -> None:
    """The unit's next message is the edge's answer to its keep-alive, not a BYE."""
    options = Request(method="OPTIONS", uri=SipUri.parse(f"sip:{edge.host}"))
    for name, value in fresh_invite(edge).headers:
        if name in ("Via", "From", "To", "Call-ID", "Max-Forwards"):
            options.headers.add(name, value)
    options.headers.add("CSeq", "1 OPTIONS")
    reply = await unit.exchange(options)
    assert (reply.status_code, reply.cseq.method) == (200, "OPTIONS"), reply


def down_line(hub: FakeHub, calls: int) -> str:
    return f"hub {hub.address} is down: the edge hangs up the {calls} calls it carried"


async def test_a_hub_killed_mid_call_has_both_units_hung_up_and_the_other_hub_untouched(
    start_edge, fake_hubs, open_unit
):
    edge = await start_edge([hub.address for hub in fake_hubs], **PROBING)
    caller, callee, other = await open_unit(edge), await open_unit(edge), await open_unit(edge)
    register = await registered(edge, callee, fake_hubs)
    placed = await one_invite_at_each_hub(edge, fake_hubs, [caller, other])
    (doomed, doomed_invite, doomed_arrival), (survivor, other_invite, survivor_arrival) = placed
    unit_call = await hub_answers(caller, doomed_invite, doomed, doomed_arrival)
    untouched = await hub_answers(other, other_invite, survivor, survivor_arrival)
    hub_call = await hub_calls(edge, doomed, callee, register)

    await doomed.stop()  # killed: it never hangs up, nor answers a probe
    async with asyncio.timeout(STEP):  # probing takes it out (1 s), the edge ends its calls (1 s)
        await asyncio.gather(hung_up_by_the_edge(unit_call), hung_up_by_the_edge(hub_call))
    await edge.logged(down_line(doomed, 2))
    for call in (unit_call, hub_call):
        await edge.logged(f"call {call.unit_dialog.call_id}: its hub is down, the edge hangs it up")

    await still_up(untouched)


async def test_a_hub_killed_while_its_calls_ring_ends_them_for_both_units(start_edge, fake_hubs, open_unit):
    edge = await start_edge([hub.address for hub in fake_hubs], **PROBING)
    caller, callee, other = await open_unit(edge), await open_unit(edge), await open_unit(edge)
    register = await registered(edge, callee, fake_hubs)
    placed = await one_invite_at_each_hub(edge, fake_hubs, [caller, other])
    (doomed, invite, arrival), (survivor, other_invite, other_arrival) = placed
    for unit, rung in ((caller, arrival), (other, other_arrival)):
        await rung.answer(180)
        assert (await ringing(unit)).status_code == 180
    stream = await doomed.connect(edge)  # and the doomed hub rings the callee
    hub_invite = by_path("INVITE", doomed, register, b"v=0\r\n")
    await stream.send(hub_invite)
    at_callee = await callee.receive()
    assert isinstance(at_callee, Request) and at_callee.method == "INVITE"
    await callee.send(make_response(at_callee, 180, to_tag="desk"))
    assert (await ringing(stream)).status_code == 180

    await doomed.stop()
    async with asyncio.timeout(STEP):
        refused = await caller.final_response()
        cancel = await callee.receive()
    assert (refused.status_code, refused.reason) == (503, "Service Unavailable: its hub is down")
    assert refused.call_id == invite.call_id
    assert isinstance(cancel, Request) and (cancel.method, cancel.call_id) == ("CANCEL", hub_invite.call_id)
    await callee.send(make_response(cancel, 200))
    await callee.send(make_response(at_callee, 487, to_tag="desk"))
    for call_id in (invite.call_id, hub_invite.call_id):
        await edge.logged(f"call {call_id} was ringing: its hub is down, the edge ends it")

    await hub_answers(other, other_invite, survivor, other_arrival)  # the other hub's goes on


async def test_a_call_hung_up_before_its_hub_died_gets_no_bye(start_edge, fake_hub, open_unit):
    edge = await start_edge([fake_hub.address], **PROBING)
    caller, callee, talking = await open_unit(edge), await open_unit(edge), await open_unit(edge)
    # the unit hangs up its call, and the hub its own
    ended = await unit_calls(edge, caller, [fake_hub])
    await caller.send(ended.unit_dialog.create_request("BYE", UNIT_VIA))
    bye = await fake_hub.next("BYE")
    await bye.answer(200)
    assert (await caller.final_response()).status_code == 200
    hub_ended = await hub_calls(edge, fake_hub, callee, await registered(edge, callee, [fake_hub]))
    await hub_ended.hub_stream.send(
        hub_ended.hub_dialog.create_request("BYE", Via.parse(f"SIP/2.0/TCP {fake_hub.address}"))
    )
    bye_at_unit = await callee.receive()
    assert isinstance(bye_at_unit, Request) and bye_at_unit.method == "BYE"
    await callee.send(make_response(bye_at_unit, 200))
    assert (await hub_ended.hub_stream.final_response()).status_code == 200
    live = await unit_calls(edge, talking, [fake_hub])

    await fake_hub.stop()
    async with asyncio.timeout(STEP):
        await hung_up_by_the_edge(live)
    await edge.logged(down_line(fake_hub, 1))
    await no_bye_for(caller, edge)
    await no_bye_for(callee, edge)


async def test_a_call_that_failed_over_belongs_to_the_hub_that_took_it(start_edge, fake_hubs, open_unit):
    edge = await start_edge([hub.address for hub in fake_hubs], **PROBING, HUB_DOWN_GRACE=2)
    unit = await open_unit(edge)
    invite = await unit_sends(edge, unit)
    silent, _ = await next_at_any(fake_hubs, "INVITE")  # not answered in HUB_TIMEOUT: the next hub
    taker, arrival = await next_at_any(fake_hubs, "INVITE")
    assert taker is not silent
    call = await hub_answers(unit, invite, taker, arrival)

    await silent.stop()  # the call is no longer its
    await edge.logged(down_line(silent, 0))
    await taker.stop()
    async with asyncio.timeout(STEP):
        await hung_up_by_the_edge(call)
    await edge.logged(down_line(taker, 1))


async def slow_hub_misses_an_invite(edge: Edge, hub: FakeHub, unit: RawSip) -> None:
    """A new call's INVITE that ``hub`` leaves unanswered past HUB_TIMEOUT: the edge takes it out
    and, with no other hub, answers the unit 408."""
    await unit_sends(edge, unit)
    await hub.next("INVITE")
    await edge.logged(f"hub {hub.address} did not answer in HUB_TIMEOUT=300 ms")
    assert (await unit.final_response()).status_code == 408


async def test_a_hub_that_missed_hub_timeout_but_is_back_keeps_its_calls(start_edge, fake_hub, open_unit):
    edge = await start_edge([fake_hub.address], **PROBING, HUB_DOWN_GRACE=3)
    call = await unit_calls(edge, await open_unit(edge), [fake_hub])
    await slow_hub_misses_an_invite(edge, fake_hub, await open_unit(edge))
    await edge.logged(f"hub {fake_hub.address} is up after HUB_DOWN_GRACE=3 s: its calls go on")
    await still_up(call)
    assert down_line(fake_hub, 1) not in edge.log()


async def test_a_hub_that_missed_hub_timeout_and_is_not_back_loses_its_calls(start_edge, fake_hub, open_unit):
    # no probe in the test's time: nothing brings the hub back
    edge = await start_edge([fake_hub.address], DS_PING_INTERVAL=60, HUB_TIMEOUT=300, HUB_DOWN_GRACE=1)
    call = await unit_calls(edge, await open_unit(edge), [fake_hub])
    await slow_hub_misses_an_invite(edge, fake_hub, await open_unit(edge))
    async with asyncio.timeout(STEP):
        await hung_up_by_the_edge(call)
    await edge.logged(down_line(fake_hub, 1))


async def test_calls_longer_than_call_lifetime_are_hung_up_on_both_sides(start_edge, fake_hub, open_unit):
    edge = await start_edge([fake_hub.address], CALL_LIFETIME=2)
    caller, callee = await open_unit(edge), await open_unit(edge)
    calls = [
        await unit_calls(edge, caller, [fake_hub]),
        await hub_calls(edge, fake_hub, callee, await registered(edge, callee, [fake_hub])),
    ]
    async with asyncio.timeout(STEP):
        await asyncio.gather(*(hung_up_by_the_edge(call) for call in calls))
        arrivals = [await fake_hub.next("BYE") for _ in calls]
    byes = {bye.request.call_id: bye for bye in arrivals}
    for call in calls:
        # the hub hears it with the unit's flow, as every request of the edge's: it ends its side too
        bye = byes[call.unit_dialog.call_id]
        assert call.hub_dialog.matches(bye.request)
        assert bye.request.headers.get("P-Intercom-Flow") == call.flow and call.flow
        await bye.answer(200)
        await edge.logged(f"call {call.unit_dialog.call_id} lasted CALL_LIFETIME=2 s: the edge hangs it up")


async def test_a_hub_call_whose_via_names_no_listed_hub_goes_through_untracked(start_edge, fake_hub, open_unit):
    edge = await start_edge([fake_hub.address], **PROBING)
    unit = await open_unit(edge)
    register = await registered(edge, unit, [fake_hub])
    stranger = f"{fake_hub.address.rpartition(':')[0]}:{fake_hub.port + 1}"
    call = await hub_calls(edge, fake_hub, unit, register, sent_by=stranger)
    await edge.logged(
        f"its Via names no hub of DISPATCHER_LIST, the edge will not end its call {call.unit_dialog.call_id}"
    )

    await fake_hub.stop()
    await edge.logged(down_line(fake_hub, 0))
    await no_bye_for(unit, edge)


async def test_a_real_hub_ends_its_side_of_a_call_the_edge_hangs_up(start_edge, hub: Hub, tls_files, unit_at) -> None:
    edge = await start_edge([hub.running.app.state.edge.flows.address.host], CALL_LIFETIME=2)
    door, desk = await door_and_desk(hub, functools.partial(unit_at, through(edge, hub, tls_files[0])))
    door.start_call()
    await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    for unit in (desk, door):  # the edge's BYE
        await unit.events.until(lambda unit=unit: CallStatus.ENDED in unit.events.of("call.status"))
    async with asyncio.timeout(STEP):  # the hub took the edge's BYEs (the units' flows on them)
        await hub.running.app.state.calls.wait_idle()
    assert hub.running.app.state.calls.answered == 1
