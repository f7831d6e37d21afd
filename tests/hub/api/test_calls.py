"""/v1/calls: the call log with its legs and recordings, and calls started and hung up."""

from __future__ import annotations

import pytest

from intercom.hub.records import CallRecord, LegRecord, RecordingRecord, Webhook

from .call_log import T0, door_call, write_wav
from .conftest import errors

HANGUP = {"steps": [{"action": "hangup"}]}


async def test_calls_are_listed_newest_first_and_read_one_by_one(api):
    first, second = await door_call(api.storage, T0), await door_call(api.storage, T0 + 3600)
    body = (await api.client.get("/v1/calls")).json()
    assert [call["id"] for call in body["data"]] == [second.call.id, first.call.id]
    assert body["pagination"] == {"totalCount": 2, "pageCount": 1, "currentPage": 1, "perPage": 10}
    (call,) = (await api.client.get(f"/v1/calls/{first.call.id}")).json()["data"]
    assert call == {
        "id": first.call.id,
        "status": "ended",
        "source": "door",
        "destination": "client:desk,client:kitchen",
        "callFlowId": "door",
        "reason": "caller hung up",
        "createdAt": "2026-11-25T10:00:00Z",
        "updatedAt": call["updatedAt"],
        "endedAt": "2026-11-25T10:00:50Z",
    }
    errors(await api.client.get("/v1/calls/nope"), 404)


async def test_a_calls_legs_say_who_rang_and_who_answered(api):
    logged = await door_call(api.storage)
    body = (await api.client.get(f"/v1/calls/{logged.call.id}/legs")).json()
    assert body["pagination"]["totalCount"] == 3
    caller, desk, kitchen = body["data"]
    assert desk == {
        "id": logged.desk.id,
        "callID": logged.call.id,
        "source": "door",
        "destination": "client:desk",
        "status": "hangup",
        "direction": "outgoing",
        "duration": 42,
        "createdAt": "2026-11-25T10:00:01Z",
        "updatedAt": desk["updatedAt"],
        "answeredAt": "2026-11-25T10:00:08Z",
        "endedAt": "2026-11-25T10:00:50Z",
    }
    assert caller["direction"] == "incoming" and caller["duration"] == 49
    assert kitchen["status"] == "no_answer" and kitchen["duration"] == 0 and kitchen["answeredAt"] is None
    errors(await api.client.get("/v1/calls/nope/legs"), 404)


async def test_recordings_are_listed_read_and_downloaded(api):
    logged = await door_call(api.storage)
    base = f"/v1/calls/{logged.call.id}/legs/{logged.desk.id}/recordings"
    body = (await api.client.get(base)).json()
    assert body["pagination"]["totalCount"] == 1
    (recording,) = body["data"]
    own = f"{base}/{logged.recording.id}"
    link = own.removeprefix("/v1")  # MessageBird's links start at the API's root
    assert recording == {
        "id": logged.recording.id,
        "format": "wav",
        "legId": logged.desk.id,
        "status": "done",
        "duration": 42,
        "type": "transfer",
        "createdAt": "2026-11-25T10:00:50Z",
        "updatedAt": recording["updatedAt"],
        "_links": {"self": link, "file": f"{link}.wav"},
    }
    # One recording has its links beside data too: the Python SDK downloads from there.
    one = (await api.client.get(own)).json()
    assert one == {"data": [recording], "_links": recording["_links"]}
    for url in (f"{own}.wav", one["_links"]["file"]):
        response = await api.client.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
        assert response.content == logged.wav and response.content.startswith(b"RIFF")
    assert (await api.client.get(one["_links"]["self"])).json() == one
    empty = (await api.client.get(f"/v1/calls/{logged.call.id}/legs/{logged.kitchen.id}/recordings")).json()
    assert empty["data"] == [] and empty["pagination"]["totalCount"] == 0


async def test_a_deleted_recording_loses_its_file_and_row_and_answers_404(api):
    logged = await door_call(api.storage)
    retention = api.hub.running.app.state.retention
    retention.recordings_bytes = len(logged.wav)
    base = f"/calls/{logged.call.id}/legs/{logged.desk.id}/recordings"
    url = f"{base}/{logged.recording.id}"
    assert (await api.client.delete(url)).status_code == 204
    assert not (api.storage.data_dir / logged.recording.path).exists()
    assert await api.storage.get(RecordingRecord, logged.recording.id) is None
    assert retention.recordings_bytes == 0
    for gone in (url, f"{url}.wav", f"/v1{url}"):
        errors(await api.client.get(gone), 404)
    errors(await api.client.delete(url), 404)
    assert (await api.client.get(base)).json()["pagination"]["totalCount"] == 0
    assert (await api.client.get(f"/calls/{logged.call.id}")).status_code == 200  # the call stays


