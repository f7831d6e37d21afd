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
from .keys import ADMIN, AccessKey, KeyLookup, KeyScope, new_key_id, new_key_secret, unit_scope, warn_if_legacy
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
    "turn_credentials",
    "unit_scope",
    "warn_if_legacy",
]
