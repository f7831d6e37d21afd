"""Paired phones: a one-time pairing code, then a device credential that mints the phone's tokens.

``intercom web add`` (on the hub's machine, reading its data directory) makes an invitation: an
access key scoped to the phone's identity with a desk's rights and the group ``phones``
(:func:`~intercom.auth.keys.phone_scope`), and a one-time code, valid :data:`CODE_SECONDS`.
The browser that opens the printed link trades the code for a credential (``POST
/desk/api/pair``), then the credential for short-lived JWTs signed with the phone's key
(``POST /desk/api/token``). Codes and credentials are random (256 bits) and stored only as their
SHA-256: whoever reads the database cannot pair or be a phone with what they find there, and a
hash of a random secret that long needs no salt nor slow hashing.

A phone is its key: revoking it revokes the key, so the hub's sweeper drops its registrations
and ends its calls at once, as for a revoked unit key, and its next token request gets 401.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
from dataclasses import dataclass

from ..auth import IncomingCapability, OutgoingCapability, check_identity, mint_token, phone_scope
from .storage import Storage

CODE_SECONDS = 600.0  # how long a pairing link works
PAIR_PATH = "/desk/pair"
_COLUMNS = "id, identity, name, device, created_at, code_expires_at, paired_at, last_token_at, revoked_at"


class PairingError(ValueError):
    """A pairing or a revocation that cannot be done; the message says why."""


class CodeGone(PairingError):
    """The code is unknown, used or expired (HTTP 410)."""


@dataclass(frozen=True)
class Phone:
    id: str  # also its access key's id
    identity: str
    name: str
    device: str | None  # what the browser called itself when it paired
    created_at: float
    code_expires_at: float
    paired_at: float | None
    last_token_at: float | None
    revoked_at: float | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "paired" if self.paired_at is not None else "waiting for pairing"


@dataclass(frozen=True)
class Invitation:
    phone: Phone
    code: str  # shown once, in the link


@dataclass(frozen=True)
class Paired:
    credential: str  # shown once, to the browser that paired
    identity: str


def pairing_link(origin: str, code: str) -> str:
    """The link the QR code holds; the code is in the fragment, which browsers never send (no log sees it)."""
    return f"{origin.rstrip('/')}{PAIR_PATH}#code={code}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class PhoneBook:
    """The paired phones of one hub database."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def invite(
        self, identity: str, name: str | None = None, flow: str | None = None, code_seconds: float = CODE_SECONDS
    ) -> Invitation:
        """A new phone waiting to pair as ``identity``: its key, and the one-time code."""
        check_identity(identity)
        for key in await self.storage.list_keys():
            # a unit's identity would give the phone the unit's rights at the door
            unit = key.scope is not None and key.scope.group is None
            if unit and not key.revoked and identity in key.scope.identities:  # type: ignore[union-attr]
                raise PairingError(f"{identity} is a unit's identity (key {key.id}): give the phone a name of its own")
        for phone in await self.phones():
            if phone.identity == identity and phone.state == "paired":
                raise PairingError(f"{identity} is paired already (phone {phone.id}): `intercom web revoke` it first")
        key = await self.storage.create_key(f"phone {identity}", phone_scope(identity, flow))
        code, now = secrets.token_urlsafe(32), time.time()
        await self.storage.run(
            "INSERT INTO phones (id, identity, name, code_hash, code_expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key.id, identity, name or identity, _hash(code), now + code_seconds, now),
        )
        phone = await self._phone("id = ?", key.id)
        assert phone is not None
        return Invitation(phone, code)

    async def pair(self, code: str, device: str, now: float | None = None) -> Paired:
        """Trade a one-time code for the phone's credential; :class:`CodeGone` when it cannot be."""
        now = time.time() if now is None else now
        credential = secrets.token_urlsafe(32)
        async with self.storage.transaction():  # two browsers with one code: one wins
            row = await self.storage.row(
                "SELECT id, identity, code_expires_at FROM phones WHERE code_hash = ? AND revoked_at IS NULL",
                (_hash(code),),
            )
            if row is None:
                raise CodeGone("this pairing code is unknown, used or revoked")
            phone_id, identity, expires_at = row
            if expires_at < now:
                raise CodeGone("this pairing code has expired: make a new one with `intercom web add`")
            # the code in the WHERE too: on PostgreSQL the second of two transactions waits here,
            # then finds the code gone (SQLite's write lock already kept it out)
            if not await self.storage.run(
                "UPDATE phones SET code_hash = NULL, credential_hash = ?, device = ?, paired_at = ? "
                "WHERE id = ? AND code_hash = ?",
                (_hash(credential), device, now, phone_id, _hash(code)),
            ):
                raise CodeGone("this pairing code is unknown, used or revoked")
        return Paired(credential, identity)

    async def phone_of(self, credential: str) -> Phone | None:
        """The paired, unrevoked phone whose credential this is."""
        phone = await self._phone("credential_hash = ?", _hash(credential))
        if phone is None or phone.revoked_at is not None:
            return None
        key = self.storage.get_key(phone.id)
        return phone if key is not None and not key.revoked else None

    async def token(self, phone: Phone, ttl: int, now: float | None = None) -> tuple[str, int]:
        """A JWT for the phone's identity with its key's capabilities, and when it expires."""
        key = self.storage.get_key(phone.id)
        if key is None or key.scope is None:
            raise PairingError(f"phone {phone.id} has no key")
        now = time.time() if now is None else now
        capabilities: list[IncomingCapability | OutgoingCapability] = [IncomingCapability(phone.identity)]
        capabilities += [OutgoingCapability(flow, phone.identity) for flow in key.scope.outgoing_flows[:1]]
        # Only for `intercom web list`: a card gone read-only still lets the phone in.
        with contextlib.suppress(*self.storage.errors):
            await self.storage.run("UPDATE phones SET last_token_at = ? WHERE id = ?", (now, phone.id))
        return mint_token(key, capabilities, ttl=ttl, now=now), int(now) + ttl

    async def phones(self) -> list[Phone]:
        rows = await self.storage.rows(f"SELECT {_COLUMNS} FROM phones ORDER BY created_at")
        return [Phone(*row) for row in rows]

    async def revoke(self, which: str) -> list[Phone]:
        """Revoke the phones of identity (or id) ``which`` that are not revoked yet: their keys too,
        which the running hub notices within half a second. :class:`PairingError` when none."""
        found = [
            phone for phone in await self.phones() if which in (phone.id, phone.identity) and phone.revoked_at is None
        ]
        if not found:
            raise PairingError(f"no phone {which!r} that is not revoked already (`intercom web list`)")
        now = time.time()
        for phone in found:
            await self.storage.run(
                "UPDATE phones SET revoked_at = ?, code_hash = NULL, credential_hash = NULL WHERE id = ?",
                (now, phone.id),
            )
            await self.storage.revoke_key(phone.id)
        return [phone for phone in await self.phones() if phone.id in {found_one.id for found_one in found}]

    async def _phone(self, where: str, value: str) -> Phone | None:
        row = await self.storage.row(f"SELECT {_COLUMNS} FROM phones WHERE {where}", (value,))
        return Phone(*row) if row else None
