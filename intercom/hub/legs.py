"""The two kinds of call leg the hub's B2BUA holds: the caller's INVITE, and one INVITE per device rung.

Each leg is one SIP dialog on one client's WebSocket plus the hub's own media end for it (an
aiortc peer connection). The call (:mod:`intercom.hub.calls`) decides what happens; the legs
know how to say it in SIP: provisional and final answers, CANCEL, ACK, BYE, INFO.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection, RTCSessionDescription

from ..media import bridge_opus_only
from ..sip import Address, Dialog, Request, Response, ServerTransaction, SipUri, Via, make_cancel, make_response
from ..sip.door import asserted_identity_header
from ..sip.ids import new_branch, new_call_id, new_tag
from ..transport import ConnectionClosed, SipConnection
from .bindings import Binding
from .config import HubConfig
from .records import LegRecord

log = logging.getLogger(__name__)

SDP = "application/sdp"
ALLOW = "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,INFO"


@dataclass
class HubAddress:
    """How the hub names itself in the requests it sends: ``host:port`` and the transport (WS or
    WSS to the units; TCP, the SIP/TCP listener's address, to the units behind a SIP proxy)."""

    host: str
    transport: str

    @classmethod
    def of(cls, config: HubConfig) -> HubAddress:
        return cls(f"{config.host}:{config.port}", "WSS" if config.secure else "WS")

    def via(self) -> Via:
        return Via(self.transport, self.host, None, {"branch": new_branch()})

    def contact(self) -> Address:
        return Address(SipUri(self.host, "hub", params={"transport": self.transport.lower()}))


@dataclass
class CallerLeg:
    """The INVITE a client sent to ``sip:00000@<hub>``: answered by the hub once a callee answers,
    or as soon as a step of the flow talks to the caller."""

    connection: SipConnection
    transaction: ServerTransaction
    invite: Request
    hub: HubAddress
    media: RTCPeerConnection
    identity: str | None = None  # the caller's token's identity: what the hub asserts for this leg
    tag: str = field(default_factory=new_tag)
    dialog: Dialog | None = None
    answered: bool = False
    ringing_sent: bool = False
    acknowledged: asyncio.Event = field(default_factory=asyncio.Event)  # the ACK of our 200 came

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    def respond(self, status: int, reason: str | None = None, headers: list[tuple[str, str]] | None = None) -> None:
        """A provisional or final answer to the INVITE (not a 2xx: see :meth:`answer`)."""
        if self.answered or self.connection.closed:
            return
        response = make_response(
            self.invite, status, reason, to_tag=self.tag if status > 100 else None, headers=headers
        )
        if status >= 200:
            self.answered = True
        self.connection.send_response(self.transaction, response)

    def ringing(self) -> None:
        """Relay the first 180 of any callee, once."""
        if not self.ringing_sent:
            self.ringing_sent = True
            self.respond(180, headers=[("Contact", str(self.hub.contact()))])

    async def answer(self, callee_identity: str | None = None) -> None:
        """Answer the caller's offer with the hub's media end, and send the 200; a callee that
        answered is asserted in it (the hub answering for itself asserts nobody)."""
        await self.media.setRemoteDescription(RTCSessionDescription(self.invite.body.decode(), "offer"))
        for transceiver in self.media.getTransceivers():
            transceiver.direction = "sendrecv"  # the bridge will send the callee's audio on it
        bridge_opus_only(self.media)
        await self.media.setLocalDescription(await self.media.createAnswer())
        if self.answered or self.connection.closed:
            raise ConnectionClosed("the caller left while the answer was made")
        headers = [("Contact", str(self.hub.contact())), ("Allow", ALLOW), ("Content-Type", SDP)]
        if callee_identity is not None:
            headers.append(asserted_identity_header(callee_identity, self.hub.host))
        ok = make_response(
            self.invite, 200, to_tag=self.tag, headers=headers, body=self.media.localDescription.sdp.encode()
        )
        self.answered = True
        self.dialog = Dialog.from_uas(self.invite, self.tag, self.hub.contact())
        self.connection.send_response(self.transaction, ok)


@dataclass
class CalleeLeg:
    """One INVITE from the hub to one registered device of a callee."""

    binding: Binding
    hub: HubAddress
    media: RTCPeerConnection
    invite: Request | None = None
    dialog: Dialog | None = None
    final: Response | None = None
    cancelled: bool = False
    record: LegRecord | None = None  # its row in the call log

    @property
    def connection(self) -> SipConnection:
        return self.binding.connection  # type: ignore[return-value]

    @property
    def identity(self) -> str | None:
        """The identity the device registered with: what the hub asserts for this leg."""
        return self.binding.identity

    async def ring(
        self, caller_name: str, on_ringing: Callable[[], None], caller_identity: str | None = None
    ) -> Response:
        """Offer the hub's media end to the device and wait for its final answer; ``caller_identity``
        (a client's, never a Voice API call's source) is asserted in the INVITE."""
        self.media.addTransceiver("audio", direction="sendrecv")
        bridge_opus_only(self.media)
        await self.media.setLocalDescription(await self.media.createOffer())
        self.invite = self._build_invite(caller_name, caller_identity, self.media.localDescription.sdp.encode())
        if self.cancelled:
            raise asyncio.CancelledError

        def provisional(response: Response) -> None:
            if response.status_code in (180, 183):
                on_ringing()

        self.final = response = await self.connection.request(self.invite, on_provisional=provisional)
        if response.is_success:
            self.dialog = Dialog.from_uac(self.invite, response)
            self.connection.send(self.dialog.create_ack(self.invite.cseq.number, self.hub.via()))
        return response

    async def connect_media(self) -> None:
        assert self.final is not None
        await self.media.setRemoteDescription(RTCSessionDescription(self.final.body.decode(), "answer"))

    def _build_invite(self, caller_name: str, caller_identity: str | None, sdp: bytes) -> Request:
        contact = self.binding.contact.uri
        host = self.hub.host
        invite = Request(method="INVITE", uri=contact)
        display = caller_name.replace("\\", "").replace('"', "")
        for name, value in (
            ("Via", str(self.hub.via())),
            *(("Route", hop) for hop in self.binding.path),  # behind a SIP proxy: its Path (RFC 3327)
            ("Max-Forwards", "70"),
            ("From", f'"{display}" <sip:{caller_name}@{host}>;tag={new_tag()}'),
            ("To", f"<sip:anonymous@{host}>"),
            ("Call-ID", new_call_id()),
            ("CSeq", "1 INVITE"),
            ("Contact", str(self.hub.contact())),
            ("Allow", ALLOW),
            ("Supported", "timer"),
            ("Content-Type", SDP),
            *([asserted_identity_header(caller_identity, host)] if caller_identity is not None else []),
        ):
            invite.headers.add(name, value)
        invite.body = sdp
        return invite

    async def cancel(self) -> None:
        """Stop ringing this device: CANCEL while its INVITE is pending, BYE if it answered meanwhile."""
        if self.cancelled:
            return
        self.cancelled = True
        if self.invite is None or self.connection.closed:
            return
        if self.final is None:
            try:
                await self.connection.request(make_cancel(self.invite))
            except (ConnectionClosed, TimeoutError) as exc:
                log.info("CANCEL to %s got no answer: %s", self.binding.identity, exc)
        elif self.dialog is not None:
            await self.bye()

    async def bye(self) -> None:
        await send_bye(self.connection, self.dialog, self.hub)


async def send_bye(connection: SipConnection, dialog: Dialog | None, hub: HubAddress) -> None:
    """End one dialog; a peer that does not answer or is gone has ended it too."""
    if dialog is None or connection.closed:
        return
    try:
        await connection.request(dialog.create_request("BYE", hub.via()))
    except (ConnectionClosed, TimeoutError) as exc:
        log.info("BYE got no answer: %s", exc)
