"""Capability strings, JWT minting and checking, access keys, TURN credentials."""

from .capabilities import (
    Capability,
    CapabilityError,
    IncomingCapability,
    InvalidIdentity,
    OutgoingCapability,
    check_identity,
    parse_capability,
)
from .keys import (
    ADMIN,
    PHONES,
    AccessKey,
    KeyLookup,
    KeyScope,
    new_key_id,
    new_key_secret,
    phone_scope,
    unit_scope,
    warn_if_legacy,
)
from .tokens import Grant, TokenError, TokenForbidden, TokenNotAcceptable, check_token, mint_token
from .turn import TurnCredentials, turn_credentials

__all__ = [
    "ADMIN",
    "AccessKey",
    "Capability",
    "CapabilityError",
    "Grant",
    "IncomingCapability",
    "InvalidIdentity",
    "KeyLookup",
    "KeyScope",
    "OutgoingCapability",
    "PHONES",
    "TokenError",
    "TokenForbidden",
    "TokenNotAcceptable",
    "TurnCredentials",
    "check_identity",
    "check_token",
    "mint_token",
    "new_key_id",
    "new_key_secret",
    "parse_capability",
    "phone_scope",
    "turn_credentials",
    "unit_scope",
    "warn_if_legacy",
]
