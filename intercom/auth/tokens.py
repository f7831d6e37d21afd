"""Client tokens: HS256 JWTs signed with an access key, in the seed SDK's format.

Claims: ``accessKeyID`` (which key signed it), ``capabilities`` (a list of capability
strings), ``iat`` and ``exp``. :func:`check_token` applies every rule the hub enforces and
raises :class:`TokenForbidden` (SIP 403) or :class:`TokenNotAcceptable` (SIP 406) with a
reason phrase that names the problem, so a user can fix their token from the error alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from .capabilities import (
    CapabilityError,
    IncomingCapability,
    InvalidIdentity,
    OutgoingCapability,
    parse_capability,
)
from .keys import AccessKey, KeyLookup

ALGORITHM = "HS256"
CLOCK_SKEW = 30
MAX_LIFETIME = 24 * 3600
REQUIRED_CLAIMS = ("accessKeyID", "capabilities", "iat", "exp")


class TokenError(Exception):
    """A token was refused. ``code`` is the SIP status to answer with."""

    code = 403

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenForbidden(TokenError):
    code = 403


class TokenNotAcceptable(TokenError):
    code = 406


@dataclass(frozen=True)
class Grant:
    """What a valid token allows."""

    access_key_id: str
    issued_at: int
    expires_at: int
    outgoing: OutgoingCapability | None = None
    incoming: IncomingCapability | None = None

    @property
    def identity(self) -> str | None:
        """The name the client is known by: its incoming identity, else its outgoing one."""
        if self.incoming is not None:
            return self.incoming.identity
        return self.outgoing.identity if self.outgoing is not None else None


def mint_token(
    key: AccessKey,
    capabilities: list[OutgoingCapability | IncomingCapability],
    ttl: int = 3600,
    now: float | None = None,
) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "accessKeyID": key.id,
        "capabilities": [str(capability) for capability in capabilities],
        "iat": issued,
        "exp": issued + ttl,
    }
    return jwt.encode(claims, key.secret, algorithm=ALGORITHM)


def check_token(token: str, lookup: KeyLookup, now: float | None = None) -> Grant:
    """Verify ``token`` and return what it grants, or raise a :class:`TokenError`."""
    now = time.time() if now is None else now
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenForbidden("Invalid token: not a JWT") from None
    if header.get("alg") != ALGORITHM:
        raise TokenForbidden(f"Invalid token: algorithm {header.get('alg')!r} not allowed, use {ALGORITHM}")
    for claim in REQUIRED_CLAIMS:
        if claim not in unverified:
            raise TokenForbidden(f"Invalid token: missing claim {claim}")
    key_id = unverified["accessKeyID"]
    key = lookup(key_id) if isinstance(key_id, str) else None
    if key is None:
        raise TokenForbidden("Invalid token: unknown access key")
    if key.revoked:
        raise TokenForbidden("Invalid token: access key revoked")
    try:
        claims = jwt.decode(
            token,
            key.secret,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidSignatureError:
        raise TokenForbidden("Invalid token: bad signature") from None
    except jwt.PyJWTError as exc:
        raise TokenForbidden(f"Invalid token: {exc}") from None
    issued, expires = claims["iat"], claims["exp"]
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise TokenForbidden("Invalid token: iat and exp must be numbers")
    if expires + CLOCK_SKEW < now:
        raise TokenForbidden("Invalid token: expired")
    if issued - CLOCK_SKEW > now:
        raise TokenForbidden("Invalid token: issued in the future")
    if expires - issued > MAX_LIFETIME:
        raise TokenForbidden("Invalid token: lifetime over 24 h")
    return _grant(claims, int(issued), int(expires))


def _grant(claims: dict, issued: int, expires: int) -> Grant:
    strings = claims["capabilities"]
    if not isinstance(strings, list):
        raise TokenForbidden("Invalid token: capabilities must be a list")
    outgoing = incoming = None
    for text in strings:
        if not isinstance(text, str):
            continue
        try:
            capability = parse_capability(text)
        except InvalidIdentity as exc:
            raise TokenNotAcceptable(f"Invalid identity: {exc}") from None
        except CapabilityError as exc:
            raise TokenForbidden(f"Invalid token: {exc}") from None
        if isinstance(capability, OutgoingCapability):
            outgoing = capability
        elif isinstance(capability, IncomingCapability):
            incoming = capability
    if outgoing is None and incoming is None:
        raise TokenForbidden("Invalid token: no recognised capability")
    return Grant(claims["accessKeyID"], issued, expires, outgoing, incoming)
