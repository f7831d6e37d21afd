"""The unit's own tokens: minted with its access key, short-lived, made afresh for each refresh.

The key never leaves the unit; the hub only ever sees tokens, each good for ten minutes, so a
token copied off the wire is soon useless. Both roles may receive calls (a desk calls the door
to listen in) and start the call flow of their CALL button.
"""

from __future__ import annotations

from collections.abc import Callable

from ..auth.capabilities import IncomingCapability, OutgoingCapability
from ..auth.keys import AccessKey
from ..auth.tokens import mint_token
from .settings import Settings

TOKEN_TTL_S = 600


def token_minter(settings: Settings) -> Callable[[], str]:
    """What the SDK's ``refresh_token`` calls: a new token each time."""
    secret = settings.access_key.get_secret_value()
    key = AccessKey(settings.access_key_id, secret, name=settings.identity, created_at=0.0)  # only signs
    capabilities = [
        IncomingCapability(settings.identity),
        OutgoingCapability(settings.flow, identity=settings.identity),
    ]
    return lambda: mint_token(key, capabilities, ttl=TOKEN_TTL_S)
