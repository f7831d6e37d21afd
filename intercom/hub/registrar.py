"""The registrar: who is reachable, on which WebSocket (PROTOCOL.md section 2).

Every client registers as ``sip:anonymous@<host>``; its identity comes only from the JWT
in ``WebRTC-Token``. A binding therefore belongs to the connection it arrived on (nothing
in the client's ``.invalid`` Contact can be routed to) and lives until it expires, is
un-registered, or its socket closes. One identity may have bindings on many connections:
a call to it rings them all.

A binding lasts no longer than the token that made it (the client re-registers with a fresh
one in time, as the 200 tells it when) and ends at once when that token's key is revoked
(:meth:`Registrar.drop_keys`). A connection and an identity hold a bounded number of them.

Whether an identity is reachable at all (it has a binding) is told to presence listeners
(:meth:`Registrar.on_presence`) when it changes: the MQTT bridge shows it as the unit's Online.

A Contact that is not a ``sip:``/``sips:`` URI (``tel:``, ``mailto:``) makes the REGISTER a 400
and stores nothing. RFC 3261 (10.2.1) lets a registrar bind such URIs, but this hub reaches a
binding only by a SIP request over the WebSocket it came on, so one could never be used; and
416 would be the wrong answer: it names the scheme of the Request-URI (21.4.13), not a header's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..auth import Grant, KeyLookup, TokenError, check_token
from ..sip import Address, ParseError, Request, Response, SipUri, make_response
from .bindings import Binding, MemoryBindings
from .callflows import GROUP_PREFIX
from .config import HubConfig

if TYPE_CHECKING:
    from .shared_location import SharedLocation

log = logging.getLogger(__name__)

DEFAULT_EXPIRES = 60
MAX_CONTACTS_PER_CONNECTION = 10
MAX_CONTACTS_PER_IDENTITY = 10

PresenceListener = Callable[[str, bool], None]  # (identity, reachable now), called as it changes


class Registrar:
    def __init__(self, config: HubConfig, lookup_key: KeyLookup, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._lookup_key = lookup_key
        self._clock = clock
        self._bindings = MemoryBindings()
        self._zone_body = json.dumps({"zone": config.zone}).encode()  # the answer's body without TURN
        self._presence_listeners: list[PresenceListener] = []
        self._reachable_before: dict[str, bool] = {}  # identities whose first or last binding changed
        self.shared: SharedLocation | None = None

    def share(self, shared: SharedLocation) -> None:
        """Behind SIP proxies with other hubs: the bindings of the units behind them are the
        database's (:mod:`intercom.hub.shared_location`), read and written through the coroutines
        below; a unit's own WebSocket's stay here, and only they are told to presence listeners."""
        self.shared = shared

    def shares(self, connection: object) -> bool:
        return self._sharing(connection) is not None

    def _sharing(self, connection: object) -> SharedLocation | None:
        """The shared location, if ``connection``'s bindings are kept there."""
        return self.shared if self.shared is not None and self.shared.covers(connection) else None

    def on_presence(self, listener: PresenceListener) -> None:
        """Call ``listener(identity, reachable)`` whenever an identity gains its first binding or
        loses its last; never for a refresh, nor for a binding replaced within one REGISTER."""
        self._presence_listeners.append(listener)

    @contextmanager
    def _telling_presence(self) -> Iterator[None]:
        """Around a change of bindings: tell the listeners whose reachability it changed."""
        try:
            yield
        finally:
            changed, self._reachable_before = self._reachable_before, {}
            for identity, before in changed.items():
                if (now := self._bindings.count(identity) > 0) != before:
                    for listener in self._presence_listeners:
                        try:
                            listener(identity, now)
                        except Exception:  # a listener's fault must not undo or refuse a registration
                            log.exception("presence listener failed for %s", identity)

    def handle_register(self, connection: object, request: Request, path: tuple[str, ...] = ()) -> Response:
        """Answer one REGISTER that arrived on ``connection`` (behind a SIP proxy: its flow, with
        the ``path`` the proxy added, which the bindings keep)."""
        with self._telling_presence():
            return self._handle_register(self._bindings, connection, request, path)

    async def register(self, connection: object, request: Request, path: tuple[str, ...] = ()) -> Response:
        """:meth:`handle_register`, for a connection whose bindings may be shared: on a scratch
        copy of its flow's rows, decided as for any connection, then stored as the flow's rows
        unless the identity would hold more than its limit on all flows together."""
        if (shared := self._sharing(connection)) is None:
            return self.handle_register(connection, request, path)
        scratch = MemoryBindings()
        loaded = await shared.of_flow(connection, self._clock())  # type: ignore[arg-type]
        for binding in loaded:
            scratch.add(binding)
        response = self._handle_register(scratch, connection, request, path)
        if response.status_code != 200:
            return response
        bindings = list(scratch.of(connection).values())
        if len(bindings) == len(loaded) and all(any(b is row for row in loaded) for b in bindings):
            # a refresh (the unit's every REGISTER but its first): the same bindings, later expiries
            await shared.refresh(bindings)
            return response
        identity = next((binding.identity for binding in bindings if binding.identity is not None), None)
        if identity is not None:
            elsewhere = [b for b in await shared.lookup(identity, self._clock()) if b.connection is not connection]
            if len(elsewhere) + len(bindings) > MAX_CONTACTS_PER_IDENTITY:
                log.info("REGISTER refused (403): %s", _identity_limit(identity))
                return make_response(request, 403, _identity_limit(identity))
        await shared.save(connection, bindings)  # type: ignore[arg-type]
        return response

    def _handle_register(
        self, store: MemoryBindings, connection: object, request: Request, path: tuple[str, ...]
    ) -> Response:
        now = self._clock()
        try:
            expiries = self._requested_expiries(request)
        except (ParseError, ValueError) as exc:
            return make_response(request, 400, f"Bad Request ({exc})")
        if request.headers.get("Contact", "").strip() == "*":
            for key in list(store.of(connection)):
                self._remove(store, connection, key)
            return self._ok(store, request, connection, None)
        if not expiries:  # a query: report the connection's bindings
            return self._ok(store, request, connection, None)
        adding = [(contact, expires) for contact, expires in expiries if expires > 0]
        grant = None
        lifetime = 0.0
        if adding:
            too_brief = [expires for _, expires in adding if expires < self.config.min_expires]
            if too_brief:
                return make_response(request, 423, headers=[("Min-Expires", str(self.config.min_expires))])
            token = request.headers.get("WebRTC-Token")
            if not token:
                return make_response(request, 403, "Missing WebRTC-Token header")
            try:
                grant = check_token(token.strip(), self._lookup_key, now)
            except TokenError as exc:
                log.info("REGISTER refused (%d): %s", exc.code, exc.reason)
                return make_response(request, exc.code, exc.reason)
            lifetime = grant.expires_at - now  # a binding ends with its token
            if lifetime <= 0:
                return make_response(request, 403, "Invalid token: expired")
            if refusal := self._over_limit(store, connection, grant.identity, expiries):
                log.info("REGISTER refused (403): %s", refusal)
                return make_response(request, 403, refusal)
        user_agent = request.headers.get("User-Agent")
        for contact, expires in expiries:
            key = str(contact.uri)
            if expires == 0:
                self._remove(store, connection, key)
                continue
            assert grant is not None
            expires_at = now + min(expires, self.config.max_expires, lifetime)
            binding = store.of(connection).get(key)
            if binding is not None and binding.identity == grant.identity and binding.contact == contact:
                store.refresh(binding, expires_at, grant, path)
            else:
                self._remove(store, connection, key)
                self._add(store, Binding(grant.identity, contact, connection, expires_at, grant, user_agent, path))
        return self._ok(store, request, connection, grant)

    def _over_limit(
        self, store: MemoryBindings, connection: object, identity: str | None, expiries: list[tuple[Address, int]]
    ) -> str | None:
        """Why this REGISTER would leave more bindings than a connection or an identity may hold, if it would."""
        bindings = store.of(connection)
        per_identity = store.count(identity) if identity is not None else 0
        if max(len(bindings), per_identity) + len(expiries) <= min(
            MAX_CONTACTS_PER_CONNECTION, MAX_CONTACTS_PER_IDENTITY
        ):
            return None  # within both limits even if every contact were new: a refresh costs no more
        added = {str(contact.uri) for contact, expires in expiries if expires > 0}
        removed = {str(contact.uri) for contact, expires in expiries if expires == 0} - added
        kept = {key: binding for key, binding in bindings.items() if key not in added and key not in removed}
        if len(kept) + len(added) > MAX_CONTACTS_PER_CONNECTION:
            return f"Forbidden (at most {MAX_CONTACTS_PER_CONNECTION} contacts per connection)"
        if identity is None:
            return None
        here_now = sum(binding.identity == identity for binding in bindings.values())
        here_after = len(added) + sum(binding.identity == identity for binding in kept.values())
        if store.count(identity) - here_now + here_after > MAX_CONTACTS_PER_IDENTITY:
            return _identity_limit(identity)
        return None

    def _add(self, store: MemoryBindings, binding: Binding) -> None:
        store.add(binding)
        if store is self._bindings and binding.identity is not None and store.count(binding.identity) == 1:
            self._reachable_before.setdefault(binding.identity, False)

    def _remove(self, store: MemoryBindings, connection: object, key: str) -> Binding | None:
        binding = store.remove(connection, key)
        identity = binding.identity if binding is not None else None
        if store is self._bindings and identity is not None and not store.count(identity):
            self._reachable_before.setdefault(identity, True)
        return binding

    def _requested_expiries(self, request: Request) -> list[tuple[Address, int]]:
        header = request.headers.get("Expires")
        default = int(header) if header is not None else DEFAULT_EXPIRES
        if default < 0:
            raise ValueError("negative Expires")
        result = []
        for contact in request.contacts:
            if not isinstance(contact.uri, SipUri):
                raise ValueError(f"Contact {str(contact.uri)[:80]!r} is not a sip or sips URI")
            value = contact.params.get("expires")
            expires = int(value) if value is not None else default
            if expires < 0:
                raise ValueError("negative expires parameter")
            result.append((contact, expires))
        return result

    def _ok(self, store: MemoryBindings, request: Request, connection: object, grant: Grant | None) -> Response:
        now = self._clock()
        headers = [
            ("Contact", f"{binding.contact_text};expires={max(0, round(binding.expires_at - now))}")
            for binding in store.of(connection).values()
        ]
        headers.append(("Content-Type", "application/json"))
        return make_response(request, 200, headers=headers, body=self._body(grant, now))

    def _body(self, grant: Grant | None, now: float) -> bytes:
        """``{"zone": ...}`` for the SDK, with TURN credentials for this identity when configured."""
        credentials = self.config.turn_for(grant.identity or "anonymous", now) if grant is not None else None
        if credentials is None:
            return self._zone_body
        turn = {
            "servers": list(self.config.turn_urls),
            "credentials": {"username": credentials.username, "password": credentials.password},
        }
        return json.dumps({"zone": self.config.zone, "turn": turn}).encode()

    def remove_connection(self, connection: object) -> int:
        """Drop every binding of a closed connection; returns how many there were."""
        with self._telling_presence():
            keys = list(self._bindings.of(connection))
            for key in keys:
                self._remove(self._bindings, connection, key)
        return len(keys)

    async def forget(self, connection: object) -> int:
        """:meth:`remove_connection` for a shared connection (its WebSocket closed at the proxy):
        its rows; how many there were."""
        shared = self._sharing(connection)
        assert shared is not None, "only a shared connection's bindings are rows"
        return await shared.forget(connection)  # type: ignore[arg-type]

    def holds(self, connection: object) -> bool:
        """Whether ``connection`` has bindings: a REGISTER with a valid token came over it."""
        return bool(self._bindings.of(connection))

    def identity_on(self, connection: object) -> str | None:
        """Who registered on ``connection`` (a live binding with an identity), or ``None``."""
        now = self._clock()
        bindings = self._bindings.of(connection).values()
        return next((b.identity for b in bindings if b.identity is not None and b.expires_at > now), None)

    async def identity_of(self, connection: object) -> str | None:
        """:meth:`identity_on`, for a connection whose bindings may be shared."""
        if (shared := self._sharing(connection)) is not None:
            return await shared.identity_on(connection, self._clock())  # type: ignore[arg-type]
        return self.identity_on(connection)

    def identities(self) -> list[str]:
        """The identities that have bindings."""
        return self._bindings.identities()

    async def find(self, identity: str) -> list[Binding]:
        """:meth:`lookup`, with the bindings the hubs share: a call's way to its callees."""
        found = self.lookup(identity)
        if self.shared is None:
            return found
        now = self._clock()  # a flow's bindings are never kept here: the rows say them all
        if identity.startswith(GROUP_PREFIX):
            group = identity.removeprefix(GROUP_PREFIX)
            rows = await self.shared.lookup_group(group, now)
            return found + [binding for binding in rows if self.group_of(binding.grant.access_key_id) == group]
        return found + await self.shared.lookup(identity, now)

    def lookup(self, identity: str) -> list[Binding]:
        """The live bindings of an identity, across all connections; of every member of a group
        for ``group:<name>`` (whose key is of that group now: a revoked phone is out at once)."""
        now = self._clock()
        if identity.startswith(GROUP_PREFIX):
            group = identity.removeprefix(GROUP_PREFIX)
            return [binding for binding in self._live(now) if self.group_of(binding.grant.access_key_id) == group]
        return [binding for binding in self._live(now) if binding.identity == identity]

    def _live(self, now: float) -> list[Binding]:
        return [binding for binding in self._bindings.all() if binding.expires_at > now]

    def group_of(self, key_id: str) -> str | None:
        """The group the hub asserts the clients of key ``key_id`` are in (a paired phone's: phones)."""
        key = self._lookup_key(key_id)
        return key.scope.group if key is not None and key.scope is not None and not key.revoked else None

    def expire(self) -> int:
        """Remove expired bindings; returns how many were removed."""
        now = self._clock()
        return len(self._drop_where(lambda binding: binding.expires_at <= now))

    async def sweep(self) -> int:
        """:meth:`expire`, and the shared rows that expired (any hub may remove them)."""
        removed = self.expire()
        if self.shared is not None:
            removed += await self.shared.expire(self._clock())
        return removed

    async def drop_revoked(self, key_ids: set[str]) -> list[Binding]:
        """:meth:`drop_keys`, and the shared rows of those keys."""
        if self.shared is not None:
            await self.shared.drop_keys(key_ids)
        return self.drop_keys(key_ids)

    async def keys_in_use(self) -> set[str]:
        """:meth:`key_ids`, with the keys of the shared rows."""
        return self.key_ids() | (await self.shared.key_ids() if self.shared is not None else set())

    def drop_keys(self, key_ids: set[str]) -> list[Binding]:
        """Remove the bindings made with tokens of these (revoked) keys; returns them."""
        return self._drop_where(lambda binding: binding.grant.access_key_id in key_ids)

    def key_ids(self) -> set[str]:
        """The keys whose tokens made the bindings there are."""
        return {binding.grant.access_key_id for binding in self._bindings.all()}

    def _drop_where(self, condition: Callable[[Binding], bool]) -> list[Binding]:
        dropped = []
        with self._telling_presence():
            for binding in list(self._bindings.all()):
                if condition(binding):
                    self._remove(self._bindings, binding.connection, binding.key)
                    dropped.append(binding)
        return dropped

    @property
    def binding_count(self) -> int:
        return len(self._bindings)


def _identity_limit(identity: str) -> str:
    return f"Forbidden (at most {MAX_CONTACTS_PER_IDENTITY} contacts for identity {identity})"
