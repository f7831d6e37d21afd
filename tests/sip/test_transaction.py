"""Transactions over a reliable transport, driven with explicit clock values (no sleeps)."""

from __future__ import annotations

import pytest

from intercom.sip import (
    CSeq,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    ServerTransaction,
    State,
    TransactionError,
    TransactionLayer,
    TransactionTimedOut,
    make_cancel,
    make_response,
    parse_message,
)

T1 = 0.5
T2 = 4.0
TIMEOUT = 64 * T1  # 32 s: Timers B, F, H, L, M


def make_request(
    method: str,
    *,
    branch: str = "z9hG4bKbranch1",
    cseq: int = 1,
    call_id: str = "call-1",
    sent_by: str = "127.0.0.1:8443",
    to_tag: str | None = None,
    extra: str = "",
) -> Request:
    """A request as it is seen on the wire (serialised, then parsed back)."""
    to = "<sip:anonymous@127.0.0.1:8443>" + (f";tag={to_tag}" if to_tag else "")
    raw = (
        f"{method} sip:ufdtosk7@htqg06r51eqj.invalid;transport=ws SIP/2.0\r\n"
        f"Via: SIP/2.0/WSS {sent_by};branch={branch}\r\n"
        "Via: SIP/2.0/WSS proxy.invalid;branch=z9hG4bKproxy\r\n"
        "Route: <sip:edge.invalid;lr>\r\n"
        "Max-Forwards: 70\r\n"
        f"To: {to}\r\n"
        'From: "Front door" <sip:door@127.0.0.1>;tag=5v0p6yq2\r\n'
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:hub@127.0.0.1:8443;transport=ws>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(raw)
    assert isinstance(message, Request)
    return message


def answer(request: Request, status: int, to_tag: str | None = "callee1") -> Response:
    """The response the peer would send to ``request``, as received (serialised, then parsed back)."""
    message = parse_message(bytes(make_response(request, status, to_tag=to_tag)))
    assert isinstance(message, Response)
    return message


def new_server_transaction(layer: TransactionLayer, request: Request, now: float = 0.0) -> ServerTransaction:
    events = layer.receive(request, now)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, RequestReceived)
    assert event.request is request
    assert isinstance(event.transaction, ServerTransaction)
    return event.transaction


# --- client non-INVITE --------------------------------------------------------------------------------------------


def test_client_non_invite_provisional_then_final() -> None:
    layer = TransactionLayer()
    options = make_request("OPTIONS")
    transaction = layer.send_request(options, now=10.0)
    assert transaction is not None
    assert transaction.state is State.TRYING
    assert layer.data_to_send() == [options]
    assert layer.data_to_send() == []  # drained
    assert layer.next_deadline() == 10.0 + TIMEOUT  # Timer F
    assert layer.client_transactions == [transaction]

    trying = answer(options, 100, to_tag=None)
    assert layer.receive(trying, now=10.1) == [ResponseReceived(trying, transaction)]
    assert transaction.state is State.PROCEEDING
    assert layer.client_transactions == [transaction]

    ok = answer(options, 200)
    events = layer.receive(ok, now=10.2)
    assert events == [ResponseReceived(ok, transaction)]
    assert events[0].transaction is transaction
    assert transaction.state is State.TERMINATED
    assert transaction.last_response is ok
    assert layer.client_transactions == []
    assert layer.next_deadline() is None
    assert layer.data_to_send() == []
    assert layer.handle_timeouts(10.0 + TIMEOUT) == []


def test_client_non_invite_final_without_provisional() -> None:
    layer = TransactionLayer()
    message = make_request("MESSAGE")
    transaction = layer.send_request(message, now=0.0)
    assert transaction is not None
    failure = answer(message, 405)
    assert layer.receive(failure, now=1.0) == [ResponseReceived(failure, transaction)]
    assert transaction.terminated
    assert layer.client_transactions == []
    assert layer.data_to_send() == [message]  # no ACK for a non-INVITE


