"""Time-limited TURN credentials in coturn's REST-API form (``use-auth-secret``).

The username is ``<unix expiry>:<identity>`` and the password the base64 HMAC-SHA1 of the
username keyed with the secret shared with the TURN server, so the server checks it
without asking us.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TurnCredentials:
    username: str
    password: str


def turn_credentials(secret: str, identity: str, ttl: int = 86400, now: float | None = None) -> TurnCredentials:
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{identity}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredentials(username, base64.b64encode(digest).decode())
