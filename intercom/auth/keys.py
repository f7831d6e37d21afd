"""Access keys: the id and secret a hub owner signs client tokens with, and what each key may do.

The keys live in the hub's database; this module only defines what a key is and how a new
one is made, so that the token checker can take any lookup function.

A key's :class:`KeyScope` says what its tokens may grant. An admin key (the Voice API, tokens
for any identity) stays on the hub; a unit key, the one a unit's env file holds, mints tokens
for its own identities only, with only the capabilities that unit needs, and has no REST
rights: whoever reads an outdoor unit's SD card can be that unit and nothing more.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyScope:
    """What the tokens of a key may grant. ``admin``: anything, and the Voice API. Otherwise
    tokens for ``identities`` only, ``client.incoming`` only when ``incoming``, and
    ``client.outgoing`` only for the call flows in ``outgoing_flows``, naming one of the identities.
    ``group``: the group the hub asserts its identities are in (``phones`` for a paired phone), which
    a transfer may ring (``group:phones``) and a door's allow-list may name."""

    admin: bool = False
    identities: tuple[str, ...] = ()
    incoming: bool = False
    outgoing_flows: tuple[str, ...] = ()
    group: str | None = None

    def as_dict(self) -> dict[str, object]:
        """As stored and as ``intercom keys`` prints it."""
        return {
            "admin": self.admin,
            "identities": list(self.identities),
            "incoming": self.incoming,
            "outgoingFlows": list(self.outgoing_flows),
            **({"group": self.group} if self.group is not None else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    @classmethod
    def from_json(cls, text: str) -> KeyScope:
        data = json.loads(text)
        return cls(
            bool(data["admin"]),
            tuple(data["identities"]),
            bool(data["incoming"]),
            tuple(data["outgoingFlows"]),
            data.get("group"),
        )

    def __str__(self) -> str:
        if self.admin:
            return "admin (Voice API, tokens for any identity)"
        rights = ["incoming calls"] if self.incoming else []
        if self.outgoing_flows:
            rights.append(f"outgoing calls running {', '.join(self.outgoing_flows)}")
        kind = f"{self.group} member" if self.group is not None else "unit"
        return f"{kind} {', '.join(self.identities)}: {'; '.join(rights) or 'no calls'}"


ADMIN = KeyScope(admin=True)


def unit_scope(role: str, identity: str, flow: str) -> KeyScope:
    """The scope of a unit's own key: tokens for ``identity``, receiving calls, and starting the
    one call flow its CALL button runs (``flow``: a door's rings the desks, a desk's the door)."""
    if role not in ("door", "desk"):
        raise ValueError(f"role {role!r} is neither door nor desk")
    return KeyScope(identities=(identity,), incoming=True, outgoing_flows=(flow,))


PHONES = "phones"


def phone_scope(identity: str, flow: str | None = None) -> KeyScope:
    """A paired phone's: a desk's rights (receiving calls, and starting ``flow`` if a desk has one),
    for its own identity, in the group ``phones`` the door flow rings and a door may trust."""
    return KeyScope(identities=(identity,), incoming=True, outgoing_flows=(flow,) if flow else (), group=PHONES)


@dataclass(frozen=True)
class AccessKey:
    id: str
    secret: str
    name: str
    created_at: float
    revoked_at: float | None = None
    scope: KeyScope | None = None  # None: a legacy key, made before scopes, that may do anything

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


KeyLookup = Callable[[str], AccessKey | None]

SPLIT_HINT = (
    "split it: on the hub run `intercom units add --role door --identity door` (and one per desk), "
    "put each printed key in that unit's env file, then `intercom keys revoke {id}`"
)

_warned: set[str] = set()


def warn_if_legacy(key: AccessKey) -> None:
    """Log, once per key and process, that an unscoped key is in use and how to replace it."""
    if key.scope is None and key.id not in _warned:
        _warned.add(key.id)
        log.warning(
            "access key %s (%s) is a legacy unscoped key: it can mint tokens for any identity and use the "
            "Voice API; %s",
            key.id,
            key.name,
            SPLIT_HINT.format(id=key.id),
        )


def new_key_id() -> str:
    return secrets.token_hex(12)


def new_key_secret() -> str:
    return secrets.token_urlsafe(30)
