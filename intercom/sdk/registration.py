"""The REGISTER requests the client sends, shaped as the published browser client sends them.

PROTOCOL.md section 2: AOR ``sip:anonymous@<host>``, the token in ``WebRTC-Token``, a
``User-Details`` header, one Call-ID for the client's life with CSeq counting up, a new
From tag on every request, and a Contact with ``+sip.instance`` and ``reg-id`` by which the
granted expiry is found in the answer.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import platform
import random
import uuid
from dataclasses import dataclass, field

from .. import __version__
from ..media import IceServer, ice_servers_from_turn
from ..sip import Address, Request, Response, SipUri, parse_decimal
from ..sip.ids import invalid_host, new_branch, new_call_id, new_tag, random_token

log = logging.getLogger(__name__)

REQUESTED_EXPIRES = 60
ALLOW = "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY,SUBSCRIBE"
USER_AGENT = f"intercom/{__version__} (Python {platform.python_version()})"


def user_details() -> str:
    """Base64 JSON in the shape platform.js gives the browser client, describing this Python."""
    details = {
        "browser": {
            "name": "Python",
            "version": platform.python_version(),
            "layout": platform.python_implementation(),
            "manufacturer": None,
            "product": "intercom",
        },
        "os": {
            "architecture": 64 if platform.architecture()[0] == "64bit" else 32,
            "family": platform.system(),
            "version": platform.release(),
            "logicalProcessors": os.cpu_count(),
        },
    }
    return base64.b64encode(json.dumps(details, separators=(",", ":")).encode()).decode()


@dataclass
class RegistrationState:
    """What stays the same across one client's REGISTERs, and the counter that does not."""

    host: str
    instance_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    via_host: str = field(default_factory=invalid_host)
    contact_user: str = field(default_factory=lambda: random_token(8))
    call_id: str = field(default_factory=new_call_id)
    cseq: int = 0
    details: str = field(default_factory=user_details)

    @property
    def contact_uri(self) -> SipUri:
        return SipUri(self.via_host, self.contact_user, params={"transport": "ws"})

    def build(self, token: str, expires: int = REQUESTED_EXPIRES) -> Request:
        """The next REGISTER (``expires`` 0 un-registers)."""
        self.cseq += 1
        aor = f"<sip:anonymous@{self.host}>"
        contact = Address(
            self.contact_uri,
            params={"+sip.ice": None, "reg-id": "1", "+sip.instance": f'"<urn:uuid:{self.instance_id}>"'},
        )
        contact.params["expires"] = str(expires)
        request = Request(method="REGISTER", uri=SipUri(self.host))
        for name, value in (
            ("Via", f"SIP/2.0/WSS {self.via_host};branch={new_branch()}"),
            ("Max-Forwards", "69"),
            ("To", aor),
            ("From", f"{aor};tag={new_tag()}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("User-Details", self.details),
            ("WebRTC-Token", token),
            ("SDK-Version", __version__),
            ("Expires", str(expires)),
            ("Contact", str(contact)),
            ("Allow", ALLOW),
            ("Supported", "path,gruu,outbound"),
            ("User-Agent", USER_AGENT),
        ):
            request.headers.add(name, value)
        return request

    def granted_expires(self, response: Response) -> int | None:
        """The expiry the hub granted our Contact, or ``None`` if the answer names no Contact of ours.

        Like JsSIP: match by ``+sip.instance`` and ``reg-id``, else by URI user; take its
        ``expires``, else the ``Expires`` header, else what we asked for. Unlike JsSIP, a grant
        under 10 s is taken as it is: the hub ends a registration with its token, and a client
        that waited longer would be unreachable until it re-registered.
        """
        ours = None
        for contact in response.contacts:
            instance = (contact.params.get("+sip.instance") or "").strip('"')
            if instance == f"<urn:uuid:{self.instance_id}>" and contact.params.get("reg-id") == "1":
                ours = contact
                break
            if isinstance(contact.uri, SipUri) and contact.uri.user == self.contact_user:
                ours = contact
        if ours is None:
            return None
        expires = parse_decimal(ours.params.get("expires") or response.headers.get("Expires"))
        if expires is None:
            expires = REQUESTED_EXPIRES
        return max(expires, 1)


def turn_servers(response: Response) -> list[IceServer]:
    """The TURN servers the hub's REGISTER answer hands out (PROTOCOL.md section 2), if any."""
    try:
        body = json.loads(response.body or b"{}")
        turn = body.get("turn") if isinstance(body, dict) else None
        return ice_servers_from_turn(turn) if isinstance(turn, dict) else []
    except ValueError as exc:  # JSONDecodeError too
        log.warning("ignoring the TURN servers in the REGISTER answer: %s", exc)
        return []


def refresh_delay(expires: int) -> float:
    """When to re-register, as JsSIP does: 5 s early for short expiries (half-way for the shortest,
    a token near its end), else at a random point."""
    if expires <= 64:
        return max(expires - 5, expires / 2)
    return random.uniform(expires / 2, expires - 32)