async def test_a_running_recording_is_not_deleted(api):
    logged = await door_call(api.storage)
    await api.storage.put(logged.recording.model_copy(update={"status": "recording"}))
    url = f"/v1/calls/{logged.call.id}/legs/{logged.desk.id}/recordings/{logged.recording.id}"
    (error,) = errors(await api.client.delete(url), 409)
    assert error["message"] == f"recording {logged.recording.id} is still running: delete it once it is done"
    assert (api.storage.data_dir / logged.recording.path).read_bytes() == logged.wav
    assert await api.storage.get(RecordingRecord, logged.recording.id) is not None


async def test_a_pruned_recordings_row_is_deleted_too(api):
    logged = await door_call(api.storage)
    (api.storage.data_dir / logged.recording.path).unlink()
    await api.storage.put(logged.recording.model_copy(update={"pruned_at": T0 + 3600}))
    url = f"/v1/calls/{logged.call.id}/legs/{logged.desk.id}/recordings/{logged.recording.id}"
    errors(await api.client.get(f"{url}.wav"), 410)
    assert (await api.client.delete(url)).status_code == 204
    errors(await api.client.get(f"{url}.wav"), 404)


async def test_a_recording_whose_file_the_disk_keeps_is_kept_whole(api):
    logged = await door_call(api.storage)
    path = api.storage.data_dir / logged.recording.path
    path.unlink()
    path.mkdir()  # unlink() fails on it, as it would on a read-only card (root ignores modes)
    (path / "inside").write_bytes(b"x")
    url = f"/v1/calls/{logged.call.id}/legs/{logged.desk.id}/recordings/{logged.recording.id}"
    (error,) = errors(await api.client.delete(url), 503)
    assert error["message"].startswith(f"recording {logged.recording.id} is kept: the disk refused to delete its file")
    assert await api.storage.get(RecordingRecord, logged.recording.id) is not None  # the DELETE can be sent again
    (path / "inside").unlink()
    path.rmdir()
    assert (await api.client.delete(url)).status_code == 204


async def test_recordings_are_only_found_under_their_own_call_and_leg(api):
    logged, other = await door_call(api.storage), await door_call(api.storage, T0 + 60)
    recording = logged.recording.id
    for path in (
        f"/v1/calls/nope/legs/{logged.desk.id}/recordings",
        f"/v1/calls/{logged.call.id}/legs/nope/recordings",
        f"/v1/calls/{other.call.id}/legs/{logged.desk.id}/recordings",  # a leg of another call
        f"/v1/calls/{logged.call.id}/legs/{logged.desk.id}/recordings/nope",
        f"/v1/calls/{logged.call.id}/legs/{logged.kitchen.id}/recordings/{recording}",  # another leg's
        f"/v1/calls/{logged.call.id}/legs/{logged.kitchen.id}/recordings/{recording}.wav",
        f"/v1/calls/{other.call.id}/legs/{other.desk.id}/recordings/{recording}.wav",
    ):
        errors(await api.client.get(path), 404)


async def test_a_recording_still_running_is_listed_as_such_and_its_file_not_served_yet(api):
    logged = await door_call(api.storage)
    running = logged.recording.model_copy(update={"status": "recording"})
    await api.storage.put(running)
    url = f"/v1/calls/{logged.call.id}/legs/{logged.desk.id}/recordings/{running.id}"
    assert (await api.client.get(url)).json()["data"][0]["status"] == "recording"
    (error,) = errors(await api.client.get(f"{url}.wav"), 409)
    assert error["message"] == f"recording {running.id} is still running: its file is served once done"


@pytest.mark.parametrize("path", ["../outside.wav", "/etc/hostname", "recordings/missing.wav"])
async def test_a_recording_file_outside_the_data_directory_or_missing_is_not_served(api, path):
    logged = await door_call(api.storage)
    write_wav(api.storage.data_dir.parent / "outside.wav")
    recording = await api.storage.put(
        RecordingRecord(call_id=logged.call.id, leg_id=logged.desk.id, kind="call", path=path)
    )
    url = f"/v1/calls/{logged.call.id}/legs/{logged.desk.id}/recordings/{recording.id}"
    assert (await api.client.get(url)).status_code == 200
    errors(await api.client.get(f"{url}.wav"), 404)


async def test_a_pruned_recording_is_listed_as_pruned_and_its_file_is_gone_for_good(api):
    logged = await door_call(api.storage)
    logged.recording.pruned_at = T0 + 3600
    await api.storage.put(logged.recording)
    (api.storage.data_dir / logged.recording.path).unlink()
    url = f"/v1/calls/{logged.call.id}/legs/{logged.desk.id}/recordings/{logged.recording.id}"
    assert (await api.client.get(url)).json()["data"][0]["status"] == "pruned"
    (error,) = errors(await api.client.get(f"{url}.wav"), 410)
    assert error["message"] == f"recording {logged.recording.id} was pruned to keep the recordings quota"


