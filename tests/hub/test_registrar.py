"""The registrar over a real WebSocket: PROTOCOL.md section 2, replayed from the browser's bytes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from intercom.hub.registrar import MAX_CONTACTS_PER_CONNECTION, MAX_CONTACTS_PER_IDENTITY, Registrar
from intercom.sdk.registration import RegistrationState
from intercom.sip import Address, SipUri, parse_message

from ..conftest import STEP, replay


async def test_browser_register_gets_a_200_the_browser_accepts(hub, raw_sip):
    sip = await raw_sip()
    request = parse_message(replay("register-first.sip", hub.address, hub.token("desk")))
    response = await sip.exchange(request.text())

    assert response.status_code == 200
    # JsSIP needs: Via/From/Call-ID/CSeq copied, a To tag, a Contact that is its own with
    # an expires, and a JSON body with a top-level "zone".
    for name in ("Via", "From", "Call-ID", "CSeq"):
        assert response.headers.get(name) == request.headers.get(name)
    assert response.to.tag
    (contact,) = response.contacts
    sent = request.contacts[0]
    assert contact.uri == sent.uri
    assert contact.params["+sip.instance"] == sent.params["+sip.instance"]
    assert contact.params["reg-id"] == "1"
    assert contact.params["expires"] == "60"
    assert response.headers.get("Content-Type") == "application/json"
    assert json.loads(response.body) == {"zone": "local"}
    (binding,) = hub.running.registrar.lookup("desk")
    assert binding.user_agent == "JsSIP 3.13.8"


async def test_refresh_then_unregister_as_the_browser_sends_them(hub, raw_sip):
    sip = await raw_sip()
    token = hub.token("desk")
    assert (await sip.exchange(replay("register-first.sip", hub.address, token))).status_code == 200
    assert (await sip.exchange(replay("register-refresh.sip", hub.address, token))).status_code == 200
    assert len(hub.running.registrar.lookup("desk")) == 1
    response = await sip.exchange(replay("register-unregister.sip", hub.address, token))
    assert response.status_code == 200
    assert response.contacts == []
    assert hub.running.registrar.lookup("desk") == []


async def test_socket_close_removes_the_bindings(hub, raw_sip):
    sip = await raw_sip()
    assert (await sip.exchange(replay("register-first.sip", hub.address, hub.token("desk")))).status_code == 200
    assert len(hub.running.registrar.lookup("desk")) == 1
    async with asyncio.timeout(STEP):
        await sip.websocket.close()
        while hub.running.registrar.lookup("desk"):
            await asyncio.sleep(0.01)  # the hub notices the close on its own task


async def test_one_identity_on_several_connections(hub, raw_sip):
    for _ in range(3):
        sip = await raw_sip()
        request = RegistrationState(hub.address).build(hub.token("desk"))
        assert (await sip.exchange(request)).status_code == 200
    bindings = hub.running.registrar.lookup("desk")
    assert len(bindings) == 3
    assert len({id(binding.connection) for binding in bindings}) == 3


async def test_granted_expiry_is_capped(hub, raw_sip):
    hub.running.config.max_expires = 30
    sip = await raw_sip()
    state = RegistrationState(hub.address)
    response = await sip.exchange(state.build(hub.token(), expires=600))
    assert response.status_code == 200
    assert state.granted_expires(response) == 30


async def test_too_brief_expiry_gets_423_with_min_expires(hub, raw_sip):
    sip = await raw_sip()
    response = await sip.exchange(RegistrationState(hub.address).build(hub.token(), expires=3))
    assert response.status_code == 423
    assert response.headers.get("Min-Expires") == "10"
    assert hub.running.registrar.lookup("desk") == []


async def test_turn_credentials_in_coturn_rest_form(hub, raw_sip):
    hub.running.config.turn_urls = ["turn:127.0.0.1:3478?transport=udp"]
    hub.running.config.turn_secret = "s3cret"
    sip = await raw_sip()
    response = await sip.exchange(RegistrationState(hub.address).build(hub.token("desk")))
    body = json.loads(response.body)
    assert body["zone"] == "local"
    assert body["turn"]["servers"] == ["turn:127.0.0.1:3478?transport=udp"]
    credentials = body["turn"]["credentials"]
    expiry, identity = credentials["username"].split(":")
    assert identity == "desk" and int(expiry) > 0
    expected = base64.b64encode(hmac.new(b"s3cret", credentials["username"].encode(), hashlib.sha1).digest())
    assert credentials["password"] == expected.decode()


@pytest.mark.parametrize(
    ("mangle", "code", "reason_part"),
    [
        (lambda hub: "not-a-jwt", 403, "not a JWT"),
        (lambda hub: hub.token()[:-4] + "AAAA", 403, "bad signature"),
        (lambda hub: None, 403, "Missing WebRTC-Token"),
    ],
)
async def test_bad_tokens_on_the_wire(hub, raw_sip, mangle, code, reason_part):
    sip = await raw_sip()
    token = mangle(hub)
    request = RegistrationState(hub.address).build(token or "")
    if token is None:
        request.headers.remove("WebRTC-Token")
    response = await sip.exchange(request)
    assert response.status_code == code
    assert reason_part in response.reason
    assert hub.running.registrar.binding_count == 0


async def test_bad_identity_gets_406(hub, raw_sip):
    from intercom.auth import IncomingCapability, mint_token

    sip = await raw_sip()
    token = mint_token(hub.key, [IncomingCapability("x" * 31)])
    response = await sip.exchange(RegistrationState(hub.address).build(token))
    assert response.status_code == 406
    assert "identity" in response.reason


async def test_revoked_key_is_refused_on_the_next_register(hub, raw_sip):
    sip = await raw_sip()
    token = hub.token()
    assert (await sip.exchange(RegistrationState(hub.address).build(token))).status_code == 200
    assert await hub.storage.revoke_key(hub.key.id)
    response = await sip.exchange(RegistrationState(hub.address).build(token))
    assert (response.status_code, response.reason) == (403, "Invalid token: access key revoked")


async def test_options_gets_200_and_unknown_methods_501_with_allow(hub, raw_sip):
    sip = await raw_sip()
    register = RegistrationState(hub.address).build(hub.token())
    options = register.text().replace("REGISTER", "OPTIONS")
    response = await sip.exchange(options)
    assert response.status_code == 200
    assert "REGISTER" in response.headers.get_all("Allow")
    subscribe = register.text().replace("REGISTER", "SUBSCRIBE")
    response = await sip.exchange(subscribe)
    assert response.status_code == 501
    allowed = {"REGISTER", "OPTIONS", "INVITE", "ACK", "CANCEL", "BYE", "UPDATE", "INFO", "MESSAGE"}
    assert set(response.headers.get_all("Allow")) == allowed


async def test_malformed_request_gets_400_and_the_connection_stays_up(hub, raw_sip):
    sip = await raw_sip()
    good = RegistrationState(hub.address).build(hub.token())
    broken = good.text().replace("Max-Forwards: 69", "Max-Forwards: 69\r\nbroken header line")
    response = await sip.exchange(broken)
    assert response.status_code == 400
    assert "bad header line" in response.reason
    assert response.call_id == good.call_id
    await sip.send(good.text().replace("CSeq: 1 REGISTER", "CSeq: one REGISTER"))
    async with asyncio.timeout(STEP):
        raw = await sip.websocket.recv()  # copies the bad CSeq back, so it does not parse itself
    assert raw.startswith("SIP/2.0 400 Bad Request (bad CSeq 'one REGISTER')\r\n")
    too_big = good.text().replace("Content-Length: 0", "X-Padding: " + "a" * 70_000 + "\r\nContent-Length: 0")
    response = await sip.exchange(too_big)
    assert response.status_code == 400 and "exceeds" in response.reason
    await sip.send("\x00\x01 garbage that is no SIP at all")  # unreadable: dropped, logged
    response = await sip.exchange(RegistrationState(hub.address).build(hub.token()))
    assert response.status_code == 200


async def test_websocket_without_sip_subprotocol_is_refused(hub):
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(STEP):
            await connect(f"ws://{hub.address}/")
    assert refused.value.response.status_code == 403


async def test_query_without_contact_lists_the_connections_bindings(hub, raw_sip):
    sip = await raw_sip()
    state = RegistrationState(hub.address)
    assert (await sip.exchange(state.build(hub.token()))).status_code == 200
    query = state.build(hub.token())
    query.headers.remove("Contact")
    response = await sip.exchange(query)
    assert response.status_code == 200
    assert [contact.uri for contact in response.contacts] == [state.contact_uri]


async def test_contact_star_removes_all_bindings_of_the_connection(hub, raw_sip):
    sip = await raw_sip()
    state = RegistrationState(hub.address)
    assert (await sip.exchange(state.build(hub.token()))).status_code == 200
    request = state.build(hub.token(), expires=0)
    request.headers.set("Contact", "*")
    assert (await sip.exchange(request)).status_code == 200
    assert hub.running.registrar.binding_count == 0


def test_contact_uri_round_trips():
    state = RegistrationState("127.0.0.1:1")
    contact = Address.parse(state.build("t").headers.get("Contact") or "")
    assert contact.uri == SipUri(state.via_host, state.contact_user, params={"transport": "ws"})


async def test_a_registration_lasts_no_longer_than_its_token(hub, raw_sip):
    sip = await raw_sip()
    state = RegistrationState(hub.address)
    token = hub.token("desk", ttl=600)
    response = await sip.exchange(state.build(token, expires=3600))
    assert response.status_code == 200
    assert 598 <= state.granted_expires(response) <= 600  # what the token has left, not the 3600 asked
    (binding,) = hub.running.registrar.lookup("desk")
    assert binding.expires_at <= binding.grant.expires_at
    response = await sip.exchange(state.build(hub.token("desk", ttl=20), expires=60))
    assert 18 <= state.granted_expires(response) <= 20


def test_a_binding_is_gone_when_its_token_ends(hub):
    now = [time.time()]
    registrar = Registrar(hub.running.config, hub.storage.get_key, clock=lambda: now[0])
    request = RegistrationState(hub.address).build(hub.token("desk", ttl=15), expires=3600)
    assert registrar.handle_register(object(), request).status_code == 200
    now[0] += 14
    assert len(registrar.lookup("desk")) == 1
    now[0] += 2  # the token is over: so is the binding, though 3600 s were asked
    assert registrar.lookup("desk") == []
    assert registrar.expire() == 1 and registrar.binding_count == 0


def test_a_token_past_its_end_registers_nothing(hub):
    later = time.time() + 620  # within check_token's clock skew of the end of a 600 s token
    registrar = Registrar(hub.running.config, hub.storage.get_key, clock=lambda: later)
    response = registrar.handle_register(object(), RegistrationState(hub.address).build(hub.token("desk")))
    assert (response.status_code, response.reason) == (403, "Invalid token: expired")
    assert registrar.binding_count == 0


async def test_contacts_per_connection_are_limited(hub, raw_sip):
    sip = await raw_sip()
    token = hub.token("desk")
    for count in range(MAX_CONTACTS_PER_CONNECTION):
        assert (await sip.exchange(RegistrationState(hub.address).build(token))).status_code == 200, count
    response = await sip.exchange(RegistrationState(hub.address).build(hub.token("lobby")))
    assert (response.status_code, response.reason) == (403, "Forbidden (at most 10 contacts per connection)")
    assert hub.running.registrar.lookup("lobby") == []
    assert len(hub.running.registrar.lookup("desk")) == MAX_CONTACTS_PER_CONNECTION
    state = RegistrationState(hub.address)  # one leaves, another may come
    assert (await sip.exchange(state.build(token))).status_code == 403
    first = hub.running.registrar.lookup("desk")[0]
    unregister = RegistrationState(hub.address)
    unregister.contact_user, unregister.via_host = first.contact.uri.user, first.contact.uri.host
    assert (await sip.exchange(unregister.build(token, expires=0))).status_code == 200
    assert (await sip.exchange(state.build(token))).status_code == 200


async def test_contacts_per_identity_are_limited_across_connections(hub, raw_sip):
    token = hub.token("desk")
    for count in range(MAX_CONTACTS_PER_IDENTITY):
        sip = await raw_sip()
        assert (await sip.exchange(RegistrationState(hub.address).build(token))).status_code == 200, count
    sip = await raw_sip()
    response = await sip.exchange(RegistrationState(hub.address).build(token))
    assert (response.status_code, response.reason) == (403, "Forbidden (at most 10 contacts for identity desk)")
    assert len(hub.running.registrar.lookup("desk")) == MAX_CONTACTS_PER_IDENTITY
    assert (await sip.exchange(RegistrationState(hub.address).build(hub.token("lobby")))).status_code == 200
    state = RegistrationState(hub.address)  # a refresh of a binding there is counts once
    first = await raw_sip()
    assert (await first.exchange(state.build(hub.token("hall")))).status_code == 200
    assert (await first.exchange(state.build(hub.token("hall")))).status_code == 200
    assert len(hub.running.registrar.lookup("hall")) == 1


async def test_one_register_with_300_contacts_is_refused_whole(hub, raw_sip):
    """Issue 16: one REGISTER must not make a call fork 300 INVITEs, in one Contact header or in 300."""
    sip = await raw_sip()
    lines = RegistrationState(hub.address).build(hub.token("desk")).text().split("\r\n")
    (contact,) = [line for line in lines if line.startswith("Contact: ")]
    at = lines.index(contact)
    value = contact.removeprefix("Contact: ")
    one_header = "Contact: " + ", ".join(value.replace("<sip:", f"<sip:c{index}x", 1) for index in range(300))
    response = await sip.exchange("\r\n".join([*lines[:at], one_header, *lines[at + 1 :]]))
    assert (response.status_code, response.reason) == (403, "Forbidden (at most 10 contacts per connection)")
    many_headers = [contact.replace("<sip:", f"<sip:c{index}x", 1) for index in range(300)]
    response = await sip.exchange("\r\n".join([*lines[:at], *many_headers, *lines[at + 1 :]]))
    assert response.status_code == 400 and "header fields" in response.reason  # the parser's own bound
    assert hub.running.registrar.lookup("desk") == []


def test_presence_is_told_on_the_first_binding_and_the_last_only(hub):
    now = [time.time()]
    registrar = Registrar(hub.running.config, hub.storage.get_key, clock=lambda: now[0])
    told: list[tuple[str, bool]] = []
    registrar.on_presence(lambda identity, reachable: told.append((identity, reachable)))
    registrar.on_presence(lambda identity, reachable: 1 / 0)  # a faulty listener changes nothing
    phone, laptop = RegistrationState(hub.address), RegistrationState(hub.address)
    first, second = object(), object()
    token = hub.token("desk", ttl=60)

    assert registrar.handle_register(first, phone.build(token)).status_code == 200
    assert told == [("desk", True)]
    assert registrar.handle_register(first, phone.build(token)).status_code == 200  # a refresh
    assert registrar.handle_register(second, laptop.build(token)).status_code == 200  # a second device
    assert told == [("desk", True)]
    assert registrar.handle_register(first, phone.build(token, expires=0)).status_code == 200
    assert told == [("desk", True)]  # the laptop still holds it
    registrar.remove_connection(second)
    assert told == [("desk", True), ("desk", False)]

    assert registrar.handle_register(first, phone.build(token)).status_code == 200
    assert registrar.drop_keys({hub.key.id}) and told[-2:] == [("desk", True), ("desk", False)]  # key revoked

    assert registrar.handle_register(first, phone.build(token)).status_code == 200
    now[0] += 61  # the token ran out: the sweeper's expire() removes the binding
    assert registrar.expire() == 1
    assert told[-2:] == [("desk", True), ("desk", False)]
    assert len(told) == 6
