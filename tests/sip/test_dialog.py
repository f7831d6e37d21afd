"""Dialogs on both sides of a call, built from the browser client's INVITE and 200 vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from intercom.sip import (
    Address,
    CSeq,
    Dialog,
    DialogError,
    Request,
    Response,
    SipUri,
    Via,
    make_response,
    parse_message,
)

VECTORS = Path(__file__).parents[3] / "shared" / "vectors"

HUB_CONTACT = Address(SipUri(host="127.0.0.1", user="hub", port=8443, params={"transport": "ws"}))
HUB_VIA = Via("WSS", "127.0.0.1", 8443)
CLIENT_VIA = Via("WSS", "setdn3a1sf12.invalid")


def vector(name: str) -> Request | Response:
    return parse_message((VECTORS / name).read_bytes())


def browser_invite() -> Request:
    """The browser's outgoing call (invite.sip), as received by the hub."""
    invite = vector("invite.sip")
    assert isinstance(invite, Request)
    return invite


def hub_invite(record_route: bool = False) -> Request:
    """The hub's INVITE that response-200-invite.sip answers (same Via, From, Call-ID, CSeq)."""
    lines = [
        "INVITE sip:ufdtosk7@htqg06r51eqj.invalid;transport=ws SIP/2.0",
        "Via: SIP/2.0/WSS 127.0.0.1:8443;branch=z9hG4bKbqzzzv7jsxibhjg7",
        "Max-Forwards: 70",
        "To: <sip:anonymous@127.0.0.1:8443>",
        'From: "Stub Caller accept" <sip:+31000000000@127.0.0.1>;tag=5v0p6yq2',
        "Call-ID: g0gy8napq9f145gaccjk",
        "CSeq: 1 INVITE",
        "Contact: <sip:hub@127.0.0.1:8443;transport=ws>",
        "Content-Type: application/sdp",
    ]
    if record_route:
        lines.insert(2, "Record-Route: <sip:p1.invalid;lr>, <sip:p2.invalid;lr>")
    request = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(request, Request)
    return request


def client_200(record_route: bool = False) -> Response:
    """The browser's 200 to the hub's INVITE (response-200-invite.sip), optionally as if through two proxies."""
    raw = (VECTORS / "response-200-invite.sip").read_bytes()
    if record_route:
        raw = raw.replace(b"Contact:", b"Record-Route: <sip:p1.invalid;lr>, <sip:p2.invalid;lr>\r\nContact:", 1)
    response = parse_message(raw)
    assert isinstance(response, Response)
    return response


def uas_dialog(record_route: bool = False) -> Dialog:
    """The hub's side of the browser's outgoing call."""
    invite = browser_invite()
    if record_route:
        invite.headers.add("Record-Route", "<sip:p1.invalid;lr>")
        invite.headers.add("Record-Route", "<sip:p2.invalid;lr>")
    return Dialog.from_uas(invite, "hubtag1", HUB_CONTACT)


# --- creation -----------------------------------------------------------------------------------------------------


def test_from_uac_with_the_vectors() -> None:
    invite = hub_invite()
    dialog = Dialog.from_uac(invite, client_200())
    assert dialog.call_id == "g0gy8napq9f145gaccjk"
    assert dialog.local_tag == "5v0p6yq2"
    assert dialog.remote_tag == "tu4vh7ggcr"
    assert dialog.id == ("g0gy8napq9f145gaccjk", "5v0p6yq2", "tu4vh7ggcr")
    assert dialog.local_uri == Address(SipUri(host="127.0.0.1", user="+31000000000"), "Stub Caller accept")
    assert dialog.remote_uri == Address(SipUri(host="127.0.0.1", user="anonymous", port=8443))
    assert dialog.remote_target == SipUri(host="htqg06r51eqj.invalid", user="ufdtosk7", params={"transport": "ws"})
    assert dialog.local_contact == HUB_CONTACT
    assert dialog.local_seq == 1
    assert dialog.remote_seq is None
    assert dialog.route_set == []


def test_from_uac_route_set_is_record_route_reversed() -> None:
    dialog = Dialog.from_uac(hub_invite(), client_200(record_route=True))
    assert dialog.route_set == ["<sip:p2.invalid;lr>", "<sip:p1.invalid;lr>"]


