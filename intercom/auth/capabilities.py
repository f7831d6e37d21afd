"""Capability strings, exactly as the MessageBird Client SDK documents them.

``client.outgoing?callProcessor=callflow&callProcessorId=<id>&identity=<name>&variables=<urlencoded>``
lets a client start calls that run call flow ``<id>``; ``client.incoming?identity=<name>`` lets
it be called as ``client:<name>``. ``variables`` is itself a url-encoded query string, encoded
once more as the value of one parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

OUTGOING = "client.outgoing"
INCOMING = "client.incoming"
_IDENTITY_RE = re.compile(r"[A-Za-z0-9_]{1,30}\Z")


class CapabilityError(ValueError):
    """A capability string names a known capability but its parameters are wrong."""


class InvalidIdentity(CapabilityError):
    """An identity is not 1-30 characters of ``[A-Za-z0-9_]``."""


def check_identity(identity: str) -> str:
    if not _IDENTITY_RE.match(identity):
        raise InvalidIdentity(f"identity {identity!r} is not 1-30 characters of A-Z, a-z, 0-9 and _")
    return identity


@dataclass(frozen=True)
class OutgoingCapability:
    """May start calls that run the call flow ``call_processor_id``."""

    call_processor_id: str
    identity: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    call_processor: str = "callflow"

    def __str__(self) -> str:
        params = [("callProcessor", self.call_processor), ("callProcessorId", self.call_processor_id)]
        if self.identity is not None:
            params.append(("identity", self.identity))
        if self.variables:
            params.append(("variables", urlencode(self.variables)))
        return f"{OUTGOING}?{urlencode(params)}"


@dataclass(frozen=True)
class IncomingCapability:
    """May receive calls to ``client:<identity>``."""

    identity: str

    def __str__(self) -> str:
        return f"{INCOMING}?{urlencode({'identity': self.identity})}"


Capability = OutgoingCapability | IncomingCapability


def parse_capability(text: str) -> Capability | None:
    """Parse one capability string; ``None`` when it names no capability we know.

    Raises :class:`InvalidIdentity` for a bad identity and :class:`CapabilityError` for a
    known capability with missing or malformed parameters.
    """
    name, _, query = text.partition("?")
    if name not in (OUTGOING, INCOMING):
        return None
    params = dict(parse_qsl(query, keep_blank_values=True))
    identity = params.get("identity")
    if identity is not None:
        check_identity(identity)
    if name == INCOMING:
        if identity is None:
            raise CapabilityError(f"{INCOMING} needs an identity")
        return IncomingCapability(identity)
    processor = params.get("callProcessor", "callflow")
    if processor != "callflow":
        raise CapabilityError(f"unknown callProcessor {processor!r}")
    processor_id = params.get("callProcessorId")
    if not processor_id:
        raise CapabilityError(f"{OUTGOING} needs a callProcessorId")
    variables = dict(parse_qsl(params.get("variables", ""), keep_blank_values=True))
    return OutgoingCapability(processor_id, identity, variables, processor)