def test_client_non_invite_timer_f() -> None:
    layer = TransactionLayer()
    options = make_request("OPTIONS")
    transaction = layer.send_request(options, now=5.0)
    layer.data_to_send()
    assert layer.receive(answer(options, 100, to_tag=None), now=6.0)
    assert layer.handle_timeouts(5.0 + TIMEOUT - 0.001) == []
    assert layer.client_transactions == [transaction]
    assert layer.next_deadline() == 5.0 + TIMEOUT  # a 1xx does not stop Timer F
    events = layer.handle_timeouts(5.0 + TIMEOUT)
    assert events == [TransactionTimedOut(transaction)]
    assert events[0].transaction is transaction
    assert transaction.state is State.TERMINATED
    assert layer.client_transactions == []
    assert layer.next_deadline() is None
    assert layer.data_to_send() == []  # nothing is sent on a timeout
    # A late final response finds no transaction; a late non-2xx is dropped.
    assert layer.receive(answer(options, 486), now=40.0) == []


def test_client_responses_match_by_branch_and_method() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE", branch="z9hG4bKinv")
    invite_transaction = layer.send_request(invite, now=0.0)
    # CANCEL uses the INVITE's branch; its transaction is a different one (RFC 3261 9.1).
    cancel = make_request("CANCEL", branch="z9hG4bKinv")
    cancel_transaction = layer.send_request(cancel, now=1.0)
    assert invite_transaction is not None and cancel_transaction is not None
    assert invite_transaction is not cancel_transaction
    assert len(layer.client_transactions) == 2

    cancel_ok = answer(cancel, 200)
    assert layer.receive(cancel_ok, now=1.1) == [ResponseReceived(cancel_ok, cancel_transaction)]
    assert invite_transaction.state is State.CALLING
    assert layer.client_transactions == [invite_transaction]

    # A response whose branch matches nothing: a 2xx goes to the TU without a transaction, others are dropped.
    other = make_request("INVITE", branch="z9hG4bKother")
    stray_ok = answer(other, 200)
    assert layer.receive(stray_ok, now=2.0) == [ResponseReceived(stray_ok, None)]
    assert layer.receive(answer(other, 180), now=2.0) == []
    assert layer.receive(answer(other, 500), now=2.0) == []
    assert invite_transaction.state is State.CALLING


def test_send_ack_starts_no_transaction() -> None:
    layer = TransactionLayer()
    ack = make_request("ACK", to_tag="x")
    assert layer.send_request(ack, now=0.0) is None
    assert layer.data_to_send() == [ack]
    assert layer.client_transactions == []
    assert layer.next_deadline() is None


# --- client INVITE ------------------------------------------------------------------------------------------------


def test_client_invite_failure_response_is_acked_by_the_layer() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE", branch="z9hG4bKinvite", cseq=2478, call_id="fvt60d2vcaitubtncin8")
    transaction = layer.send_request(invite, now=0.0)
    assert transaction is not None
    assert transaction.state is State.CALLING
    assert layer.data_to_send() == [invite]

    ringing = answer(invite, 180, to_tag="callee-tag")
    assert layer.receive(ringing, now=1.0) == [ResponseReceived(ringing, transaction)]
    assert transaction.state is State.PROCEEDING
    assert layer.data_to_send() == []

    busy = answer(invite, 486, to_tag="callee-tag")
    assert layer.receive(busy, now=2.0) == [ResponseReceived(busy, transaction)]
    assert transaction.state is State.TERMINATED
    assert layer.client_transactions == []
    assert layer.next_deadline() is None

    (ack,) = layer.data_to_send()
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert [via.branch for via in ack.vias] == ["z9hG4bKinvite"]  # the INVITE's top Via only
    assert ack.top_via == invite.top_via
    assert ack.cseq == CSeq(2478, "ACK")
    assert ack.call_id == "fvt60d2vcaitubtncin8"
    assert ack.from_ == invite.from_
    assert ack.to.tag == "callee-tag"
    assert ack.to.uri == invite.to.uri
    assert ack.headers.get_all("Route") == ["<sip:edge.invalid;lr>"]
    assert ack.body == b""
    # The ACK is a well-formed message.
    reparsed = parse_message(bytes(ack))
    assert isinstance(reparsed, Request)
    assert reparsed.cseq == CSeq(2478, "ACK")