def test_from_uas_with_the_vectors() -> None:
    dialog = uas_dialog()
    assert dialog.call_id == "l92lglkmprigoal4ls0r"
    assert dialog.id == ("l92lglkmprigoal4ls0r", "hubtag1", "u6r2eb1i9l")
    assert dialog.local_uri == Address(SipUri(host="127.0.0.1", user="00000", port=8443))
    assert dialog.remote_uri == Address(SipUri(host="127.0.0.1", user="anonymous", port=8443))
    assert dialog.remote_target == SipUri(
        host="setdn3a1sf12.invalid", user="meo2iuvm", params={"transport": "ws", "ob": None}
    )
    assert dialog.local_contact == HUB_CONTACT
    assert dialog.remote_seq == 3046
    assert dialog.route_set == []


def test_from_uas_route_set_keeps_record_route_order() -> None:
    assert uas_dialog(record_route=True).route_set == ["<sip:p1.invalid;lr>", "<sip:p2.invalid;lr>"]


def test_from_uac_needs_to_tag_and_contact() -> None:
    invite = hub_invite()
    no_tag = make_response(invite, 200, headers=[("Contact", "<sip:c@c.invalid>")])
    with pytest.raises(DialogError):
        Dialog.from_uac(invite, no_tag)
    no_contact = make_response(invite, 200, to_tag="t")
    with pytest.raises(DialogError):
        Dialog.from_uac(invite, no_contact)
    untagged_invite = hub_invite()
    untagged_invite.headers.set("From", "<sip:+31000000000@127.0.0.1>")
    with pytest.raises(DialogError):
        Dialog.from_uac(untagged_invite, client_200())


def test_from_uas_needs_from_tag_and_contact() -> None:
    invite = browser_invite()
    invite.headers.set("From", "<sip:anonymous@127.0.0.1:8443>")
    with pytest.raises(DialogError):
        Dialog.from_uas(invite, "t", HUB_CONTACT)
    invite = browser_invite()
    invite.headers.remove("Contact")
    with pytest.raises(DialogError):
        Dialog.from_uas(invite, "t", HUB_CONTACT)


def test_from_uac_with_a_provisional_response_with_tag() -> None:
    invite = hub_invite()
    ringing = parse_message((VECTORS / "response-180-invite.sip").read_bytes())
    assert isinstance(ringing, Response)
    dialog = Dialog.from_uac(invite, ringing)
    assert dialog.remote_tag == ringing.to.tag
    assert dialog.remote_tag


# --- requests inside the dialog -----------------------------------------------------------------------------------


def test_uas_create_bye_and_info() -> None:
    dialog = uas_dialog()
    bye = dialog.create_request("BYE", HUB_VIA)
    assert bye.method == "BYE"
    assert bye.uri == dialog.remote_target  # the remote Contact
    assert str(bye.uri) == "sip:meo2iuvm@setdn3a1sf12.invalid;transport=ws;ob"
    assert bye.to.uri == SipUri(host="127.0.0.1", user="anonymous", port=8443)
    assert bye.to.tag == "u6r2eb1i9l"
    assert bye.from_.uri == SipUri(host="127.0.0.1", user="00000", port=8443)
    assert bye.from_.tag == "hubtag1"
    assert bye.call_id == "l92lglkmprigoal4ls0r"
    assert bye.cseq == CSeq(1, "BYE")
    assert bye.headers.get("Max-Forwards") == "70"
    assert bye.headers.get("Route") is None
    assert bye.contacts == []  # only target-refresh requests carry a Contact
    via = bye.top_via
    assert (via.transport, via.host, via.port) == ("WSS", "127.0.0.1", 8443)
    assert via.branch is not None and via.branch.startswith("z9hG4bK") and len(via.branch) > len("z9hG4bK")

    info = dialog.create_request(
        "INFO", HUB_VIA, headers=[("Content-Type", "application/dtmf-relay")], body=b"Signal=1\r\nDuration=100"
    )
    assert info.cseq == CSeq(2, "INFO")
    assert info.top_via.branch != via.branch
    assert info.headers.get("Content-Type") == "application/dtmf-relay"
    assert info.body == b"Signal=1\r\nDuration=100"
    assert dialog.local_seq == 2

    # What is built is a well-formed message.
    reparsed = parse_message(bytes(info))
    assert isinstance(reparsed, Request)
    assert reparsed.cseq == CSeq(2, "INFO")
    assert reparsed.body == info.body


