"""The registrar: who is reachable, on which WebSocket (PROTOCOL.md section 2).

Every client registers as ``sip:anonymous@<host>``; its identity comes only from the JWT
in ``WebRTC-Token``. A binding therefore belongs to the connection it arrived on (nothing
in the client's ``.invalid`` Contact can be routed to) and lives until it expires, is
un-registered, or its socket closes. One identity may have bindings on many connections:
a call to it rings them all.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..auth import Grant, KeyLookup, TokenError, check_token
from ..sip import Address, ParseError, Request, Response, make_response
from ..sip.ids import new_tag
from .config import HubConfig

log = logging.getLogger(__name__)

DEFAULT_EXPIRES = 60


@dataclass
class Binding:
    """One registered Contact, reachable over ``connection``."""

    identity: str | None
    contact: Address
    connection: object
    expires_at: float
    grant: Grant
    user_agent: str | None = None
    contact_text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Formatted once: every REGISTER answer lists it with the time left.
        params = {name: value for name, value in self.contact.params.items() if name != "expires"}
        self.contact_text = str(Address(self.contact.uri, self.contact.display_name, params))


class Registrar:
    def __init__(self, config: HubConfig, lookup_key: KeyLookup, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._lookup_key = lookup_key
        self._clock = clock
        self._by_connection: dict[object, dict[str, Binding]] = {}
        self._zone_body = json.dumps({"zone": config.zone}).encode()  # the answer's body without TURN

    def handle_register(self, connection: object, request: Request) -> Response:
        """Answer one REGISTER that arrived on ``connection``."""
        now = self._clock()
        try:
            expiries = self._requested_expiries(request)
        except (ParseError, ValueError) as exc:
            return make_response(request, 400, f"Bad Request ({exc})")
        if request.headers.get("Contact", "").strip() == "*":
            self._by_connection.pop(connection, None)
            return self._ok(request, connection, None)
        if not expiries:  # a query: report the connection's bindings
            return self._ok(request, connection, None)
        adding = [(contact, expires) for contact, expires in expiries if expires > 0]
        grant = None
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
        bindings = self._by_connection.setdefault(connection, {})
        user_agent = request.headers.get("User-Agent")
        for contact, expires in expiries:
            key = str(contact.uri)
            if expires == 0:
                bindings.pop(key, None)
                continue
            assert grant is not None
            expires_at = now + min(expires, self.config.max_expires)
            binding = bindings.get(key)
            if binding is not None and binding.identity == grant.identity and binding.contact == contact:
                binding.expires_at, binding.grant = expires_at, grant  # a refresh
            else:
                bindings[key] = Binding(grant.identity, contact, connection, expires_at, grant, user_agent)
        if not bindings:
            self._by_connection.pop(connection, None)
        return self._ok(request, connection, grant)

    def _requested_expiries(self, request: Request) -> list[tuple[Address, int]]:
        header = request.headers.get("Expires")
        default = int(header) if header is not None else DEFAULT_EXPIRES
        if default < 0:
            raise ValueError("negative Expires")
        result = []
        for contact in request.contacts:
            value = contact.params.get("expires")
            expires = int(value) if value is not None else default
            if expires < 0:
                raise ValueError("negative expires parameter")
            result.append((contact, expires))
        return result

    def _ok(self, request: Request, connection: object, grant: Grant | None) -> Response:
        now = self._clock()
        headers = [
            ("Contact", f"{binding.contact_text};expires={max(0, round(binding.expires_at - now))}")
            for binding in self._by_connection.get(connection, {}).values()
        ]
        headers.append(("Content-Type", "application/json"))
        return make_response(request, 200, to_tag=new_tag(), headers=headers, body=self._body(grant, now))

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
        return len(self._by_connection.pop(connection, {}))

    def identity_on(self, connection: object) -> str | None:
        """Who registered on ``connection`` (a live binding with an identity), or ``None``."""
        now = self._clock()
        bindings = self._by_connection.get(connection, {}).values()
        return next((b.identity for b in bindings if b.identity is not None and b.expires_at > now), None)

    def lookup(self, identity: str) -> list[Binding]:
        """The live bindings of an identity, across all connections."""
        now = self._clock()
        return [
            binding
            for bindings in self._by_connection.values()
            for binding in bindings.values()
            if binding.identity == identity and binding.expires_at > now
        ]

    def expire(self) -> int:
        """Remove expired bindings; returns how many were removed."""
        now = self._clock()
        removed = 0
        for connection, bindings in list(self._by_connection.items()):
            for key, binding in list(bindings.items()):
                if binding.expires_at <= now:
                    del bindings[key]
                    removed += 1
            if not bindings:
                del self._by_connection[connection]
        return removed

    @property
    def binding_count(self) -> int:
        return sum(len(bindings) for bindings in self._by_connection.values())
