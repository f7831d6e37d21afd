"""MessageBird's Node SDK (npm ``messagebird`` 4.x), as it ships, against a real hub: every voice
method it has for what the hub offers, run by node in messagebird_node.mjs. The SDK has no legs
method; a leg's id comes from the hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from intercom.hub.records import LegRecord

from ...flows.receiver import receiver
from ...units import Unit
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
from .node_sdk import NodeSdk, NodeSdkError, node_sdk


@pytest.fixture
async def sdk(hub, tls_files: tuple[Path, Path]) -> AsyncIterator[NodeSdk]:
    async with node_sdk(hub.address, tls_files[0], hub.key.secret) as running:
        yield running


async def refused(sdk: NodeSdk, method: str, *args: object, key: str | None = None) -> NodeSdkError:
    with pytest.raises(NodeSdkError) as raised:
        await sdk.call(method, *args, key=key)
    return raised.value


async def test_call_flows_are_created_listed_read_updated_and_deleted(sdk):
    (created,) = (await sdk.call("callflows.create", {"title": "Parcel", "steps": [SAY, HANGUP]}))["data"]
    assert created["id"] and created["title"] == "Parcel" and created["record"] is False
    assert [step["action"] for step in created["steps"]] == ["say", "hangup"]
    (other,) = (await sdk.call("callflows.create", {"steps": [HANGUP], "record": True}))["data"]

    listed = await sdk.call("callflows.list")
    assert {flow["id"] for flow in listed["data"]} == {created["id"], other["id"]}
    pages = [await sdk.call("callflows.list", page, 1) for page in (1, 2, 3)]  # ?page=&perPage=1
    assert [len(page["data"]) for page in pages] == [1, 1, 0]
    assert {page["data"][0]["id"] for page in pages[:2]} == {created["id"], other["id"]}
    assert pages[0]["pagination"] == {"totalCount": 2, "pageCount": 2, "currentPage": 1, "perPage": 1}

    assert (await sdk.call("callflows.read", created["id"]))["data"] == [created]

    change = {"title": "Renamed", "steps": [HANGUP], "default": True}
    (updated,) = (await sdk.call("callflows.update", created["id"], change))["data"]
    assert (updated["id"], updated["title"], updated["default"]) == (created["id"], "Renamed", True)
    assert (await sdk.call("callflows.read", created["id"]))["data"] == [updated]

    assert await sdk.call("callflows.delete", created["id"]) is True  # 204
    error = await refused(sdk, "callflows.read", created["id"])
    assert error.status_code == 404 and created["id"] in error.message
    assert [flow["id"] for flow in (await sdk.call("callflows.list"))["data"]] == [other["id"]]


async def test_webhooks_are_created_listed_read_updated_and_deleted(sdk):
    url = "https://events.example.test/door"  # no call is made: nothing is ever sent to it
    hook = {"url": url, "token": "signing-token", "title": "Door events"}
    (created,) = (await sdk.call("voice.webhooks.create", hook))["data"]
    assert created["id"] and (created["url"], created["token"], created["title"]) == (
        url,
        "signing-token",
        "Door events",
    )
    (other,) = (await sdk.call("voice.webhooks.create", {"url": f"{url}/2"}))["data"]  # no token: optional

    listed = await sdk.call("voice.webhooks.list")
    assert {hook["id"] for hook in listed["data"]} == {created["id"], other["id"]}
    pages = [await sdk.call("voice.webhooks.list", 1, page) for page in (1, 2)]  # ?perPage=1&currentPage=
    assert [len(page["data"]) for page in pages] == [1, 1]
    assert {page["data"][0]["id"] for page in pages} == {created["id"], other["id"]}

    assert (await sdk.call("voice.webhooks.read", created["id"]))["data"] == [created]
    (updated,) = (await sdk.call("voice.webhooks.update", created["id"], {"token": "a-new-token"}))["data"]
    assert (updated["id"], updated["url"], updated["token"]) == (created["id"], url, "a-new-token")
    assert updated["title"] == "Door events"  # what the update did not name stays
    assert (await sdk.call("voice.webhooks.read", created["id"]))["data"] == [updated]

    assert await sdk.call("voice.webhooks.delete", created["id"]) is True
    error = await refused(sdk, "voice.webhooks.read", created["id"])
    assert error.status_code == 404 and created["id"] in error.message
    assert [hook["id"] for hook in (await sdk.call("voice.webhooks.list"))["data"]] == [other["id"]]


@pytest.mark.loopback_requests
async def test_a_call_rings_the_unit_records_and_ends_when_deleted(hub, sdk, desk: Unit):
    with receiver() as service:
        body = {
            "source": "front-door",
            "destination": "client:desk",
            "callFlow": RECORD_THEN_WAIT,
            "webhook": {"url": service.url("/events"), "token": CALL_TOKEN},
        }
        (call,) = (await sdk.call("calls.create", body))["data"]
        assert (call["status"], call["source"], call["destination"]) == ("queued", "front-door", "client:desk")
        assert call["id"] in told_of(await service.next())  # the call's own webhook
    await answer(desk)
    (leg,) = (await hub.storage.page(LegRecord, parent=call["id"]))[0]  # the SDK has no method for legs
    done = await recording_done(hub, leg.id)

    (listed,) = (await sdk.call("recordings.list", call["id"], leg.id))["data"]
    assert (listed["id"], listed["legId"], listed["format"], listed["status"]) == (done.id, leg.id, "wav", "done")
    paged = await sdk.call("recordings.list", call["id"], leg.id, 1, 1)  # ?limit=1&offset=1: past the only one
    assert paged["data"] == []
    read = await sdk.call("recordings.read", call["id"], leg.id, done.id)
    assert read["data"] == [listed] and read["_links"]["file"].endswith(f"/recordings/{done.id}.wav")
    kept = await recording_file(hub, done.id)
    wav = kept.read_bytes()
    # The SDK hands a download back as text, decoded as UTF-8 and trimmed: compared the same way
    downloaded = await sdk.call("recordings.download", call["id"], leg.id, done.id)
    assert downloaded.startswith("RIFF") and downloaded == wav.decode("utf-8", errors="replace").strip()

    assert (await sdk.call("calls.read", call["id"]))["data"][0]["status"] == "ongoing"
    assert await sdk.call("calls.delete", call["id"]) is True  # hangs up: the flow would pause a minute
    await hung_up(desk, hub)
    (ended,) = (await sdk.call("calls.read", call["id"]))["data"]
    assert ended["status"] == "ended" and ended["endedAt"]
    assert [logged["id"] for logged in (await sdk.call("calls.list"))["data"]] == [call["id"]]

    assert await sdk.call("recordings.delete", call["id"], leg.id, done.id) is True
    assert not kept.exists()  # the file went with it
    error = await refused(sdk, "recordings.read", call["id"], leg.id, done.id)
    assert error.status_code == 404 and done.id in error.message


async def test_refusals_come_as_the_sdks_errors_with_the_hubs_description(sdk):
    error = await refused(sdk, "callflows.list", key="not-a-key-of-this-hub")
    assert error.status_code == 401 and error.message == "api error(s): no such access key (code: 401)"
    error = await refused(sdk, "calls.read", "nope")
    assert error.status_code == 404 and "nope" in error.message
    error = await refused(sdk, "callflows.create", {"steps": [{"action": "say", "options": {}}]})
    assert error.status_code == 422 and error.message.endswith("(code: 422, parameter: steps.0.options.payload)")
    assert (await sdk.call("callflows.list"))["data"] == []  # the refused flow was not stored