def test_uac_create_request_cseq_increments_from_the_invite() -> None:
    dialog = Dialog.from_uac(hub_invite(), client_200())
    assert dialog.create_request("INFO", HUB_VIA).cseq == CSeq(2, "INFO")
    bye = dialog.create_request("BYE", HUB_VIA)
    assert bye.cseq == CSeq(3, "BYE")
    assert bye.uri == SipUri(host="htqg06r51eqj.invalid", user="ufdtosk7", params={"transport": "ws"})
    assert bye.from_.display_name == "Stub Caller accept"
    assert (bye.from_.tag, bye.to.tag) == ("5v0p6yq2", "tu4vh7ggcr")


def test_uac_create_request_routes_through_the_reversed_record_route() -> None:
    dialog = Dialog.from_uac(hub_invite(), client_200(record_route=True))
    bye = dialog.create_request("BYE", HUB_VIA)
    assert bye.headers.get_all("Route") == ["<sip:p2.invalid;lr>", "<sip:p1.invalid;lr>"]
    # Loose routing: the Request-URI stays the remote target.
    assert bye.uri == SipUri(host="htqg06r51eqj.invalid", user="ufdtosk7", params={"transport": "ws"})


def test_uas_create_request_routes_in_record_route_order() -> None:
    bye = uas_dialog(record_route=True).create_request("BYE", HUB_VIA)
    assert bye.headers.get_all("Route") == ["<sip:p1.invalid;lr>", "<sip:p2.invalid;lr>"]


def test_create_update_carries_the_local_contact() -> None:
    dialog = uas_dialog()
    update = dialog.create_request("UPDATE", HUB_VIA, headers=[("Session-Expires", "90;refresher=uas")])
    assert update.contacts == [HUB_CONTACT]
    assert update.headers.get("Session-Expires") == "90;refresher=uas"


def test_create_request_keeps_a_given_branch_and_cseq() -> None:
    dialog = uas_dialog()
    via = Via("WSS", "127.0.0.1", 8443, {"branch": "z9hG4bKfixed"})
    request = dialog.create_request("INFO", via, cseq=77)
    assert request.top_via.branch == "z9hG4bKfixed"
    assert request.cseq == CSeq(77, "INFO")
    assert dialog.local_seq == 0  # an explicit CSeq does not consume a number


def test_create_ack_same_cseq_number_new_branch() -> None:
    invite = hub_invite()
    dialog = Dialog.from_uac(invite, client_200())
    ack = dialog.create_ack(invite.cseq.number, HUB_VIA)
    assert ack.method == "ACK"
    assert ack.cseq == CSeq(1, "ACK")
    assert ack.uri == dialog.remote_target
    assert (ack.from_.tag, ack.to.tag) == ("5v0p6yq2", "tu4vh7ggcr")
    assert ack.call_id == invite.call_id
    branch = ack.top_via.branch
    assert branch is not None and branch.startswith("z9hG4bK")
    assert branch != invite.top_via.branch
    assert dialog.create_ack(1, HUB_VIA).top_via.branch != branch  # each ACK is a new transaction
    assert dialog.local_seq == 1  # an ACK does not consume a CSeq number
    assert dialog.create_request("BYE", HUB_VIA).cseq == CSeq(2, "BYE")
    reparsed = parse_message(bytes(ack))
    assert isinstance(reparsed, Request)
    assert reparsed.cseq == CSeq(1, "ACK")


# --- both sides together ------------------------------------------------------------------------------------------


def both_sides() -> tuple[Dialog, Dialog]:
    """The browser (UAC) and hub (UAS) dialogs of the browser's outgoing call, from one INVITE and its 200."""
    invite = browser_invite()
    hub = Dialog.from_uas(invite, "hubtag1", HUB_CONTACT)
    ok = make_response(invite, 200, to_tag="hubtag1", headers=[("Contact", str(HUB_CONTACT))])
    ok = parse_message(bytes(ok))
    assert isinstance(ok, Response)
    browser = Dialog.from_uac(invite, ok)
    return browser, hub


