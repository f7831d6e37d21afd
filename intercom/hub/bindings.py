"""Where the registrar keeps its bindings: in memory, by connection.

A binding belongs to the connection it was made on: a unit's WebSocket, or behind a SIP proxy its
flow (:class:`~intercom.hub.edge_flows.EdgeFlow`, the pair proxy address and ``P-Intercom-Flow``,
with the proxy's Path). The registrar decides (token, limits, expiry, presence);
:class:`MemoryBindings` only keeps. Behind SIP proxies the bindings of the units' flows are rows
of the database the hubs share (:mod:`intercom.hub.shared_location`), and a REGISTER is decided on
a scratch :class:`MemoryBindings` of its flow's rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ..auth import Grant
from ..sip import Address


@dataclass
class Binding:
    """One registered Contact, reachable over ``connection``."""

    identity: str | None
    contact: Address
    connection: object
    expires_at: float
    grant: Grant
    user_agent: str | None = None
    path: tuple[str, ...] = ()  # a SIP proxy's Path (RFC 3327): the Route of requests to this binding
    contact_text: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Formatted once: every REGISTER answer lists it with the time left.
        params = {name: value for name, value in self.contact.params.items() if name != "expires"}
        self.contact_text = str(Address(self.contact.uri, self.contact.display_name, params))

    @property
    def key(self) -> str:
        """What tells it from the other bindings of its connection: the Contact's URI."""
        return str(self.contact.uri)


class MemoryBindings:
    """Bindings in this process, by connection, with a count per identity for the limits."""

    def __init__(self) -> None:
        self._by_connection: dict[object, dict[str, Binding]] = {}
        self._per_identity: Counter[str] = Counter()

    def of(self, connection: object) -> Mapping[str, Binding]:
        return self._by_connection.get(connection, {})

    def add(self, binding: Binding) -> None:
        self._by_connection.setdefault(binding.connection, {})[binding.key] = binding
        if binding.identity is not None:
            self._per_identity[binding.identity] += 1

    def refresh(self, binding: Binding, expires_at: float, grant: Grant, path: tuple[str, ...]) -> None:
        binding.expires_at, binding.grant, binding.path = expires_at, grant, path

    def remove(self, connection: object, key: str) -> Binding | None:
        bindings = self._by_connection.get(connection)
        binding = bindings.pop(key, None) if bindings is not None else None
        if bindings is not None and not bindings:
            del self._by_connection[connection]
        if binding is not None and binding.identity is not None:
            self._per_identity[binding.identity] -= 1
            if not self._per_identity[binding.identity]:
                del self._per_identity[binding.identity]
        return binding

    def count(self, identity: str) -> int:
        return self._per_identity[identity]

    def identities(self) -> list[str]:
        return list(self._per_identity)

    def all(self) -> Iterator[Binding]:
        return (binding for bindings in self._by_connection.values() for binding in bindings.values())

    def __len__(self) -> int:
        return sum(len(bindings) for bindings in self._by_connection.values())
