"""Where the Voice API answers: at the root as MessageBird's API does, and under /v1; with or
without a trailing slash, never by a redirect; next to the hub's other paths, shadowing none."""

from __future__ import annotations

import re

import pytest

from .conftest import errors

RING_DESK = {"title": "Door", "steps": [{"action": "transfer", "options": {"destination": "client:desk"}}]}


def route_missed(response) -> bool:
    """A refusal because no route took the path (not one of a route's own, such as "no call with id")."""
    if response.status_code not in (404, 405):
        return False
    return any(
        error["message"].startswith(("Not Found:", "Method Not Allowed:"))
        for error in errors(response, response.status_code)
    )


async def test_every_operation_answers_at_the_root_and_under_v1_with_or_without_a_slash(api):
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    operations = [
        (method, template) for template, item in paths.items() for method in item if template.startswith("/v1/")
    ]
    assert len(operations) >= 14
    for method, template in operations:
        path = re.sub(r"\{\w+\}", "x", template)
        for form in (path, path + "/", path.removeprefix("/v1"), path.removeprefix("/v1") + "/"):
            response = await api.client.request(method, form, json={})
            assert not response.is_redirect, (method, form)
            assert not route_missed(response), (method, form, response.text)


async def test_a_flow_made_at_the_root_is_the_one_under_v1(api):
    response = await api.client.post("/call-flows/", json=RING_DESK)  # the Python SDK's form of a path
    assert response.status_code == 201
    (flow,) = response.json()["data"]
    assert (await api.client.get(f"/v1/call-flows/{flow['id']}")).json() == {"data": [flow]}
    assert (await api.client.get(f"/call-flows/{flow['id']}/")).json() == {"data": [flow]}
    listed = (await api.client.get("/call-flows/", params={"page": 1})).json()
    assert listed["data"] == [flow]
    assert (await api.client.delete(f"/call-flows/{flow['id']}")).status_code == 204
    errors(await api.client.get(f"/v1/call-flows/{flow['id']}"), 404)


@pytest.mark.parametrize("path", ["/v1/", "/v1//calls", "/calls//", "/nothing/", "/healthz/"])
async def test_only_one_trailing_slash_of_an_api_path_is_dropped(api, path):
    response = await api.client.get(path)
    assert not response.is_redirect
    errors(response, 404)


async def test_the_hubs_other_paths_keep_their_own_answers(api):
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert "intercom_calls " in (await api.client.get("/metrics")).text
    assert "swagger" in (await api.client.get("/docs")).text.lower()
    schema = (await api.client.get("/openapi.json")).json()
    # Each operation documented once, in its /v1 form; the root form is said in words.
    assert {path for path in schema["paths"] if not path.startswith("/v1/")} == {"/healthz", "/metrics"}
    assert "served at the root too" in schema["info"]["description"]
