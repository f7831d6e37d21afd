"""The hub's own unlock request to a door, outside any call: Home Assistant's Open door, which the
MQTT bridge turns into this (docs/home-assistant.md "Opening the door").

The request goes over the door's own registration (the connection the door opened to the hub it
pins), built here anew with ``P-Intercom-Source`` and no asserted identity; the door opens only if
its env file names ``source:<source>`` in INTERCOM_UNLOCK_FROM, and writes it in its audit log.
"""

from __future__ import annotations

import asyncio
import logging

from ..sip import Request
from ..sip.door import ASSERTED_SOURCE, UNLOCK_CONTENT_TYPE
from ..sip.ids import new_call_id, new_tag
from ..transport import ConnectionClosed, SipConnection
from .bindings import Binding
from .edge_flows import EdgeFlow, hub_address
from .legs import HubAddress
from .registrar import Registrar

log = logging.getLogger(__name__)


async def ask_door_to_open(registrar: Registrar, hub: HubAddress, door: str, source: str, timeout: float) -> int:
    """Send ``door`` the unlock request for ``source`` on each of its registrations; the best SIP
    status it answered (200: it took the request; the audit says whether it opened), 404 when the
    door is not registered, 408 when no answer came within ``timeout`` seconds."""
    bindings = await registrar.find(door)
    if not bindings:
        log.info("door %s: unlock request for %s: the door is not registered", door, source)
        return 404
    statuses = []
    for binding in bindings:
        connection = binding.connection
        assert isinstance(connection, (SipConnection, EdgeFlow))
        request = _unlock_request(hub_address(connection, hub), door, binding, source)
        try:
            async with asyncio.timeout(timeout):
                response = await connection.request(request)
            statuses.append(response.status_code)
        except (TimeoutError, ConnectionClosed) as exc:
            log.info("door %s: unlock request for %s not answered: %r", door, source, exc)
            statuses.append(408)
    status = min(statuses, key=lambda code: (code // 100 != 2, code))
    log.info("door %s: unlock request for %s: %d", door, source, status)
    return status


def _unlock_request(hub: HubAddress, door: str, binding: Binding, source: str) -> Request:
    request = Request(method="MESSAGE", uri=binding.contact.uri)
    for name, value in (
        *(("Route", hop) for hop in binding.path),  # behind a SIP proxy: its Path
        ("Via", str(hub.via())),
        ("Max-Forwards", "70"),
        ("From", f"<sip:hub@{hub.host}>;tag={new_tag()}"),
        ("To", f"<sip:{door}@{hub.host}>"),
        ("Call-ID", new_call_id()),
        ("CSeq", "1 MESSAGE"),
        ("Content-Type", UNLOCK_CONTENT_TYPE),
        (ASSERTED_SOURCE, source),
    ):
        request.headers.add(name, value)
    return request
