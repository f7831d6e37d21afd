"""Random identifiers: branches, tags, Call-IDs, and the `.invalid` host of RFC 7118."""

from __future__ import annotations

import secrets
import string

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 section 8.1.1.7: marks an RFC 3261 branch
# 32 symbols, so that one random byte masked to 5 bits picks one without bias.
_ALPHABET = string.ascii_lowercase + "234567"


def random_token(length: int) -> str:
    return "".join(_ALPHABET[byte & 31] for byte in secrets.token_bytes(length))


def new_branch() -> str:
    return BRANCH_MAGIC + random_token(16)


def new_tag() -> str:
    return random_token(10)


def new_call_id() -> str:
    return random_token(22)


def invalid_host() -> str:
    """A host name that cannot resolve, for the Via and Contact of a WebSocket client."""
    return random_token(12) + ".invalid"
