"""The location several hubs behind the same SIP proxies share: the database's ``registrations``.

Behind a SIP proxy (docs/proxy.md) a unit's requests may reach any hub: its REGISTER one, its
refresh another when the first is down, and a call to it may start on a third. So the bindings
of the units behind the proxies live in the database every hub uses, one row per binding, and no
hub trusts a copy of its own: a REGISTER reads its flow's rows, the registrar decides exactly as
for a WebSocket (token, limits, expiry), and the flow's rows become its outcome; a call reads the
callee's rows. A hub that dies therefore loses no registration: the row leads to the unit's flow
at its proxy, whichever hub sends the request.

A row is turned back into a :class:`~intercom.hub.bindings.Binding` on the hub that reads it,
with the unit's :class:`~intercom.hub.edge_flows.EdgeFlow` as its connection, and a grant that
holds what the location needs of the token: its key, its identity, whether it may be called.
"""

from __future__ import annotations

from collections.abc import Callable

from ..auth import Grant, IncomingCapability
from ..sip import Address
from .bindings import Binding
from .edge_flows import EdgeFlow, EdgeFlows
from .records import Registration
from .storage import Storage


class SharedLocation:
    """The bindings of the flows behind the SIP proxies, in the database the hubs share."""

    def __init__(self, storage: Storage, flows: EdgeFlows, group_of: Callable[[str], str | None]) -> None:
        self.storage = storage
        self.flows = flows
        self._group_of = group_of

    @staticmethod
    def covers(connection: object) -> bool:
        """Whether ``connection``'s bindings are shared: a unit behind a proxy, not a WebSocket."""
        return isinstance(connection, EdgeFlow)

    async def of_flow(self, flow: EdgeFlow, now: float) -> list[Binding]:
        return [self._binding(row) for row in await self.storage.flow_registrations(*flow.key, now)]

    async def save(self, flow: EdgeFlow, bindings: list[Binding]) -> None:
        """``flow``'s bindings are now ``bindings`` (a REGISTER's outcome)."""
        await self.storage.save_flow_registrations(*flow.key, [self._row(binding) for binding in bindings])

    async def refresh(self, bindings: list[Binding]) -> None:
        """The same bindings registered again: their rows get the new expiry, token and Path."""
        await self.storage.refresh_registrations([self._row(binding) for binding in bindings])

    async def lookup(self, identity: str, now: float) -> list[Binding]:
        return [self._binding(row) for row in await self.storage.registrations(identity, now)]

    async def lookup_group(self, group: str, now: float) -> list[Binding]:
        return [self._binding(row) for row in await self.storage.group_registrations(group, now)]

    async def identity_on(self, flow: EdgeFlow, now: float) -> str | None:
        rows = await self.storage.flow_registrations(*flow.key, now)
        return next((row.identity for row in rows if row.identity is not None), None)

    async def forget(self, flow: EdgeFlow) -> int:
        """The flow's WebSocket closed: every hub hears it from the proxy, and each may do this."""
        return await self.storage.delete_flow_registrations(*flow.key)

    async def expire(self, now: float) -> int:
        return await self.storage.delete_expired_registrations(now)

    async def key_ids(self) -> set[str]:
        return await self.storage.registration_key_ids()

    async def drop_keys(self, key_ids: set[str]) -> int:
        return await self.storage.delete_key_registrations(key_ids)

    def _row(self, binding: Binding) -> Registration:
        connection = binding.connection
        assert isinstance(connection, EdgeFlow)
        grant = binding.grant
        return Registration(
            edge=connection.key[0],
            flow=connection.key[1],
            uri=binding.key,
            contact=str(binding.contact),  # as registered: a refresh compares it
            path="\n".join(binding.path),
            identity=binding.identity,
            key_group=self._group_of(grant.access_key_id),
            access_key_id=grant.access_key_id,
            incoming=grant.incoming is not None,
            expires_at=binding.expires_at,
            user_agent=binding.user_agent,
            hub=self.storage.hub_id,
        )

    def _binding(self, row: Registration) -> Binding:
        identity = row.identity
        # What the location keeps of the token: its key, and whether it may be called; the rest
        # (the call flow it may start, its variables) is the business of each INVITE's own token.
        incoming = IncomingCapability(identity) if row.incoming and identity is not None else None
        grant = Grant(row.access_key_id, 0, int(row.expires_at), incoming=incoming)
        path = tuple(row.path.split("\n")) if row.path else ()
        connection = self.flows.flow(row.edge, row.flow)
        return Binding(identity, Address.parse(row.contact), connection, row.expires_at, grant, row.user_agent, path)
