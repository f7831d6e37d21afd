"""Transactions over a reliable transport (RFC 3261 section 17, with RFC 6026's Accepted state).

Sans-I/O: a :class:`TransactionLayer` is fed received messages and the current time, and
hands back events for the transaction user plus the messages to send. The caller owns the
socket and the clock; it asks :meth:`TransactionLayer.next_deadline` when to call
:meth:`TransactionLayer.handle_timeouts` next.

WebSocket is reliable, so the request retransmission timers (A, E, G) never run and the
wait-for-retransmission timers (D, I, J, K) are zero. What remains is timing out an
unanswered request (B, F: 64*T1), waiting for the ACK of an error response (H), and
retransmitting a 2xx to INVITE until its ACK arrives, which RFC 3261 section 13.3.1.4
requires whatever the transport. That retransmission lives here, in the server INVITE
transaction's Accepted state, so that a UAS cannot forget it. So does the To tag of a response
to a request outside a dialog (RFC 3261 section 8.2.6.2): every one but 100 carries one, the
same on every response of the transaction, whether the TU chose it or left it out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import TransactionError
from .ids import new_tag
from .message import Request, Response

T1 = 0.5
T2 = 4.0
TIMEOUT = 64 * T1


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class Kind(enum.Enum):
    """What happened to a transaction: the input column of the state tables."""

    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "300-699"
    ACK = "ack"
    TIMEOUT = "timeout"


# (state, input) -> next state. A pair missing from a table is a protocol error.
CLIENT_INVITE = {
    (State.CALLING, Kind.PROVISIONAL): State.PROCEEDING,
    (State.PROCEEDING, Kind.PROVISIONAL): State.PROCEEDING,
    (State.CALLING, Kind.SUCCESS): State.ACCEPTED,
    (State.PROCEEDING, Kind.SUCCESS): State.ACCEPTED,
    (State.ACCEPTED, Kind.SUCCESS): State.ACCEPTED,
    (State.CALLING, Kind.FAILURE): State.TERMINATED,
    (State.PROCEEDING, Kind.FAILURE): State.TERMINATED,
    (State.CALLING, Kind.TIMEOUT): State.TERMINATED,
    (State.PROCEEDING, Kind.TIMEOUT): State.TERMINATED,
    (State.ACCEPTED, Kind.TIMEOUT): State.TERMINATED,
}
CLIENT_NON_INVITE = {
    (State.TRYING, Kind.PROVISIONAL): State.PROCEEDING,
    (State.PROCEEDING, Kind.PROVISIONAL): State.PROCEEDING,
    (State.TRYING, Kind.SUCCESS): State.TERMINATED,
    (State.PROCEEDING, Kind.SUCCESS): State.TERMINATED,
    (State.TRYING, Kind.FAILURE): State.TERMINATED,
    (State.PROCEEDING, Kind.FAILURE): State.TERMINATED,
    (State.TRYING, Kind.TIMEOUT): State.TERMINATED,
    (State.PROCEEDING, Kind.TIMEOUT): State.TERMINATED,
}
SERVER_INVITE = {
    (State.PROCEEDING, Kind.PROVISIONAL): State.PROCEEDING,
    (State.PROCEEDING, Kind.SUCCESS): State.ACCEPTED,
    (State.PROCEEDING, Kind.FAILURE): State.COMPLETED,
    (State.ACCEPTED, Kind.ACK): State.TERMINATED,
    (State.ACCEPTED, Kind.TIMEOUT): State.TERMINATED,
    (State.COMPLETED, Kind.ACK): State.TERMINATED,
    (State.COMPLETED, Kind.TIMEOUT): State.TERMINATED,
}
SERVER_NON_INVITE = {
    (State.TRYING, Kind.PROVISIONAL): State.PROCEEDING,
    (State.PROCEEDING, Kind.PROVISIONAL): State.PROCEEDING,
    (State.TRYING, Kind.SUCCESS): State.TERMINATED,
    (State.PROCEEDING, Kind.SUCCESS): State.TERMINATED,
    (State.TRYING, Kind.FAILURE): State.TERMINATED,
    (State.PROCEEDING, Kind.FAILURE): State.TERMINATED,
}


def _response_kind(response: Response) -> Kind:
    if response.status_code < 200:
        return Kind.PROVISIONAL
    return Kind.SUCCESS if response.status_code < 300 else Kind.FAILURE


class Transaction:
    """State shared by client and server transactions."""

    table: dict[tuple[State, Kind], State]

    def __init__(self, request: Request, state: State, now: float) -> None:
        self.request = request
        self.state = state
        self.deadline: float | None = now + TIMEOUT
        self.last_response: Response | None = None

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _advance(self, kind: Kind) -> None:
        try:
            self.state = self.table[(self.state, kind)]
        except KeyError:
            name = type(self).__name__
            raise TransactionError(f"{name} {self.method}: {kind.value} not allowed in {self.state.value}") from None
        if self.state is State.TERMINATED:
            self.deadline = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.state.value}>"


class ClientTransaction(Transaction):
    def __init__(self, request: Request, now: float) -> None:
        invite = request.method == "INVITE"
        super().__init__(request, State.CALLING if invite else State.TRYING, now)
        self.table = CLIENT_INVITE if invite else CLIENT_NON_INVITE
        self.key = client_key(request)


class ServerTransaction(Transaction):
    def __init__(self, request: Request, now: float) -> None:
        invite = request.method == "INVITE"
        super().__init__(request, State.PROCEEDING if invite else State.TRYING, now)
        self.table = SERVER_INVITE if invite else SERVER_NON_INVITE
        self.deadline = None  # a server transaction waits for its TU without a timer
        self.retransmit_at: float | None = None
        self.retransmit_interval = T1
        self.key = server_key(request)
        self.to_tag: str | None = None  # the tag its responses carry, outside a dialog


def _tag_response(transaction: ServerTransaction, response: Response) -> None:
    """Give ``response`` the transaction's To tag when its request was outside a dialog.

    A tag the TU chose (a call's leg has its own, for the dialog it will set up) becomes the
    transaction's; a response without one gets the transaction's, made on first need.
    """
    request_to = transaction.request.headers.get("To")
    response_to = response.headers.get("To")
    if response.status_code == 100 or response_to is None or transaction.request.to.tag is not None:
        return
    if response_to != request_to and (chosen := response.to.tag) is not None:
        transaction.to_tag = transaction.to_tag or chosen
        return
    transaction.to_tag = transaction.to_tag or new_tag()
    response.headers.set("To", f"{response_to};tag={transaction.to_tag}")


def client_key(message: Request | Response) -> tuple[str, str]:
    """RFC 3261 17.1.3: a response matches by top Via branch and CSeq method."""
    return (message.top_via.branch or "", message.cseq.method)


def server_key(request: Request) -> tuple[str, str, str]:
    """RFC 3261 17.2.3: a request matches by branch, sent-by and method (ACK as INVITE)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or f"{request.call_id}:{request.cseq.number}"
    return (branch, via.sent_by, method)


@dataclass
class RequestReceived:
    """A new request for the TU. ``transaction`` is ``None`` for an ACK to a 2xx."""

    request: Request
    transaction: ServerTransaction | None


@dataclass
class ResponseReceived:
    """A response for the TU. ``transaction`` is ``None`` for a stray 2xx retransmission."""

    response: Response
    transaction: ClientTransaction | None


@dataclass
class TransactionTimedOut:
    """No answer in time (client), or no ACK for a final response to INVITE (server)."""

    transaction: Transaction


Event = RequestReceived | ResponseReceived | TransactionTimedOut


class TransactionLayer:
    """All transactions of one transport connection."""

    def __init__(self) -> None:
        self._client: dict[tuple[str, str], ClientTransaction] = {}
        self._server: dict[tuple[str, str, str], ServerTransaction] = {}
        self._outgoing: list[Request | Response] = []

    def data_to_send(self) -> list[Request | Response]:
        """Messages to write to the transport, oldest first; the list is drained."""
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    def send_request(self, request: Request, now: float) -> ClientTransaction | None:
        """Start a client transaction (none for ACK, which never has one)."""
        self._outgoing.append(request)
        if request.method == "ACK":
            return None
        transaction = ClientTransaction(request, now)
        self._client[transaction.key] = transaction
        return transaction

    def send_response(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Answer a server transaction; the response gets its To tag here (see :func:`_tag_response`)."""
        transaction._advance(_response_kind(response))
        _tag_response(transaction, response)
        transaction.last_response = response
        self._outgoing.append(response)
        if transaction.state is State.ACCEPTED:
            transaction.retransmit_at = now + T1
            transaction.deadline = now + TIMEOUT  # Timer L
        elif transaction.state is State.COMPLETED:
            transaction.deadline = now + TIMEOUT  # Timer H
        elif transaction.terminated:
            self._server.pop(transaction.key, None)

    def receive(self, message: Request | Response, now: float) -> list[Event]:
        if isinstance(message, Response):
            return self._receive_response(message, now)
        return self._receive_request(message)

    def _receive_response(self, response: Response, now: float) -> list[Event]:
        transaction = self._client.get(client_key(response))
        if transaction is None:
            return [ResponseReceived(response, None)] if response.is_success else []
        kind = _response_kind(response)
        entering_accepted = transaction.state is not State.ACCEPTED and kind is Kind.SUCCESS
        transaction._advance(kind)
        transaction.last_response = response
        if transaction.method == "INVITE" and kind is Kind.PROVISIONAL:
            transaction.deadline = None  # Timer B stops at the first 1xx: a phone may ring for long
        elif transaction.state is State.ACCEPTED and entering_accepted:
            transaction.deadline = now + TIMEOUT  # Timer M: absorb 2xx retransmissions
        if transaction.method == "INVITE" and kind is Kind.FAILURE:
            self._outgoing.append(_ack_for_failure(transaction.request, response))
        if transaction.terminated:
            del self._client[transaction.key]
        return [ResponseReceived(response, transaction)]

    def _receive_request(self, request: Request) -> list[Event]:
        if request.method == "ACK":
            return self._receive_ack(request)
        existing = self._server.get(server_key(request))
        if existing is not None:
            # A retransmission: repeat the last answer, tell the TU nothing.
            if existing.last_response is not None:
                self._outgoing.append(existing.last_response)
            return []
        transaction = ServerTransaction(request, now=0.0)
        self._server[transaction.key] = transaction
        return [RequestReceived(request, transaction)]

    def _receive_ack(self, ack: Request) -> list[Event]:
        transaction = self._server.get(server_key(ack))
        if transaction is not None and transaction.state is State.COMPLETED:
            transaction._advance(Kind.ACK)  # ACK of an error response: absorbed
            del self._server[transaction.key]
            return []
        # ACK of a 2xx has its own branch: match the INVITE by dialog and CSeq number.
        for candidate in list(self._server.values()):
            if (
                candidate.state is State.ACCEPTED
                and candidate.request.call_id == ack.call_id
                and candidate.request.cseq.number == ack.cseq.number
            ):
                candidate._advance(Kind.ACK)
                del self._server[candidate.key]
        return [RequestReceived(ack, None)]

    def invite_for_cancel(self, cancel: Request) -> ServerTransaction | None:
        """The pending INVITE transaction a CANCEL refers to (same branch), if any."""
        branch, sent_by, _ = server_key(cancel)
        return self._server.get((branch, sent_by, "INVITE"))

    def next_deadline(self) -> float | None:
        times = [t.deadline for t in self._client.values() if t.deadline is not None]
        for transaction in self._server.values():
            times.extend(x for x in (transaction.deadline, transaction.retransmit_at) if x is not None)
        return min(times, default=None)

    def handle_timeouts(self, now: float) -> list[Event]:
        events: list[Event] = []
        for transaction in list(self._client.values()):
            if transaction.deadline is not None and transaction.deadline <= now:
                silent = transaction.state is State.ACCEPTED  # Timer M ends quietly
                transaction._advance(Kind.TIMEOUT)
                del self._client[transaction.key]
                if not silent:
                    events.append(TransactionTimedOut(transaction))
        for transaction in list(self._server.values()):
            if transaction.deadline is not None and transaction.deadline <= now:
                transaction._advance(Kind.TIMEOUT)
                del self._server[transaction.key]
                events.append(TransactionTimedOut(transaction))
            elif transaction.retransmit_at is not None and transaction.retransmit_at <= now:
                assert transaction.last_response is not None
                self._outgoing.append(transaction.last_response)
                transaction.retransmit_interval = min(transaction.retransmit_interval * 2, T2)
                transaction.retransmit_at = now + transaction.retransmit_interval
        return events

    @property
    def client_transactions(self) -> list[ClientTransaction]:
        return list(self._client.values())

    @property
    def server_transactions(self) -> list[ServerTransaction]:
        return list(self._server.values())


def _ack_for_failure(invite: Request, response: Response) -> Request:
    """RFC 3261 17.1.1.3: the ACK of a non-2xx final response, built by the transaction."""
    ack = Request(method="ACK", uri=invite.uri)
    for name in ("Via", "Route"):
        values = invite.headers.get_all(name)
        if name == "Via":
            values = values[:1]
        for value in values:
            ack.headers.add(name, value)
    ack.headers.add("Max-Forwards", "70")
    ack.headers.add("From", invite.headers.get("From") or "")
    ack.headers.add("To", response.headers.get("To") or "")
    ack.headers.add("Call-ID", invite.call_id)
    ack.headers.add("CSeq", f"{invite.cseq.number} ACK")
    return ack


__all__ = [
    "ClientTransaction",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "State",
    "TransactionLayer",
    "TransactionTimedOut",
]