def test_client_invite_failure_without_provisional_acks_with_the_responses_tag() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE", cseq=9)
    layer.send_request(invite, now=0.0)
    layer.data_to_send()
    failure = answer(invite, 488, to_tag="t488")
    layer.receive(failure, now=0.5)
    (ack,) = layer.data_to_send()
    assert isinstance(ack, Request)
    assert (ack.method, ack.cseq, ack.to.tag) == ("ACK", CSeq(9, "ACK"), "t488")


def test_client_invite_2xx_goes_to_accepted_and_retransmissions_reach_the_tu() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE")
    transaction = layer.send_request(invite, now=0.0)
    assert transaction is not None
    layer.data_to_send()
    layer.receive(answer(invite, 180), now=0.5)

    ok = answer(invite, 200)
    assert layer.receive(ok, now=1.0) == [ResponseReceived(ok, transaction)]
    assert transaction.state is State.ACCEPTED
    assert layer.data_to_send() == []  # the ACK of a 2xx is the TU's job
    assert layer.client_transactions == [transaction]

    again = answer(invite, 200)
    events = layer.receive(again, now=2.0)
    assert events == [ResponseReceived(again, transaction)]
    assert events[0].response is again
    assert transaction.state is State.ACCEPTED
    assert layer.data_to_send() == []

    # Timer M: the transaction ends quietly, without an event.
    deadline = layer.next_deadline()
    assert deadline is not None
    assert 1.0 + TIMEOUT <= deadline <= 2.0 + TIMEOUT
    assert layer.handle_timeouts(deadline - 0.001) == []
    assert layer.client_transactions == [transaction]
    assert layer.handle_timeouts(deadline) == []
    assert transaction.state is State.TERMINATED
    assert layer.client_transactions == []
    assert layer.next_deadline() is None
    assert layer.data_to_send() == []
    # After Timer M a 2xx retransmission still reaches the TU, without a transaction.
    late = answer(invite, 200)
    assert layer.receive(late, now=deadline + 1) == [ResponseReceived(late, None)]


def test_client_invite_timer_m_is_not_restarted_by_retransmissions() -> None:
    # RFC 6026 section 8.4: Timer M (64*T1) starts when the transaction enters Accepted; 2xx
    # retransmissions received while Accepted are passed up but do not restart it.
    layer = TransactionLayer()
    invite = make_request("INVITE")
    transaction = layer.send_request(invite, now=0.0)
    layer.receive(answer(invite, 200), now=1.0)
    layer.receive(answer(invite, 200), now=5.0)
    assert layer.next_deadline() == 1.0 + TIMEOUT
    assert layer.handle_timeouts(1.0 + TIMEOUT) == []
    assert transaction is not None and transaction.terminated
    assert layer.client_transactions == []


def test_client_invite_timer_b_while_calling() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE")
    transaction = layer.send_request(invite, now=3.0)
    assert layer.next_deadline() == 3.0 + TIMEOUT
    assert layer.handle_timeouts(3.0 + TIMEOUT - 0.001) == []
    assert layer.handle_timeouts(3.0 + TIMEOUT) == [TransactionTimedOut(transaction)]
    assert layer.client_transactions == []


def test_client_invite_keeps_ringing_past_64_t1() -> None:
    # RFC 3261 17.1.1.2: Timer B only applies in Calling. Once a 1xx arrived the INVITE waits for the
    # callee (the browser client rings for up to 60 s before answering 408, PROTOCOL.md section 5).
    layer = TransactionLayer()
    invite = make_request("INVITE")
    transaction = layer.send_request(invite, now=0.0)
    assert transaction is not None
    layer.receive(answer(invite, 180), now=0.2)
    assert layer.handle_timeouts(40.0) == []
    assert transaction.state is State.PROCEEDING
    ok = answer(invite, 200)
    assert layer.receive(ok, now=45.0) == [ResponseReceived(ok, transaction)]
    assert transaction.state is State.ACCEPTED