def test_both_sides_agree() -> None:
    browser, hub = both_sides()
    assert browser.id == (hub.call_id, hub.remote_tag, hub.local_tag)
    assert browser.remote_target == HUB_CONTACT.uri
    assert browser.local_uri == hub.remote_uri
    assert browser.remote_uri == hub.local_uri


def test_matches_requests_and_responses_of_the_dialog() -> None:
    browser, hub = both_sides()
    bye = browser.create_request("BYE", CLIENT_VIA)
    assert hub.matches(bye)
    assert not browser.matches(bye)  # a request browser sent is not one it receives
    ok = make_response(bye, 200)
    assert browser.matches(ok)
    assert not hub.matches(ok)

    info = hub.create_request("INFO", HUB_VIA)
    assert browser.matches(info)
    assert not hub.matches(info)


def test_matches_rejects_other_dialogs_and_garbage() -> None:
    browser, hub = both_sides()
    bye = browser.create_request("BYE", CLIENT_VIA)
    bye.headers.set("Call-ID", "another-call")
    assert not hub.matches(bye)

    bye = browser.create_request("BYE", CLIENT_VIA)
    bye.headers.set("To", "<sip:00000@127.0.0.1:8443>;tag=wrong")
    assert not hub.matches(bye)

    bye = browser.create_request("BYE", CLIENT_VIA)
    bye.headers.set("From", "<sip:anonymous@127.0.0.1:8443>")
    assert not hub.matches(bye)

    bye = browser.create_request("BYE", CLIENT_VIA)
    bye.headers.set("From", "<not closed")
    assert not hub.matches(bye)
    bye.headers.remove("From")
    assert not hub.matches(bye)

    # The initial INVITE has no To tag: not part of the established dialog.
    assert not hub.matches(browser_invite())


def test_receive_request_checks_cseq_order() -> None:
    browser, hub = both_sides()
    assert hub.remote_seq == 3046
    browser.local_seq = 3045  # as if the browser had lost track
    stale = browser.create_request("INFO", CLIENT_VIA)
    assert stale.cseq.number == 3046
    with pytest.raises(DialogError):
        hub.receive_request(stale)  # equal to the INVITE's
    lower = browser.create_request("INFO", CLIENT_VIA, cseq=12)
    with pytest.raises(DialogError):
        hub.receive_request(lower)
    assert hub.remote_seq == 3046

    good = browser.create_request("INFO", CLIENT_VIA)
    assert good.cseq.number == 3047
    hub.receive_request(good)
    assert hub.remote_seq == 3047
    with pytest.raises(DialogError):
        hub.receive_request(good)  # the same CSeq twice

    # ACK and CANCEL reuse the INVITE's number and are not checked.
    hub.receive_request(browser.create_ack(3046, CLIENT_VIA))
    assert hub.remote_seq == 3047


def test_receive_request_first_request_to_the_uac() -> None:
    browser, hub = both_sides()
    assert browser.remote_seq is None
    hub.local_seq = 40
    browser.receive_request(hub.create_request("INFO", HUB_VIA))
    assert browser.remote_seq == 41
    with pytest.raises(DialogError):
        browser.receive_request(hub.create_request("INFO", HUB_VIA, cseq=5))
    assert browser.remote_seq == 41


def test_receive_request_target_refresh() -> None:
    browser, hub = both_sides()
    new_contact = Address(SipUri(host="moved.invalid", user="meo2iuvm", params={"transport": "ws"}))
    info = browser.create_request("INFO", CLIENT_VIA, headers=[("Contact", str(new_contact))])
    hub.receive_request(info)
    assert hub.remote_target == SipUri(
        host="setdn3a1sf12.invalid", user="meo2iuvm", params={"transport": "ws", "ob": None}
    )
    browser.local_contact = new_contact
    update = browser.create_request("UPDATE", CLIENT_VIA)
    hub.receive_request(update)
    assert hub.remote_target == new_contact.uri
    assert hub.create_request("BYE", HUB_VIA).uri == new_contact.uri