async def test_a_call_is_started_with_its_flow_and_webhook(api):
    body = {
        "source": "reception",
        "destination": "client:desk",
        "callFlow": {"title": "Announce", "steps": [{"action": "say", "options": {"payload": "Delivery at the door"}}]},
        "webhook": {"url": "https://example.test/calls", "token": "call-token"},
    }
    response = await api.client.post("/v1/calls", json=body)
    assert response.status_code == 201, response.text
    (call,) = response.json()["data"]
    assert call["status"] == "queued" and call["source"] == "reception" and call["destination"] == "client:desk"
    ((record, flow, webhook),) = api.calls.originated
    assert record.id == call["id"] and await api.storage.get(CallRecord, call["id"]) is not None
    assert flow.title == "Announce" and flow.steps[0].typed_options().payload == "Delivery at the door"
    assert webhook is not None and (webhook.url, webhook.token) == ("https://example.test/calls", "call-token")
    assert (await api.storage.page(Webhook))[1] == 0  # a call's own webhook is not registered for all calls


async def test_a_call_with_options_the_hub_ignores_starts_and_says_so(api, caplog):
    # As the Python SDK's call_create sends it: the webhook null when there is none.
    step = {"id": "ring", "action": "transfer", "options": {"destination": "client:kitchen", "mask": True}}
    body = {"source": "door", "destination": "client:desk", "callFlow": {"steps": [step]}, "webhook": None}
    response = await api.client.post("/calls/", json=body)
    assert response.status_code == 201, response.text
    (warning,) = response.json()["warnings"]
    assert warning["parameter"] == "callFlow.steps.0.options.mask"
    assert warning["message"].startswith("transfer step 'ring': mask true is ignored")
    call_id = response.json()["data"][0]["id"]
    assert [r.getMessage() for r in caplog.records if "options ignored" in r.getMessage()] == [
        f"call {call_id}: options ignored: {warning['message']}"
    ]
    assert (await api.client.get(f"/calls/{call_id}")).json().keys() == {"data"}


async def test_a_call_without_a_flow_runs_the_default_one(api):
    (error,) = errors(await api.client.post("/v1/calls", json={"source": "door", "destination": "client:desk"}), 422)
    assert error["parameter"] == "callFlow"
    await api.client.post("/v1/call-flows", json={"id": "usual", "default": True, **HANGUP})
    response = await api.client.post("/v1/calls", json={"source": "door", "destination": "client:desk"})
    assert response.status_code == 201 and response.json()["data"][0]["callFlowId"] == "usual"
    ((_, flow, webhook),) = api.calls.originated
    assert flow.id == "usual" and webhook is None


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"destination": "client:desk,client:kitchen"}, "destination"),
        ({"destination": "+31612345678"}, "destination"),
        ({"destination": "client:front door"}, "destination"),
        ({"source": ""}, "source"),
        ({"callFlow": {"steps": [{"action": "say", "options": {}}]}}, "callFlow.steps.0.options.payload"),
        ({"callFlow": {"steps": [{"id": "a", "action": "hangup"}] * 2}}, "callFlow.steps.1.id"),
        ({"webhook": {"url": "mailto:me@example.test", "token": "t"}}, "webhook.url"),
        ({"webhook": {"url": "https://example.test/calls"}}, "webhook.token"),  # nowhere to say a made one
        ({"ringtone": "bell"}, "ringtone"),
    ],
)
async def test_a_bad_call_is_refused_naming_the_field(api, change, parameter):
    body = {"source": "door", "destination": "client:desk", "callFlow": HANGUP, **change}
    (error,) = errors(await api.client.post("/v1/calls", json=body), 422)
    assert error["parameter"] == parameter
    assert error["message"].startswith(parameter.partition(".")[0])  # the line names where it is
    assert api.calls.originated == []


async def test_a_call_is_hung_up_and_stays_ended(api):
    response = await api.client.post(
        "/v1/calls", json={"source": "door", "destination": "client:desk", "callFlow": HANGUP}
    )
    call_id = response.json()["data"][0]["id"]
    assert (await api.client.delete(f"/v1/calls/{call_id}")).status_code == 204
    ended = await api.storage.get(CallRecord, call_id)
    assert ended.status == "ended" and ended.ended_at is not None
    assert (await api.client.delete(f"/v1/calls/{call_id}")).status_code == 204
    assert (await api.storage.get(CallRecord, call_id)).ended_at == ended.ended_at
    errors(await api.client.delete("/v1/calls/nope"), 404)


async def test_a_leg_without_its_call_is_not_listed(api):
    await api.storage.put(LegRecord(call_id="gone", source="door", destination="client:desk", direction="outgoing"))
    errors(await api.client.get("/v1/calls/gone/legs"), 404)
