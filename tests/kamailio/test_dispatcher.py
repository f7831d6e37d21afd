"""The edge's choice of hub: failover on no answer, a 5xx or a refused connection, and OPTIONS
probing that takes a silent hub out and a returning one back (deploy/kamailio/kamailio.cfg)."""

from __future__ import annotations

import json

from intercom.sip import Response

from ..conftest import RawSip
from .edge import PROBING, Edge, FakeHub, fresh_register, next_at_any, register_answer

# probing far apart (a minute) where a test is about one request's failover
NO_PROBING = {"DS_PING_INTERVAL": 60, "HUB_TIMEOUT": 300}


async def register(edge: Edge, unit: RawSip) -> None:
    await unit.send(fresh_register(edge))


async def register_to_silent_hubs(start_edge, fake_hubs: list[FakeHub], open_unit) -> RawSip:
    """Hubs that leave the answers to the test, an edge before them, a unit's REGISTER sent."""
    for hub in fake_hubs:
        hub.answering = False
    edge = await start_edge([hub.address for hub in fake_hubs], **NO_PROBING)
    unit = await open_unit(edge)
    await register(edge, unit)
    return unit


def answered_by(response: Response) -> str:
    return json.loads(response.body)["hub"]


async def test_a_register_whose_hub_does_not_answer_goes_to_the_next(start_edge, fake_hubs, open_unit):
    unit = await register_to_silent_hubs(start_edge, fake_hubs, open_unit)
    silent, _ = await next_at_any(fake_hubs, "REGISTER")
    other, arrival = await next_at_any(fake_hubs, "REGISTER")
    assert other is not silent
    await arrival.stream.send(register_answer(arrival.request, other.address))
    response = await unit.final_response()
    assert (response.status_code, answered_by(response)) == (200, other.address)


async def test_a_register_a_hub_refuses_with_a_5xx_goes_to_the_next(start_edge, fake_hubs, open_unit):
    unit = await register_to_silent_hubs(start_edge, fake_hubs, open_unit)
    busy, arrival = await next_at_any(fake_hubs, "REGISTER")
    await arrival.answer(503, "Service Unavailable")
    other, arrival = await next_at_any(fake_hubs, "REGISTER")
    assert other is not busy
    await arrival.stream.send(register_answer(arrival.request, other.address))
    assert answered_by(await unit.final_response()) == other.address


async def test_a_4xx_of_a_hub_is_the_answer(start_edge, fake_hubs, open_unit):
    unit = await register_to_silent_hubs(start_edge, fake_hubs, open_unit)
    _, arrival = await next_at_any(fake_hubs, "REGISTER")
    await arrival.answer(403, "Forbidden: bad token")
    response = await unit.final_response()
    assert (response.status_code, response.reason) == (403, "Forbidden: bad token")
    assert all(hub.arrivals.empty() for hub in fake_hubs)


async def test_a_register_whose_hub_is_down_goes_to_the_other(start_edge, fake_hubs, open_unit):
    down, up = fake_hubs
    await down.stop()
    edge = await start_edge([down.address, up.address], **NO_PROBING)
    unit = await open_unit(edge)
    for _ in range(2):  # round robin: one of them is first sent to the hub that is down
        await register(edge, unit)
        response = await unit.final_response()
        assert (response.status_code, answered_by(response)) == (200, up.address)


async def test_no_hub_up_is_a_503(start_edge, fake_hubs, open_unit):
    for hub in fake_hubs:
        await hub.stop()
    edge = await start_edge([hub.address for hub in fake_hubs], **NO_PROBING)
    unit = await open_unit(edge)
    await register(edge, unit)
    response = await unit.final_response()
    assert response.status_code == 503
    assert response.headers.get("Retry-After") == "60"


async def test_probing_takes_a_silent_hub_out_and_a_returning_one_back(start_edge, fake_hubs, open_unit):
    first, second = fake_hubs
    edge = await start_edge([first.address, second.address], **PROBING)
    unit = await open_unit(edge)

    first.answering = False
    await first.wait_probes(2)  # the first unanswered one timed out (300 ms) before the next (1 s)
    for _ in range(4):  # round robin would send two of these to the first hub
        await register(edge, unit)
        response = await unit.final_response()
        assert (response.status_code, answered_by(response)) == (200, second.address)
    assert first.arrivals.empty()

    first.answering = True
    await first.wait_probes(2)  # one answered probe takes it back
    answered = set()
    for _ in range(4):
        await register(edge, unit)
        answered.add(answered_by(await unit.final_response()))
    assert answered == {first.address, second.address}


async def test_a_stopped_hub_is_taken_back_when_it_returns(start_edge, fake_hubs, open_unit):
    first, second = fake_hubs
    edge = await start_edge([first.address, second.address], **PROBING)
    unit = await open_unit(edge)
    await first.stop()
    for _ in range(4):
        await register(edge, unit)
        assert answered_by(await unit.final_response()) == second.address

    returned = FakeHub(first.port)
    await returned.start()
    try:
        await returned.wait_probes(2)
        answered = set()
        for _ in range(4):
            await register(edge, unit)
            answered.add(answered_by(await unit.final_response()))
        assert answered == {first.address, second.address}
    finally:
        await returned.stop()
