"""The hub's own call legs use the TURN servers it hands to clients, with credentials of their own."""

from __future__ import annotations

import base64
import hashlib
import hmac

from intercom.hub import HubConfig
from intercom.media import IceServer, MediaPolicy


def test_without_turn_the_legs_use_the_configured_policy(tmp_path):
    policy = MediaPolicy(host_addresses=("127.0.0.1",), jitter_frames=0)
    assert HubConfig(data_dir=tmp_path, media=policy).leg_media() is policy


def test_with_turn_the_legs_add_the_turn_servers_with_hub_credentials(tmp_path):
    stun = IceServer(("stun:stun.example.invalid:3478",))
    config = HubConfig(
        data_dir=tmp_path,
        turn_urls=["turn:turn.example.invalid:3478?transport=udp"],
        turn_secret="s3cret",
        media=MediaPolicy(ice_servers=(stun,), jitter_frames=0),
    )
    policy = config.leg_media()
    assert policy.jitter_frames == 0 and policy.ice_servers[0] == stun
    turn = policy.ice_servers[1]
    assert turn.urls == ("turn:turn.example.invalid:3478?transport=udp",)
    expiry, identity = turn.username.split(":")
    assert identity == "hub" and int(expiry) > 0
    expected = base64.b64encode(hmac.new(b"s3cret", turn.username.encode(), hashlib.sha1).digest()).decode()
    assert turn.credential == expected
