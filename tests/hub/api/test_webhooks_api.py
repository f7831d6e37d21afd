"""/v1/webhooks: add, list, read and delete the URLs told of call events."""

from __future__ import annotations

import pytest

from intercom.hub.records import Webhook

from .conftest import errors

TOKEN = "a-token-long-enough-for-hs256-keys"


async def test_a_webhook_is_added_listed_read_and_deleted(api):
    response = await api.client.post("/v1/webhooks", json={"url": "https://example.test/hook", "token": TOKEN})
    assert response.status_code == 201
    (created,) = response.json()["data"]
    assert set(created) == {"id", "url", "token", "createdAt", "updatedAt"}
    assert created["url"] == "https://example.test/hook" and created["token"] == TOKEN
    assert api.storage.get(Webhook, created["id"]).url == "https://example.test/hook"

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
        ({"url": "https://example.test/hook"}, "token"),
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
