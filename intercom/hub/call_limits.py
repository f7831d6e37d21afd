"""How much of the hub calls may take: how many at once, in all and per client, and for how long.

A stolen or buggy unit token must not hold every call the hub can carry (each call is two aiortc
peer connections, UDP ports and event-loop time), nor a call stay up for days because a desk was
left off-hook or a peer died without a BYE. So the hub counts, before a call starts and before a
device is rung, the calls each client is in: the calls it makes, the calls ringing it and the
calls it talks in, each call once whatever number of its devices ring. A client already in a call
that is rung again is normal (a ring group, a second visitor): it is only skipped once it is in
``max_calls_per_identity`` calls. The limits are :class:`~intercom.hub.config.HubConfig` fields.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .config import HubConfig

log = logging.getLogger(__name__)

RETRY_AFTER = 60  # seconds a refused caller is told to wait when the hub is full: a visitor rings again by then


class CallParties(Protocol):
    def identities(self) -> set[str]:
        """The clients the call holds: its party, the device that answered, the devices ringing."""
        ...


@dataclass
class CallRefused(Exception):
    """A new call over a limit, with the answer for each way a call starts."""

    sip_status: int
    http_status: int
    reason: str  # names the limit and its setting
    retry_after: int | None = None

    def __str__(self) -> str:
        return self.reason

    @property
    def sip_reason(self) -> str:
        return f"{'Service Unavailable' if self.sip_status == 503 else 'Busy Here'} ({self.reason})"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class CallLimits:
    """The call limits of one hub, counted over its running calls (``calls``, kept by the call service)."""

    def __init__(self, config: HubConfig, calls: Mapping[str, CallParties]) -> None:
        self.config = config
        self.calls = calls
        self.refused = 0  # new calls refused over a limit, for /metrics
        self.hung_up = 0  # calls the hub ended at their maximum duration or media timeout, for /metrics

    @property
    def max_call_duration(self) -> float:
        return self.config.max_call_duration

    @property
    def media_timeout(self) -> float:
        return self.config.media_timeout

    def calls_of(self, identity: str) -> int:
        return sum(identity in call.identities() for call in self.calls.values())

    def check_new(self, identity: str | None) -> None:
        """Raise :class:`CallRefused` if a new call of ``identity`` (its caller, or the client a
        Voice API call rings) would go over a limit; ``None`` counts against the total only.

        The whole hub full is 503 with Retry-After, as RFC 3261 21.5.4 has a server that is
        overloaded say; one client in too many calls is 486: it is busy, the hub is not.
        """
        if len(self.calls) >= self.config.max_calls:
            reason = f"the hub is in {len(self.calls)} calls, the limit max_calls"
            refused = CallRefused(503, 503, reason, RETRY_AFTER)
        elif identity is not None and self.calls_of(identity) >= self.config.max_calls_per_identity:
            reason = (
                f"client:{identity} is in {self.config.max_calls_per_identity} calls, the limit max_calls_per_identity"
            )
            refused = CallRefused(486, 429, reason, RETRY_AFTER)
        else:
            return
        log.warning("new call refused: %s", reason)
        self.refused += 1
        raise refused

    def may_ring(self, identity: str, call: CallParties) -> bool:
        """Whether ``call`` may ring ``identity``: a client already in this call rings again freely."""
        if identity in call.identities() or self.calls_of(identity) < self.config.max_calls_per_identity:
            return True
        log.info(
            "client:%s not rung: in %d calls, the limit max_calls_per_identity",
            identity,
            self.config.max_calls_per_identity,
        )
        return False

    def ring_legs(self, count: int) -> int:
        """How many of ``count`` devices one transfer may ring: ``max_ring_legs`` at most."""
        if count > self.config.max_ring_legs:
            log.warning(
                "a transfer would ring %d devices: ringing the first %d, the limit max_ring_legs",
                count,
                self.config.max_ring_legs,
            )
        return min(count, self.config.max_ring_legs)
