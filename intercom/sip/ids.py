"""Random identifiers: branches, tags, Call-IDs, and the `.invalid` host of RFC 7118."""

from __future__ import annotations

import secrets
import string

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 section 8.1.1.7: marks an RFC 3261 branch
_ALPHABET = string.ascii_lowercase + string.digits


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_branch() -> str:
    return BRANCH_MAGIC + random_token(16)


def new_tag() -> str:
    return random_token(10)


def new_call_id() -> str:
    return random_token(22)


def invalid_host() -> str:
    """A host name that cannot resolve, for the Via and Contact of a WebSocket client."""
    return random_token(12) + ".invalid"