def test_client_invite_response_the_table_forbids_raises_and_changes_nothing() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE")
    transaction = layer.send_request(invite, now=0.0)
    assert transaction is not None
    layer.receive(answer(invite, 200), now=1.0)
    for late in (answer(invite, 180), answer(invite, 486)):
        with pytest.raises(TransactionError):
            layer.receive(late, now=2.0)
        assert transaction.state is State.ACCEPTED
        assert layer.client_transactions == [transaction]
    assert layer.data_to_send() == [invite]  # no ACK was built for the refused 486


# --- server non-INVITE --------------------------------------------------------------------------------------------


def test_server_non_invite_request_and_retransmissions() -> None:
    layer = TransactionLayer()
    info = make_request("INFO", to_tag="local1", extra="Content-Type: application/dtmf-relay\r\n")
    transaction = new_server_transaction(layer, info, now=1.0)
    assert transaction.state is State.TRYING
    assert transaction.request is info
    assert layer.server_transactions == [transaction]
    assert layer.next_deadline() is None  # a server transaction waits for its TU without a timer

    # A retransmission before any answer: absorbed, nothing to repeat.
    assert layer.receive(make_request("INFO", to_tag="local1"), now=1.5) == []
    assert layer.data_to_send() == []

    trying = make_response(info, 100)
    layer.send_response(transaction, trying, now=2.0)
    assert transaction.state is State.PROCEEDING
    assert layer.data_to_send() == [trying]
    # A retransmission now repeats the last response and tells the TU nothing.
    assert layer.receive(make_request("INFO", to_tag="local1"), now=2.5) == []
    assert layer.data_to_send() == [trying]

    ok = make_response(info, 200)
    layer.send_response(transaction, ok, now=3.0)
    assert transaction.state is State.TERMINATED
    assert layer.data_to_send() == [ok]
    assert layer.server_transactions == []
    assert layer.next_deadline() is None


def test_server_non_invite_second_final_response_is_an_error() -> None:
    layer = TransactionLayer()
    bye = make_request("BYE", to_tag="local1")
    transaction = new_server_transaction(layer, bye)
    layer.send_response(transaction, make_response(bye, 200), now=1.0)
    layer.data_to_send()
    with pytest.raises(TransactionError):
        layer.send_response(transaction, make_response(bye, 500), now=2.0)
    with pytest.raises(TransactionError):
        layer.send_response(transaction, make_response(bye, 100), now=2.0)
    assert layer.data_to_send() == []  # nothing was queued by the rejected calls


def test_server_transactions_are_told_apart_by_branch_sent_by_and_method() -> None:
    layer = TransactionLayer()
    first = new_server_transaction(layer, make_request("OPTIONS", branch="z9hG4bKa"))
    second = new_server_transaction(layer, make_request("OPTIONS", branch="z9hG4bKb"))
    third = new_server_transaction(layer, make_request("OPTIONS", branch="z9hG4bKa", sent_by="other.invalid"))
    assert len({id(first), id(second), id(third)}) == 3
    assert len(layer.server_transactions) == 3


# --- server INVITE, 2xx -------------------------------------------------------------------------------------------


def accepted_invite(now: float = 100.0) -> tuple[TransactionLayer, Request, ServerTransaction, Response]:
    layer = TransactionLayer()
    invite = make_request("INVITE", branch="z9hG4bKinv", cseq=7, call_id="call-7")
    transaction = new_server_transaction(layer, invite, now=now)
    assert transaction.state is State.PROCEEDING
    ringing = make_response(invite, 180, to_tag="hub1")
    layer.send_response(transaction, ringing, now=now)
    assert transaction.state is State.PROCEEDING
    assert layer.data_to_send() == [ringing]
    assert layer.next_deadline() is None
    ok = make_response(invite, 200, to_tag="hub1")
    layer.send_response(transaction, ok, now=now)
    assert transaction.state is State.ACCEPTED
    assert layer.data_to_send() == [ok]
    return layer, invite, transaction, ok


