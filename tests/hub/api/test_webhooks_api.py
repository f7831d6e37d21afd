"""/webhooks: add, list, read, update and delete the URLs told of call events."""

from __future__ import annotations

import logging

import pytest

from intercom.hub.records import Webhook

from .conftest import errors

TOKEN = "a-token-long-enough-for-hs256-keys"


async def test_a_webhook_is_added_listed_read_and_deleted(api):
    response = await api.client.post("/v1/webhooks", json={"url": "https://example.test/hook", "token": TOKEN})
    assert response.status_code == 201
    (created,) = response.json()["data"]
    assert set(created) == {"id", "url", "title", "token", "createdAt", "updatedAt"}
    assert created["url"] == "https://example.test/hook" and created["token"] == TOKEN
    assert created["title"] is None
    assert (await api.storage.get(Webhook, created["id"])).url == "https://example.test/hook"

    body = (await api.client.get("/v1/webhooks")).json()
    assert body["data"] == [created] and body["pagination"]["totalCount"] == 1
    assert (await api.client.get(f"/v1/webhooks/{created['id']}")).json() == {"data": [created]}

    assert (await api.client.delete(f"/v1/webhooks/{created['id']}")).status_code == 204
    errors(await api.client.get(f"/v1/webhooks/{created['id']}"), 404)
    errors(await api.client.delete(f"/v1/webhooks/{created['id']}"), 404)
    assert (await api.client.get("/v1/webhooks")).json()["pagination"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"url": "ftp://example.test/hook", "token": TOKEN}, "url"),
        ({"url": "https://", "token": TOKEN}, "url"),
        ({"url": "https://example.test/hook", "token": ""}, "token"),
        ({"url": "https://example.test/hook", "title": "x" * 201}, "title"),
        ({"title": "no url"}, "url"),
        ({"url": "https://example.test/hook", "token": TOKEN, "events": ["all"]}, "events"),
        ("https://example.test/hook", None),
    ],
)
async def test_a_bad_webhook_is_refused_naming_the_field(api, body, parameter):
    (error,) = errors(await api.client.post("/v1/webhooks", json=body), 422)
    assert error["parameter"] == parameter
    assert (await api.client.get("/v1/webhooks")).json()["data"] == []


async def test_a_webhook_the_disk_cannot_store_is_refused_with_503_and_nothing_half_made(api):
    api.storage._db.execute("PRAGMA query_only=1")  # what SQLite answers on a read-only or full disk
    response = await api.client.post("/v1/webhooks", json={"url": "https://example.test/hook", "token": TOKEN})
    (error,) = errors(response, 503)
    assert error["message"].startswith("the hub cannot write its database (attempt to write a readonly database)")
    api.storage._db.execute("PRAGMA query_only=0")
    assert (await api.client.get("/v1/webhooks")).json()["data"] == []


async def test_a_webhook_takes_a_title_and_without_a_token_gets_one_of_its_own(api, caplog):
    # What the Python SDK's voice_create_webhook sends: title, url, and token null.
    caplog.set_level(logging.INFO, logger="intercom.hub.api.webhooks")
    made = []
    for _ in range(2):
        body = {"title": "Door log", "url": "https://example.test/hook", "token": None}
        response = await api.client.post("/webhooks", json=body)
        assert response.status_code == 201
        made.append(response.json()["data"][0])
    first, second = made
    assert first["title"] == "Door log"
    assert len(first["token"]) >= 43 and first["token"] != second["token"]  # 32 random bytes each
    assert (await api.storage.get(Webhook, first["id"])).token == first["token"]
    assert (await api.client.get(f"/webhooks/{first['id']}")).json() == {"data": [first]}
    said = [record.getMessage() for record in caplog.records if "no token given" in record.getMessage()]
    assert len(said) == 2 and not any(hook["token"] in line for hook in made for line in said)


async def test_a_webhook_is_updated_field_by_field(api):
    response = await api.client.post("/webhooks", json={"url": "https://example.test/hook", "token": TOKEN})
    (created,) = response.json()["data"]
    url = f"/webhooks/{created['id']}"
    # The Python SDK's voice_update_webhook: title and token, either may be null (unchanged).
    response = await api.client.put(url, json={"title": "Door log", "token": None})
    assert response.status_code == 200
    (updated,) = response.json()["data"]
    assert updated == {**created, "title": "Door log", "updatedAt": updated["updatedAt"]}
    # The Node SDK's: the token alone; Go's: the whole object back, times included.
    (updated,) = (await api.client.put(f"/v1{url}/", json={"token": "another-token"})).json()["data"]
    assert (updated["token"], updated["title"]) == ("another-token", "Door log")
    whole = {**updated, "url": "https://example.test/other", "createdAt": "2000-01-01T00:00:00Z"}
    (updated,) = (await api.client.put(url, json=whole)).json()["data"]
    assert updated["url"] == "https://example.test/other" and updated["createdAt"] == created["createdAt"]
    assert (await api.storage.get(Webhook, created["id"])).url == "https://example.test/other"


@pytest.mark.parametrize(
    ("body", "status", "parameter"),
    [
        ({"token": ""}, 422, "token"),
        ({"url": "ftp://example.test/hook"}, 422, "url"),
        ({"events": ["all"]}, 422, "events"),
        ({"id": "another"}, 422, "id"),
        (["not", "an", "object"], 422, None),
    ],
)
async def test_a_bad_update_is_refused_and_changes_nothing(api, body, status, parameter):
    response = await api.client.post("/webhooks", json={"url": "https://example.test/hook", "token": TOKEN})
    (created,) = response.json()["data"]
    (error,) = errors(await api.client.put(f"/webhooks/{created['id']}", json=body), status)
    assert error["parameter"] == parameter
    assert (await api.client.get(f"/webhooks/{created['id']}")).json() == {"data": [created]}


async def test_updating_a_webhook_that_is_not_there_is_404(api):
    errors(await api.client.put("/webhooks/nope", json={"title": "x"}), 404)
