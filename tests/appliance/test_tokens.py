"""The unit mints its own short-lived tokens, which the hub's check accepts."""

from __future__ import annotations

from intercom.appliance.settings import Settings
from intercom.appliance.tokens import TOKEN_TTL_S, token_minter
from intercom.auth.keys import AccessKey
from intercom.auth.tokens import check_token

SECRET = "a-secret-of-the-length-hs256-wants-0123456789"


def test_each_refresh_mints_a_ten_minute_token_for_this_identity_and_its_call_flow():
    settings = Settings(
        role="desk", identity="desk", hub_url="ws://127.0.0.1:8443", access_key_id="k1",
        access_key=SECRET, unlock_code="1234#", call_flow="call_door",
    )  # fmt: skip
    hub_key = AccessKey("k1", SECRET, name="desk unit", created_at=0.0)
    mint = token_minter(settings)
    grant = check_token(mint(), lambda key_id: hub_key if key_id == "k1" else None)
    assert grant.identity == "desk" and grant.incoming is not None
    assert grant.outgoing is not None and grant.outgoing.call_processor_id == "call_door"
    assert grant.outgoing.identity == "desk"
    assert grant.expires_at - grant.issued_at == TOKEN_TTL_S