def test_server_invite_2xx_retransmission_schedule_until_timeout() -> None:
    start = 100.0
    layer, _, transaction, ok = accepted_invite(start)
    assert layer.next_deadline() == start + T1
    assert layer.handle_timeouts(start + T1 - 0.001) == []
    assert layer.data_to_send() == []

    resent_at: list[float] = []
    events = []
    while (deadline := layer.next_deadline()) is not None:
        assert deadline <= start + TIMEOUT
        events = layer.handle_timeouts(deadline)
        sent = layer.data_to_send()
        if sent:
            assert sent == [ok]
            assert sent[0] is ok
            assert events == []
            resent_at.append(deadline - start)
    # Intervals T1, 2*T1, 4*T1, then capped at T2, until Timer L fires at 64*T1.
    assert resent_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events == [TransactionTimedOut(transaction)]
    assert transaction.state is State.TERMINATED
    assert layer.server_transactions == []


def test_server_invite_2xx_retransmission_stops_at_ack() -> None:
    start = 100.0
    layer, _, transaction, ok = accepted_invite(start)
    assert layer.handle_timeouts(start + 0.5) == []
    assert layer.data_to_send() == [ok]
    assert layer.handle_timeouts(start + 1.5) == []
    assert layer.data_to_send() == [ok]
    assert layer.next_deadline() == start + 3.5

    # The ACK of a 2xx has a new branch, the INVITE's Call-ID and CSeq number.
    ack = make_request("ACK", branch="z9hG4bKack", cseq=7, call_id="call-7", to_tag="hub1")
    events = layer.receive(ack, now=start + 2.0)
    assert events == [RequestReceived(ack, None)]
    assert events[0].request is ack and events[0].transaction is None
    assert transaction.state is State.TERMINATED
    assert layer.server_transactions == []
    assert layer.next_deadline() is None
    assert layer.handle_timeouts(start + 100) == []
    assert layer.data_to_send() == []
    # A retransmitted ACK still reaches the TU (the dialog absorbs it), and is harmless.
    assert layer.receive(ack, now=start + 3.0) == [RequestReceived(ack, None)]
    assert layer.data_to_send() == []


def test_server_invite_2xx_ack_of_another_invite_does_not_stop_retransmission() -> None:
    start = 0.0
    layer, _, transaction, ok = accepted_invite(start)
    other_call = make_request("ACK", branch="z9hG4bKx", cseq=7, call_id="call-other", to_tag="hub1")
    assert layer.receive(other_call, now=0.2) == [RequestReceived(other_call, None)]
    other_cseq = make_request("ACK", branch="z9hG4bKy", cseq=6, call_id="call-7", to_tag="hub1")
    assert layer.receive(other_cseq, now=0.3) == [RequestReceived(other_cseq, None)]
    assert transaction.state is State.ACCEPTED
    assert layer.handle_timeouts(0.5) == []
    assert layer.data_to_send() == [ok]


def test_server_invite_retransmitted_invite_while_accepted_is_absorbed() -> None:
    layer, invite, transaction, ok = accepted_invite(0.0)
    again = make_request("INVITE", branch="z9hG4bKinv", cseq=7, call_id="call-7")
    assert layer.receive(again, now=0.1) == []
    assert layer.data_to_send() == [ok]
    assert transaction.state is State.ACCEPTED
    assert transaction.request is invite


def test_server_invite_response_after_2xx_is_an_error() -> None:
    layer, invite, transaction, _ = accepted_invite(0.0)
    with pytest.raises(TransactionError):
        layer.send_response(transaction, make_response(invite, 200, to_tag="hub1"), now=0.1)
    with pytest.raises(TransactionError):
        layer.send_response(transaction, make_response(invite, 180, to_tag="hub1"), now=0.1)
    with pytest.raises(TransactionError):
        layer.send_response(transaction, make_response(invite, 500, to_tag="hub1"), now=0.1)
    assert layer.data_to_send() == []


# --- server INVITE, error response --------------------------------------------------------------------------------


def rejected_invite(
    status: int = 486, now: float = 10.0
) -> tuple[TransactionLayer, Request, ServerTransaction, Response]:
    layer = TransactionLayer()
    invite = make_request("INVITE", branch="z9hG4bKrej", cseq=3, call_id="call-3")
    transaction = new_server_transaction(layer, invite, now=now)
    failure = make_response(invite, status, to_tag="hub2")
    layer.send_response(transaction, failure, now=now)
    assert transaction.state is State.COMPLETED
    assert layer.data_to_send() == [failure]
    return layer, invite, transaction, failure


