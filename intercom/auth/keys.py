"""Access keys: the id and secret a hub owner signs client tokens with.

The keys live in the hub's database; this module only defines what a key is and how a new
one is made, so that the token checker can take any lookup function.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AccessKey:
    id: str
    secret: str
    name: str
    created_at: float
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


KeyLookup = Callable[[str], AccessKey | None]


def new_key_id() -> str:
    return secrets.token_hex(12)


def new_key_secret() -> str:
    return secrets.token_urlsafe(30)
