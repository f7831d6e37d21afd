"""Client tokens: HS256 JWTs signed with an access key, in the seed SDK's format.

Claims: ``accessKeyID`` (which key signed it), ``capabilities`` (a list of capability
strings), ``iat`` and ``exp``. What a token may grant is bounded by its key's scope
(:class:`~intercom.auth.keys.KeyScope`): a unit key's token for another identity is refused.
:func:`check_token` applies every rule the hub enforces and raises :class:`TokenForbidden`
(SIP 403) or :class:`TokenNotAcceptable` (SIP 406) with a reason phrase that names the
problem, so a user can fix their token from the error alone.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt

from .capabilities import (
    CapabilityError,
    IncomingCapability,
    InvalidIdentity,
    OutgoingCapability,
    parse_capability,
)
from .keys import AccessKey, KeyLookup, KeyScope, warn_if_legacy

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
    """Verify ``token`` and return what it grants, or raise a :class:`TokenError`.

    Every REGISTER pays for this, so the token is parsed once: PyJWT would parse it three
    times (header, claims to find the key, then verified), which was a fifth of the hub's
    CPU per REGISTER. With one algorithm allowed the check is a single HMAC-SHA256.
    """
    now = time.time() if now is None else now
    header, claims, signing_input, signature = _split_token(token)
    if header.get("alg") != ALGORITHM:
        raise TokenForbidden(f"Invalid token: algorithm {header.get('alg')!r} not allowed, use {ALGORITHM}")
    for claim in REQUIRED_CLAIMS:
        if claim not in claims:
            raise TokenForbidden(f"Invalid token: missing claim {claim}")
    key_id = claims["accessKeyID"]
    key = lookup(key_id) if isinstance(key_id, str) else None
    if key is None:
        raise TokenForbidden("Invalid token: unknown access key")
    if key.revoked:
        raise TokenForbidden("Invalid token: access key revoked")
    expected = hmac.digest(key.secret.encode(), signing_input, "sha256")
    if not hmac.compare_digest(expected, signature):
        raise TokenForbidden("Invalid token: bad signature")
    issued, expires = claims["iat"], claims["exp"]
    if not _is_finite_number(issued) or not _is_finite_number(expires):
        raise TokenForbidden("Invalid token: iat and exp must be finite numbers")
    if expires + CLOCK_SKEW < now:
        raise TokenForbidden("Invalid token: expired")
    if issued - CLOCK_SKEW > now:
        raise TokenForbidden("Invalid token: issued in the future")
    if expires - issued > MAX_LIFETIME:
        raise TokenForbidden("Invalid token: lifetime over 24 h")
    grant = _grant(claims, int(issued), int(expires))
    if key.scope is None:
        warn_if_legacy(key)
    elif not key.scope.admin:
        _check_scope(key.id, key.scope, grant)
    return grant


def _check_scope(key_id: str, scope: KeyScope, grant: Grant) -> None:
    """Refuse a grant beyond what a unit key may sign: a few comparisons, every REGISTER pays them."""
    who = f"Forbidden: key {key_id}"
    identities = ", ".join(scope.identities)
    if grant.outgoing is not None and grant.outgoing.identity is None:
        raise TokenForbidden(f"{who} may mint tokens for {identities} only: its client.outgoing names no identity")
    for capability in (grant.incoming, grant.outgoing):
        if capability is not None and capability.identity not in scope.identities:
            raise TokenForbidden(f"{who} may mint tokens for {identities} only, not {capability.identity}")
    if grant.incoming is not None and not scope.incoming:
        raise TokenForbidden(f"{who} may not receive calls")
    if grant.outgoing is not None and grant.outgoing.call_processor_id not in scope.outgoing_flows:
        allowed = ", ".join(scope.outgoing_flows) or "none"
        raise TokenForbidden(f"{who} may not start call flow {grant.outgoing.call_processor_id} (only {allowed})")


_SEGMENT_RE = re.compile(r"[A-Za-z0-9_-]*\Z")


def _split_token(token: str) -> tuple[dict, dict, bytes, bytes]:
    """Header, claims, signing input and signature of a compact JWS, strictly decoded."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT_RE.match(part) for part in parts):
        raise TokenForbidden("Invalid token: not a JWT")
    try:
        header, claims = _header(parts[0]), json.loads(_b64url(parts[1]))
        signature = _b64url(parts[2])
    except (ValueError, binascii.Error):
        raise TokenForbidden("Invalid token: not a JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenForbidden("Invalid token: not a JWT")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature


@functools.lru_cache(maxsize=256)
def _header(segment: str) -> Any:
    """A JOSE header; nearly every token carries the same one. Shared: read, never change."""
    return json.loads(_b64url(segment))


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _is_finite_number(value: object) -> bool:
    """json.loads reads NaN and Infinity, which no comparison or int() handles sensibly."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _grant(claims: dict, issued: int, expires: int) -> Grant:
    strings = claims["capabilities"]
    if not isinstance(strings, list):
        raise TokenForbidden("Invalid token: capabilities must be a list")
    outgoing, incoming = _capabilities(tuple(text for text in strings if isinstance(text, str)))
    return Grant(claims["accessKeyID"], issued, expires, outgoing, incoming)


@functools.lru_cache(maxsize=4096)
def _capabilities(strings: tuple[str, ...]) -> tuple[OutgoingCapability | None, IncomingCapability | None]:
    """The capabilities a token grants. A client's capability strings stay the same from one
    token to the next, so they are parsed once; the objects are shared, never changed."""
    outgoing = incoming = None
    for text in strings:
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
    return outgoing, incoming