def test_server_invite_error_response_ack_is_absorbed() -> None:
    layer, _, transaction, failure = rejected_invite(now=10.0)
    assert layer.next_deadline() == 10.0 + TIMEOUT  # Timer H
    # Reliable transport: the error response is not retransmitted by timer (no Timer G).
    assert layer.handle_timeouts(10.5) == []
    assert layer.handle_timeouts(20.0) == []
    assert layer.data_to_send() == []
    # A retransmitted INVITE is answered again with the error response.
    assert layer.receive(make_request("INVITE", branch="z9hG4bKrej", cseq=3, call_id="call-3"), now=11.0) == []
    assert layer.data_to_send() == [failure]

    ack = make_request("ACK", branch="z9hG4bKrej", cseq=3, call_id="call-3", to_tag="hub2")
    assert layer.receive(ack, now=12.0) == []
    assert transaction.state is State.TERMINATED
    assert layer.server_transactions == []
    assert layer.next_deadline() is None
    assert layer.handle_timeouts(10.0 + TIMEOUT) == []


def test_server_invite_error_response_timer_h() -> None:
    layer, _, transaction, _ = rejected_invite(480, now=10.0)
    assert layer.handle_timeouts(10.0 + TIMEOUT - 0.001) == []
    events = layer.handle_timeouts(10.0 + TIMEOUT)
    assert events == [TransactionTimedOut(transaction)]
    assert events[0].transaction is transaction
    assert transaction.state is State.TERMINATED
    assert layer.server_transactions == []
    assert layer.data_to_send() == []


def test_server_invite_second_final_after_error_is_an_error() -> None:
    layer, invite, transaction, _ = rejected_invite()
    with pytest.raises(TransactionError):
        layer.send_response(transaction, make_response(invite, 200, to_tag="hub2"), now=11.0)
    assert transaction.state is State.COMPLETED


# --- CANCEL -------------------------------------------------------------------------------------------------------


def test_invite_for_cancel_finds_the_invite_by_branch() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE", branch="z9hG4bKring", cseq=4, call_id="call-4")
    invite_transaction = new_server_transaction(layer, invite)
    layer.send_response(invite_transaction, make_response(invite, 180, to_tag="hub3"), now=0.0)
    other = new_server_transaction(layer, make_request("INVITE", branch="z9hG4bKother", call_id="call-5"))

    cancel = make_request("CANCEL", branch="z9hG4bKring", cseq=4, call_id="call-4")
    assert layer.invite_for_cancel(cancel) is invite_transaction
    # The CANCEL is a transaction of its own, delivered to the TU.
    cancel_transaction = new_server_transaction(layer, cancel, now=1.0)
    assert cancel_transaction is not invite_transaction
    assert cancel_transaction.method == "CANCEL"
    assert layer.invite_for_cancel(cancel) is invite_transaction

    assert layer.invite_for_cancel(make_request("CANCEL", branch="z9hG4bKnothing", call_id="call-4")) is None
    # Same branch but another sent-by is another transaction (RFC 3261 17.2.3).
    assert layer.invite_for_cancel(make_request("CANCEL", branch="z9hG4bKring", sent_by="x.invalid")) is None
    assert layer.invite_for_cancel(make_request("CANCEL", branch="z9hG4bKother", call_id="call-5")) is other


def test_make_cancel_reaches_the_pending_invite_on_the_far_side() -> None:
    invite = make_request("INVITE", branch="z9hG4bKcancelme", cseq=7, call_id="call-9", extra="Route: <sip:edge>\r\n")
    far_side = TransactionLayer()
    (received,) = far_side.receive(invite, now=0.0)
    cancel = parse_message(make_cancel(invite).text())  # as it arrives on the far side
    assert cancel.method == "CANCEL" and cancel.uri == invite.uri
    assert (cancel.cseq.number, cancel.cseq.method) == (7, "CANCEL")
    for name in ("Call-ID", "From", "To", "Route"):
        assert cancel.headers.get_lines(name) == invite.headers.get_lines(name)
    assert cancel.headers.get_lines("Route")[-1] == "<sip:edge>"
    assert far_side.invite_for_cancel(cancel) is received.transaction
