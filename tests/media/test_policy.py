"""The media policy: ICE servers spelled out, per-connection host addresses, TURN from REGISTER."""

from __future__ import annotations

import asyncio

import pytest

from intercom.media import IceServer, MediaPolicy, ice_servers_from_turn

from ..conftest import STEP
from .helpers import MediaKit


def test_no_ice_servers_means_none_not_aiortcs_default() -> None:
    assert MediaPolicy().rtc_configuration().iceServers == []


def test_ice_servers_are_passed_with_their_credentials() -> None:
    policy = MediaPolicy(ice_servers=[IceServer(["turn:127.0.0.1:3478"], "1700000000:desk", "secret")])
    (server,) = policy.rtc_configuration().iceServers
    assert (server.urls, server.username, server.credential) == (["turn:127.0.0.1:3478"], "1700000000:desk", "secret")


def test_bad_settings_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="does not start with one of"):
        IceServer(["http://127.0.0.1"])
    with pytest.raises(ValueError, match="jitter_frames"):
        MediaPolicy(jitter_frames=-1)
    with pytest.raises(TypeError, match="not one string"):
        MediaPolicy(host_addresses="127.0.0.1")


def test_turn_info_from_register_becomes_one_ice_server() -> None:
    turn = {
        "servers": ["turn:127.0.0.1:3478", "turns:127.0.0.1:5349"],
        "credentials": {"username": "u", "password": "p"},
    }
    assert ice_servers_from_turn(turn) == [IceServer(("turn:127.0.0.1:3478", "turns:127.0.0.1:5349"), "u", "p")]
    assert ice_servers_from_turn({"servers": [], "credentials": {"username": "u", "password": "p"}}) == []


@pytest.mark.parametrize(
    "turn",
    [
        {},
        {"servers": "turn:127.0.0.1"},
        {"servers": ["turn:127.0.0.1"]},
        {"servers": [], "credentials": {"username": 1}},
    ],
)
def test_malformed_turn_info_is_refused(turn: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="TURN"):
        ice_servers_from_turn(turn)


async def host_candidates(media: MediaKit, policy: MediaPolicy) -> list[str]:
    pc = media.pc(policy)
    pc.addTransceiver("audio")
    async with asyncio.timeout(STEP):
        await pc.setLocalDescription(await pc.createOffer())
    lines = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")]
    return [line.split()[4] for line in lines]


async def test_host_addresses_apply_to_one_peer_connection_only(media: MediaKit) -> None:
    assert await host_candidates(media, MediaPolicy(host_addresses=["127.0.0.1"])) == ["127.0.0.1"]
    # aioice's own choice, in the same process: every interface but loopback.
    assert "127.0.0.1" not in await host_candidates(media, MediaPolicy())
