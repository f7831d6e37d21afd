"""The intercom's own SIP vocabulary beyond the browser client's, shared by the hub and the SDK.

- ``P-Asserted-Identity`` (RFC 3325): the hub alone sets it, from the token of the side that sent
  a request, on what it passes between a call's legs; the hub builds every request anew, so a
  client's own never reaches the other side. A door believes only this header about who is
  at the other end.
- The desk's unlock request: one INFO of :data:`UNLOCK_CONTENT_TYPE` (no body, no code typed).
- The hub's own unlock request for a source it names (Home Assistant's Open door over MQTT): an
  out-of-dialog MESSAGE of :data:`UNLOCK_CONTENT_TYPE` with :data:`ASSERTED_SOURCE` and no
  asserted identity; only the hub writes it (docs/home-assistant.md).
- The door's events (an unlock, a wrong code, a lockout): an out-of-dialog MESSAGE of
  :data:`DOOR_EVENT_CONTENT_TYPE` with a JSON body.
"""

from __future__ import annotations

import re

from .headers import Headers

ASSERTED_IDENTITY = "P-Asserted-Identity"
# Beside it, the group the hub asserts the sender is in (a paired phone: ``phones``); same rules.
ASSERTED_GROUP = "P-Intercom-Group"
# On the hub's own unlock request, on whose behalf it asks (``home_assistant``); never beside an identity.
ASSERTED_SOURCE = "P-Intercom-Source"
UNLOCK_CONTENT_TYPE = "application/vnd.intercom.unlock"
DOOR_EVENT_CONTENT_TYPE = "application/vnd.intercom.door-event+json"

_ASSERTED = re.compile(r"\s*<sip:([A-Za-z0-9_]{1,30})@[^>]+>\s*\Z")  # identities as the tokens allow them
_GROUP = re.compile(r"\s*([A-Za-z0-9_]{1,30})\s*\Z")


def asserted_identity_header(identity: str, hub_host: str) -> tuple[str, str]:
    """The header the hub adds for ``identity``: ``P-Asserted-Identity: <sip:identity@hub>``."""
    return ASSERTED_IDENTITY, f"<sip:{identity}@{hub_host}>"


def asserted_identity(headers: Headers) -> str | None:
    """The identity the hub asserted, or ``None``: none sent, several, or not one the hub writes."""
    values = headers.get_lines(ASSERTED_IDENTITY)
    if len(values) != 1:
        return None
    match = _ASSERTED.match(values[0])
    return match.group(1) if match else None


def asserted_group(headers: Headers) -> str | None:
    """The group the hub asserted for the sender (with its identity), or ``None``: none, several,
    or not one the hub writes."""
    values = headers.get_lines(ASSERTED_GROUP)
    if len(values) != 1 or asserted_identity(headers) is None:
        return None
    match = _GROUP.match(values[0])
    return match.group(1) if match else None


def asserted_source(headers: Headers) -> str | None:
    """The source the hub asks for, or ``None``: none, several, not one the hub writes, or sent
    next to an asserted identity (then it is a client's request the hub passed on, not the hub's)."""
    values = headers.get_lines(ASSERTED_SOURCE)
    if len(values) != 1 or headers.get_lines(ASSERTED_IDENTITY):
        return None
    match = _GROUP.match(values[0])
    return match.group(1) if match else None
