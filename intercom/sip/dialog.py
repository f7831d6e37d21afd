"""Dialogs (RFC 3261 section 12): the state two user agents share for the life of a call.

A dialog is created from an INVITE and its 2xx (or a 1xx with a To tag), on either side.
It builds the requests sent inside it (BYE, INFO, UPDATE, ACK) with the right tags,
CSeq, Request-URI and Route set, and checks the CSeq of the requests it receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .address import Address, SipUri, Via
from .errors import DialogError
from .ids import new_branch
from .message import Request, Response


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: Address
    remote_uri: Address
    remote_target: SipUri | str
    local_contact: Address
    local_seq: int
    remote_seq: int | None = None
    route_set: list[str] = field(default_factory=list)

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """The caller's dialog, from the INVITE it sent and a response carrying a To tag."""
        to = response.to
        if not to.tag:
            raise DialogError("response has no To tag")
        contacts = response.contacts
        if not contacts:
            raise DialogError("response has no Contact")
        local = request.from_
        if not local.tag:
            raise DialogError("request has no From tag")
        return cls(
            call_id=request.call_id,
            local_tag=local.tag,
            remote_tag=to.tag,
            local_uri=_without_tag(local),
            remote_uri=_without_tag(to),
            remote_target=contacts[0].uri,
            local_contact=request.contacts[0] if request.contacts else Address(request.uri),
            local_seq=request.cseq.number,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
        )

    @classmethod
    def from_uas(cls, request: Request, local_tag: str, local_contact: Address) -> Dialog:
        """The callee's dialog, from the INVITE it received and the To tag it chose."""
        remote = request.from_
        if not remote.tag:
            raise DialogError("request has no From tag")
        contacts = request.contacts
        if not contacts:
            raise DialogError("request has no Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag,
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(remote),
            remote_target=contacts[0].uri,
            local_contact=local_contact,
            local_seq=0,
            remote_seq=request.cseq.number,
            route_set=request.headers.get_all("Record-Route"),
        )

    def matches(self, message: Request | Response) -> bool:
        """Whether a message received by this side belongs to this dialog."""
        try:
            if isinstance(message, Request):
                return (message.call_id, message.to.tag, message.from_.tag) == self.id
            return (message.call_id, message.from_.tag, message.to.tag) == self.id
        except Exception:
            return False

    def create_request(
        self,
        method: str,
        via: Via,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """A request inside the dialog. ``via`` gets a new branch unless it has one."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        if via.branch is None:
            via = Via(via.transport, via.host, via.port, {**via.params, "branch": new_branch()})
        request = Request(method=method, uri=self.remote_target)
        request.headers.add("Via", str(via))
        for route in self.route_set:
            request.headers.add("Route", route)
        request.headers.add("Max-Forwards", "70")
        request.headers.add("To", str(_with_tag(self.remote_uri, self.remote_tag)))
        request.headers.add("From", str(_with_tag(self.local_uri, self.local_tag)))
        request.headers.add("Call-ID", self.call_id)
        request.headers.add("CSeq", f"{cseq} {method}")
        if method in ("INVITE", "UPDATE"):
            request.headers.add("Contact", str(self.local_contact))
        for name, value in headers or []:
            request.headers.add(name, value)
        request.body = body
        return request

    def create_ack(self, invite_cseq: int, via: Via) -> Request:
        """The ACK of a 2xx: same CSeq number as the INVITE, new branch (RFC 3261 13.2.2.4)."""
        return self.create_request("ACK", via, cseq=invite_cseq)

    def receive_request(self, request: Request) -> None:
        """Check a request's CSeq against the dialog; raise :class:`DialogError` when out of order."""
        number = request.cseq.number
        if request.method == "ACK" or request.method == "CANCEL":
            return
        if self.remote_seq is not None and number <= self.remote_seq:
            raise DialogError(f"CSeq {number} is not above {self.remote_seq}")
        self.remote_seq = number
        contacts = request.contacts
        if contacts and request.method in ("INVITE", "UPDATE"):
            self.remote_target = contacts[0].uri  # target refresh (RFC 3261 12.2.2)


def _without_tag(address: Address) -> Address:
    return Address(address.uri, address.display_name, {k: v for k, v in address.params.items() if k != "tag"})


def _with_tag(address: Address, tag: str) -> Address:
    return Address(address.uri, address.display_name, {**address.params, "tag": tag})
