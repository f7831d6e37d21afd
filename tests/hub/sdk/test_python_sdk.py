"""MessageBird's Python SDK (PyPI ``messagebird``), as it ships, against a real hub: every voice
method it has for what the hub offers. The SDK has no legs method; a leg's id comes from the hub.

The SDK is synchronous: each call runs in a thread, awaited with a timeout.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import messagebird
import pytest
from messagebird.client import ErrorException
from messagebird.voice_webhook import VoiceCreateWebhookRequest, VoiceUpdateWebhookRequest

from intercom.hub.records import LegRecord, Webhook

from ...flows.receiver import receiver
from ...units import STEP, Unit
from .conftest import (
    CALL_TOKEN,
    HANGUP,
    RECORD_THEN_WAIT,
    SAY,
    answer,
    hung_up,
    recording_done,
    recording_file,
    told_of,
)

T = TypeVar("T")

# Every root the SDK builds urls from: the voice methods use the first, and pointing the others at
# the hub too means no request of the SDK can leave the machine.
ROOTS = ("VOICE_API_ROOT", "ENDPOINT", "CONVERSATION_API_ROOT", "NUMBER_API_ROOT")


@pytest.fixture
def client(hub, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> messagebird.Client:
    """The SDK with the hub's admin key, its host changed to the hub's, trusting the tests' CA."""
    for root in ROOTS:
        monkeypatch.setattr(messagebird.client, root, f"https://{hub.address}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    return messagebird.Client(hub.key.secret)


async def sdk(method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    async with asyncio.timeout(STEP):
        return await asyncio.to_thread(method, *args, **kwargs)


async def refused(method: Callable[..., Any], *args: Any, **kwargs: Any) -> messagebird.client.Error:
    """The one error the SDK raised for the hub's refusal."""
    with pytest.raises(ErrorException) as raised:
        await sdk(method, *args, **kwargs)
    (error,) = raised.value.errors
    return error


async def test_call_flows_are_created_listed_read_updated_and_deleted(client):
    created = await sdk(client.call_flow_create, steps=[SAY, HANGUP], title="Parcel")
    assert created.id and created.title == "Parcel" and (created.record, created.default) == (False, False)
    assert [step["action"] for step in created.steps] == ["say", "hangup"]
    assert created.steps[0]["options"]["payload"] == SAY["options"]["payload"]
    assert isinstance(created.createdAt, datetime.datetime)
    other = await sdk(client.call_flow_create, steps=[HANGUP], record=True)

    listed = await sdk(client.call_flow_list)  # limit=10&offset=0
    assert {flow.id for flow in listed.data} == {created.id, other.id}
    pages = [await sdk(client.call_flow_list, limit=1, offset=offset) for offset in (0, 1, 2)]
    assert [len(page.data) for page in pages] == [1, 1, 0]
    assert {page.data[0].id for page in pages[:2]} == {created.id, other.id}

    read = await sdk(client.call_flow, created.id)
    assert (read.id, read.title, read.steps) == (created.id, "Parcel", created.steps)

    updated = await sdk(client.call_flow_update, created.id, [HANGUP], True, True, title="Renamed")
    assert (updated.id, updated.title, updated.default, updated.record) == (created.id, "Renamed", True, True)
    read = await sdk(client.call_flow, created.id)
    assert (read.title, [step["action"] for step in read.steps], read.default) == ("Renamed", ["hangup"], True)

    await sdk(client.call_flow_delete, created.id)  # the SDK returns nothing
    error = await refused(client.call_flow, created.id)
    assert error.code == 404 and created.id in error.description
    assert [flow.id for flow in (await sdk(client.call_flow_list)).data] == [other.id]


async def test_webhooks_are_created_listed_read_updated_and_deleted(hub, client):
    url = "https://events.example.test/door"  # no call is made: nothing is ever sent to it
    created = await sdk(client.voice_create_webhook, VoiceCreateWebhookRequest(url=url, title="Door events"))
    assert created.id and created.url == url
    assert created.token  # the SDK sent "token": null; the hub made one to sign with
    assert (await hub.storage.get(Webhook, created.id)).title == "Door events"  # the SDK's object has no title
    other = await sdk(client.voice_create_webhook, VoiceCreateWebhookRequest(url=f"{url}/2", token="signing-token"))
    assert other.token == "signing-token"

    listed = await sdk(client.voice_list_webhooks)  # limit=10&offset=0
    assert {hook.id for hook in listed.data} == {created.id, other.id}
    pages = [await sdk(client.voice_list_webhooks, limit=1, offset=offset) for offset in (0, 1)]
    assert {hook.id for page in pages for hook in page.data} == {created.id, other.id}

    read = await sdk(client.voice_read_webhook, created.id)
    assert (read.id, read.url) == (created.id, url)

    update = VoiceUpdateWebhookRequest(title="Renamed", token="a-new-token")
    updated = await sdk(client.voice_update_webhook, created.id, update)
    assert (updated.id, updated.url, updated.token) == (created.id, url, "a-new-token")
    assert (await sdk(client.voice_read_webhook, created.id)).token == "a-new-token"
    assert (await hub.storage.get(Webhook, created.id)).title == "Renamed"
    again = await sdk(client.voice_update_webhook, created.id, VoiceUpdateWebhookRequest(title="Again"))
    assert again.token == "a-new-token"  # "token": null is "not given", not "none"
    assert (await hub.storage.get(Webhook, created.id)).title == "Again"

    await sdk(client.voice_delete_webhook, created.id)
    error = await refused(client.voice_read_webhook, created.id)
    assert error.code == 404 and created.id in error.description
    assert [hook.id for hook in (await sdk(client.voice_list_webhooks)).data] == [other.id]


@pytest.mark.loopback_requests
async def test_a_call_rings_the_unit_records_and_ends_when_deleted(hub, client, desk: Unit, tmp_path, monkeypatch):
    with receiver() as service:
        webhook = {"url": service.url("/events"), "token": CALL_TOKEN}
        call = await sdk(client.call_create, "front-door", "client:desk", RECORD_THEN_WAIT, webhook)
        assert (call.data.status, call.data.source, call.data.destination) == ("queued", "front-door", "client:desk")
        call_id = call.data.id
        assert call_id in told_of(await service.next())  # the call's own webhook
    await answer(desk)
    (leg,) = (await hub.storage.page(LegRecord, parent=call_id))[0]  # the SDK has no method for legs
    done = await recording_done(hub, leg.id)

    (listed,) = (await sdk(client.voice_recording_list_recordings, call_id, leg.id)).data
    assert (listed.id, listed.legId, listed.format, listed.status) == (done.id, leg.id, "wav", "done")
    viewed = await sdk(client.voice_recording_view, call_id, leg.id, done.id)
    assert (viewed.id, viewed.duration) == (done.id, 1)
    assert viewed._links["file"].endswith(f"/calls/{call_id}/legs/{leg.id}/recordings/{done.id}.wav")
    monkeypatch.chdir(tmp_path)  # the SDK saves the file as <recording id>.wav where it runs
    await sdk(client.voice_recording_download, call_id, leg.id, done.id)
    kept = await recording_file(hub, done.id)
    wav = kept.read_bytes()
    assert wav.startswith(b"RIFF") and (tmp_path / f"{done.id}.wav").read_bytes() == wav

    assert (await sdk(client.call, call_id)).data.status == "ongoing"
    await sdk(client.call_delete, call_id)  # hangs up: the flow would have paused a minute
    await hung_up(desk, hub)
    ended = (await sdk(client.call, call_id)).data
    assert ended.status == "ended" and isinstance(ended.endedAt, datetime.datetime)
    calls = await sdk(client.call_list)  # GET /calls/?page=1
    assert [logged.id for logged in calls.data] == [call_id]
    assert (calls.totalCount, calls.currentPage, calls.pageCount) == (1, 1, 1)
    await sdk(client.call_delete, call_id)  # an ended call stays ended

    await sdk(client.voice_recording_delete, call_id, leg.id, done.id)
    assert not kept.exists()  # the file went with it
    error = await refused(client.voice_recording_view, call_id, leg.id, done.id)
    assert error.code == 404 and done.id in error.description


async def test_refusals_come_as_the_sdks_errors_with_the_hubs_description(hub, client):
    stranger = messagebird.Client("not-a-key-of-this-hub")
    error = await refused(stranger.call_flow_list)
    assert (error.code, error.description) == (401, "no such access key")
    error = await refused(client.call, "nope")
    assert error.code == 404 and "nope" in error.description
    error = await refused(client.call_flow_create, steps=[{"action": "say", "options": {}}])
    assert (error.code, error.parameter) == (422, "steps.0.options.payload")
    assert error.description.startswith("steps")
    assert (await sdk(client.call_flow_list)).data == []  # the refused flow was not stored
