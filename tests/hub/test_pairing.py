"""Pairing a phone and its credential over HTTP with a real hub: codes once and for a while, bad codes
bounded per source, tokens for the phone's identity only, revocation at once, and the desk's view
(doors, calls, voicemails) and nothing beyond."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from intercom.auth import PHONES, check_token
from intercom.hub.callflows import identities
from intercom.hub.pairing import CodeGone, PhoneBook
from intercom.hub.records import CallRecord, LegRecord, RecordingRecord
from intercom.sdk import ClientStatus
from intercom.sip.door import asserted_group
from intercom.sip.headers import Headers

from ..units import STEP
from .api.call_log import write_wav
from .api.conftest import errors
from .pairing import Desk


async def test_a_code_pairs_once_and_the_credential_mints_tokens_for_its_identity_only(desk_api: Desk) -> None:
    invitation = await desk_api.book.invite("anna_phone", name="Anna's phone")
    assert len(invitation.code) >= 22  # 128 bits or more, url-safe base64
    assert invitation.code not in str(await desk_api.hub.storage.rows("SELECT * FROM phones"))
    first = await desk_api.http.post("/desk/api/pair", json={"code": invitation.code, "device": "Pixel"})
    assert first.status_code == 201 and first.json()["identity"] == "anna_phone"
    again = await desk_api.http.post("/desk/api/pair", json={"code": invitation.code, "device": "thief"})
    errors(again, 410)
    credential = first.json()["credential"]
    response = await desk_api.token(credential)
    assert response.status_code == 200
    body = response.json()
    grant = check_token(body["jwt"], desk_api.hub.storage.get_key)
    assert grant.incoming is not None and grant.incoming.identity == "anna_phone"
    assert grant.outgoing is None  # no flow given: a phone only answers, as a desk does
    assert body["expiresAt"] == grant.expires_at and 0 < grant.expires_at - time.time() <= 600
    (phone,) = await desk_api.book.phones()
    assert (phone.name, phone.device, phone.state) == ("Anna's phone", "Pixel", "paired")
    assert phone.last_token_at is not None
    key = desk_api.hub.storage.get_key(phone.id)
    assert key is not None and key.scope is not None and key.scope.group == PHONES


async def test_an_expired_code_is_gone(desk_api: Desk) -> None:
    code = (await desk_api.book.invite("anna_phone", code_seconds=-1)).code
    (error,) = errors(await desk_api.http.post("/desk/api/pair", json={"code": code, "device": "x"}), 410)
    assert "expired" in str(error["message"])


async def test_bad_codes_from_one_source_get_429_while_another_source_still_pairs(desk_api: Desk) -> None:
    limit = desk_api.hub.running.config.pairing_max_bad_codes
    for attempt in range(limit):
        errors(await desk_api.http.post("/desk/api/pair", json={"code": f"guess{attempt}", "device": "x"}), 410)
    good = (await desk_api.book.invite("anna_phone")).code
    refused = await desk_api.http.post("/desk/api/pair", json={"code": good, "device": "x"})
    (error,) = errors(refused, 429)
    assert int(refused.headers["Retry-After"]) > 0 and "too many bad pairing codes" in str(error["message"])
    # 127.0.0.2 is another source on loopback: its own count
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=desk_api.http.base_url, transport=transport, timeout=STEP) as other:
        paired = await other.post("/desk/api/pair", json={"code": good, "device": "x"})
    assert paired.status_code == 201


@pytest.mark.parametrize(
    "body", [{"code": "x"}, {"code": "x", "device": "y" * 101}, {"code": "x", "device": "y", "admin": True}, []]
)
async def test_a_malformed_pairing_body_is_refused_and_pairs_nothing(desk_api: Desk, body: object) -> None:
    invitation = await desk_api.book.invite("anna_phone")
    errors(await desk_api.http.post("/desk/api/pair", json=body), 422)
    assert (await desk_api.book.phones())[0].state == "waiting for pairing" and invitation.code


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "AccessKey nope"])
async def test_without_a_known_credential_every_route_answers_401(desk_api: Desk, header: str | None) -> None:
    await desk_api.pair()
    headers = {"Authorization": header} if header else {}
    for method, path in [("POST", "/desk/api/token"), ("GET", "/desk/api/doors"), ("GET", "/desk/api/calls")]:
        response = await desk_api.http.request(method, path, headers=headers)
        errors(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_the_admin_key_is_no_credential_and_a_credential_is_no_admin_key(desk_api: Desk) -> None:
    credential = await desk_api.pair()
    errors(await desk_api.get("/desk/api/doors", desk_api.hub.key.secret), 401)
    refused = await desk_api.http.get("/v1/call-flows", headers={"Authorization": f"AccessKey {credential}"})
    errors(refused, 401)


async def test_a_phone_cannot_pair_as_a_unit(desk_api: Desk) -> None:
    from intercom.auth import unit_scope

    await desk_api.hub.storage.create_key("unit desk", unit_scope("desk", "desk", "ring_door"))
    with pytest.raises(ValueError, match="unit's identity"):
        await desk_api.book.invite("desk")
    await desk_api.pair("anna_phone")
    with pytest.raises(ValueError, match="paired already"):
        await desk_api.book.invite("anna_phone")


async def test_revoked_the_phone_gets_401_and_is_disconnected_at_once(desk_api: Desk, make_unit) -> None:
    credential = await desk_api.pair()
    phone = await make_unit("anna_phone", 880, token=await desk_api.jwt(credential))
    assert desk_api.hub.running.app.state.registrar.lookup("group:phones")
    closed = asyncio.Event()
    phone.client.on("status", lambda status: closed.set() if status is not ClientStatus.CONNECTED else None)
    (revoked,) = await desk_api.book.revoke("anna_phone")
    assert revoked.state == "revoked"
    errors(await desk_api.token(credential), 401)
    async with asyncio.timeout(STEP):
        await closed.wait()  # the hub closed its socket (the sweeper polls every 0.5 s)
    assert not desk_api.hub.running.app.state.registrar.lookup("anna_phone")
    with pytest.raises(ValueError, match="no phone"):
        await desk_api.book.revoke("anna_phone")


async def test_doors_say_who_is_online(desk_api: Desk, make_unit) -> None:
    credential = await desk_api.pair()
    assert (await desk_api.get("/desk/api/doors", credential)).json() == {
        "doors": [{"identity": "door", "online": False}]
    }
    await make_unit("door", 440)
    assert (await desk_api.get("/desk/api/doors", credential)).json() == {
        "doors": [{"identity": "door", "online": True}]
    }


async def _door_call_with_voicemail(desk_api: Desk, start: float) -> tuple[CallRecord, RecordingRecord]:
    storage = desk_api.hub.storage
    call = await storage.put(
        CallRecord(source="client:door", destination="ring_desks", status="ended", created_at=start, ended_at=start + 9)
    )
    leg = await storage.put(
        LegRecord(
            call_id=call.id, source="client:door", destination="ring_desks", direction="incoming", created_at=start
        )
    )
    await storage.put(
        LegRecord(
            call_id=call.id, source="client:door", destination="client:desk", direction="outgoing",
            status="no_answer", created_at=start,
        )
    )  # fmt: skip
    recording = RecordingRecord(call_id=call.id, leg_id=leg.id, kind="ivr", duration=0.25, path="recordings/vm.wav")
    write_wav(storage.data_dir / recording.path)
    return call, await storage.put(recording)


async def test_the_doors_calls_newest_first_with_their_voicemail_and_nothing_else(desk_api: Desk) -> None:
    credential = await desk_api.pair()
    older, voicemail = await _door_call_with_voicemail(desk_api, time.time() - 100)
    answered = await desk_api.hub.storage.put(
        CallRecord(source="client:door", destination="ring_desks", status="ended")
    )
    await desk_api.hub.storage.put(
        LegRecord(
            call_id=answered.id, source="client:door", destination="client:anna_phone", direction="outgoing",
            answered_at=time.time(), status="hangup",
        )
    )  # fmt: skip
    other = await desk_api.hub.storage.put(
        CallRecord(source="client:kitchen", destination="client:door")
    )  # not a door's
    response = await desk_api.get("/desk/api/calls", credential, limit=10)
    calls = response.json()["calls"]
    assert [call["id"] for call in calls] == [answered.id, older.id] and other.id not in str(calls)
    assert calls[0]["answeredBy"] == "anna_phone" and calls[0]["voicemail"] is None
    assert calls[1]["from"] == "door" and calls[1]["answeredBy"] is None
    assert calls[1]["voicemail"] == {
        "id": voicemail.id,
        "duration": 0.25,
        "url": f"/desk/api/voicemails/{voicemail.id}.wav",
    }
    wav = await desk_api.get(calls[1]["voicemail"]["url"], credential)
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    assert wav.content == (desk_api.hub.storage.data_dir / voicemail.path).read_bytes()
    assert (await desk_api.get("/desk/api/calls", credential, limit=1)).json()["calls"][0]["id"] == answered.id


async def test_calls_are_bounded_and_other_recordings_are_not_served(desk_api: Desk) -> None:
    credential = await desk_api.pair()
    errors(await desk_api.get("/desk/api/calls", credential, limit=101), 422)
    errors(await desk_api.get("/desk/api/calls", credential, limit=0), 422)
    storage = desk_api.hub.storage
    call = await storage.put(CallRecord(source="client:kitchen", destination="client:door"))
    leg = await storage.put(LegRecord(call_id=call.id, source="client:kitchen", destination="x", direction="incoming"))
    recording = await storage.put(RecordingRecord(call_id=call.id, leg_id=leg.id, kind="ivr", path="recordings/k.wav"))
    write_wav(storage.data_dir / recording.path)
    errors(await desk_api.get(f"/desk/api/voicemails/{recording.id}.wav", credential), 404)
    _, voicemail = await _door_call_with_voicemail(desk_api, time.time())
    errors(await desk_api.http.get(f"/desk/api/voicemails/{voicemail.id}.wav"), 401)


def test_a_transfer_may_ring_a_group_named_as_such() -> None:
    assert identities("client:desk, group:phones,group:phones") == ["desk", "group:phones"]
    with pytest.raises(ValueError, match="group:a-b"):
        identities("client:desk,group:a-b")
    with pytest.raises(ValueError, match="nor group:<name>"):
        identities("phones")


def test_a_group_counts_only_next_to_an_identity_the_hub_asserted() -> None:
    def parsed(*lines: tuple[str, str]) -> str | None:
        return asserted_group(Headers(list(lines)))

    identity = ("P-Asserted-Identity", "<sip:anna_phone@hub>")
    assert parsed(identity, ("P-Intercom-Group", "phones")) == "phones"
    assert parsed(("P-Intercom-Group", "phones")) is None
    assert parsed(identity, ("P-Intercom-Group", "phones"), ("P-Intercom-Group", "desks")) is None
    assert parsed(identity, ("P-Intercom-Group", "phones; admin")) is None


async def test_two_browsers_with_one_code_pair_one_phone_on_either_backend(open_storage):
    book, other_hub = PhoneBook(await open_storage("hub-a")), PhoneBook(await open_storage("hub-b"))
    invitation = await book.invite("anna_phone")
    results = await asyncio.gather(
        book.pair(invitation.code, "Pixel"), other_hub.pair(invitation.code, "iPhone"), return_exceptions=True
    )
    paired = [result for result in results if not isinstance(result, Exception)]
    assert len(paired) == 1 and [type(result) for result in results if result not in paired] == [CodeGone]
    await other_hub.storage.keys_version()  # the other hub's sweeper tick: it reads the phone's new key
    phone = await other_hub.phone_of(paired[0].credential)
    assert phone is not None and phone.identity == "anna_phone" and phone.state == "paired"
    token, _ = await other_hub.token(phone, ttl=60)
    assert check_token(token, other_hub.storage.get_key).identity == "anna_phone"
    (revoked,) = await book.revoke("anna_phone")
    assert revoked.state == "revoked" and await other_hub.phone_of(paired[0].credential) is None
