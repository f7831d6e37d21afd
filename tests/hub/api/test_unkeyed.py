"""What the hub answers without a key: only whether it is healthy. The schema, its page and the
metrics want an admin key (or, for /metrics, the metrics token); a unit key opens none of them."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from intercom.auth import unit_scope

from ...conftest import STEP, Hub
from .conftest import errors

GUARDED = ["/openapi.json", "/docs", "/metrics"]
METRICS_TOKEN = "m" * 43


@pytest.fixture
def hub_config(hub_config):
    return dataclasses.replace(hub_config, metrics_token=METRICS_TOKEN)


@pytest.fixture
async def http(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{hub.address}", timeout=STEP) as client:
        yield client


async def test_healthz_says_only_that_it_is_healthy(http):
    response = await http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", GUARDED)
async def test_without_a_key_the_guarded_paths_are_401(http, path):
    for headers in ({}, {"Authorization": "AccessKey wrong"}, {"Authorization": "Bearer wrong"}):
        response = await http.get(path, headers=headers)
        errors(response, 401)
        assert METRICS_TOKEN not in response.text


@pytest.mark.parametrize("path", ["/redoc", "/docs/oauth2-redirect"])
async def test_pages_we_do_not_serve_are_not_there(http, path):
    assert (await http.get(path)).status_code == 404


@pytest.mark.parametrize("path", GUARDED)
async def test_a_unit_key_opens_nothing(http, hub, path):
    door = await hub.storage.create_key("door", unit_scope("door", "door", "ring_desks"))
    (error,) = errors(await http.get(path, headers={"Authorization": f"AccessKey {door.secret}"}), 403)
    assert error["message"] == f"access key {door.id} is a unit key for door: it has no Voice API rights"


async def test_an_admin_key_reads_the_schema_its_page_and_the_metrics(http, hub):
    headers = {"Authorization": f"AccessKey {hub.key.secret}"}
    schema = (await http.get("/openapi.json", headers=headers)).json()
    assert "/v1/call-flows" in schema["paths"] and "/openapi.json" not in schema["paths"]
    page = await http.get("/docs", headers=headers)
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text and '"/v1/call-flows"' in page.text
    metrics = await http.get("/metrics", headers=headers)
    assert metrics.status_code == 200 and "intercom_calls " in metrics.text


async def test_the_metrics_token_reads_the_metrics_only(http):
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    metrics = await http.get("/metrics", headers=headers)
    assert metrics.status_code == 200 and "intercom_registrations 0" in metrics.text
    errors(await http.get("/openapi.json", headers=headers), 401)
    errors(await http.get("/v1/calls", headers=headers), 401)
    errors(await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN[:-1]}"}), 401)


async def test_a_unit_key_has_no_voice_api_rights(http, hub):
    desk = await hub.storage.create_key("desk", unit_scope("desk", "desk", "ring_door"))
    for method, path in (("GET", "/v1/call-flows"), ("GET", "/v1/calls"), ("POST", "/v1/call-flows")):
        response = await http.request(method, path, headers={"Authorization": f"AccessKey {desk.secret}"}, json={})
        (error,) = errors(response, 403)
        assert "is a unit key for desk: it has no Voice API rights" in error["message"]
