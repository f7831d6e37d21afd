"""Access keys guard the Voice API, and every refusal, on any path, has the errors shape."""

from __future__ import annotations

import pytest

from intercom.auth import ADMIN, unit_scope
from intercom.hub.api.common import MAX_BODY

from .conftest import errors


async def test_no_key_or_an_unknown_one_is_401(api):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer x"}, {"Authorization": "AccessKey nope"}):
        response = await api.client.get("/v1/calls", headers=headers)
        errors(response, 401)
        assert response.headers["www-authenticate"] == "AccessKey"
    del api.client.headers["Authorization"]
    errors(await api.client.get("/v1/call-flows"), 401)


async def test_the_key_id_is_not_the_key(api):
    errors(await api.client.get("/v1/calls", headers={"Authorization": f"AccessKey {api.hub.key.id}"}), 401)


async def test_a_revoked_key_is_403_and_a_good_one_passes(api):
    other = await api.storage.create_key("other", ADMIN)
    headers = {"Authorization": f"AccessKey {other.secret}"}
    assert (await api.client.get("/v1/calls", headers=headers)).status_code == 200
    await api.storage.revoke_key(other.id)
    (error,) = errors(await api.client.get("/v1/calls", headers=headers), 403)
    assert "revoked" in error["message"]
    response = await api.client.get("/v1/calls")
    assert response.status_code == 200 and response.json()["data"] == []


async def test_a_unit_key_has_no_rights_at_the_root_either(api):
    unit = await api.storage.create_key("door", unit_scope("door", "door", "ring_desks"))
    for path in ("/calls", "/calls/", "/v1/calls/", "/call-flows", "/webhooks/"):
        (error,) = errors(await api.client.get(path, headers={"Authorization": f"AccessKey {unit.secret}"}), 403)
        assert error["message"] == f"access key {unit.id} is a unit key for door: it has no Voice API rights"


async def test_unknown_routes_and_methods_under_v1_answer_in_the_errors_shape(api):
    (error,) = errors(await api.client.get("/v1/nothing-here"), 404)
    assert "/v1/nothing-here" in error["message"]
    errors(await api.client.get("/v1"), 404)
    response = await api.client.patch("/v1/call-flows")
    errors(response, 405)
    assert "POST" in response.headers["allow"]


async def test_bad_bodies_and_parameters_answer_in_the_errors_shape(api):
    (error,) = errors(await api.client.post("/v1/webhooks", content=b"{not json"), 400)
    assert "not JSON" in error["message"]
    errors(await api.client.post("/v1/webhooks", content=b"\xff\xfe"), 400)
    (error,) = errors(await api.client.post("/v1/call-flows", content=b'{"steps": [], "x": NaN}'), 400)
    assert "NaN is not a JSON value" in error["message"]
    errors(await api.client.post("/v1/call-flows", content=b" " * (MAX_BODY + 1)), 413)
    (error,) = errors(await api.client.get("/v1/calls", params={"perPage": 0}), 422)
    assert error["parameter"] == "perPage" and error["message"].startswith("perPage: ")
    (error,) = errors(await api.client.get("/v1/calls", params={"page": "first"}), 422)
    assert error["parameter"] == "page"


async def test_every_path_refuses_in_the_errors_shape(api):
    for method, path, status in (
        ("GET", "/nothing-here", 404),
        ("GET", "/", 404),  # HTTP at the SIP WebSocket's path
        ("POST", "/healthz", 405),
        ("GET", "/metrics", 401),
        ("GET", "/docs", 401),
        ("GET", "/openapi.json", 401),
        ("GET", "/calls", 401),
        ("GET", "/v1/calls/", 401),
    ):
        response = await api.client.request(method, path, headers={"Authorization": ""})
        errors(response, status)
        if status == 405:
            assert response.headers["allow"] == "GET"
        if status == 401:
            assert response.headers["www-authenticate"] == "AccessKey", path
    assert (await api.client.get("/healthz", headers={"Authorization": ""})).json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/v1/call-flows", "/call-flows", "/metrics"])
async def test_a_crash_answers_500_in_the_errors_shape_and_the_hub_goes_on(api, monkeypatch, path):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(api.storage, "list_call_flows", broken)
    monkeypatch.setattr(api.hub.running.app.state.retention, "metrics", broken)
    (error,) = errors(await api.client.get(path), 500)
    assert error["message"] == "internal error: the hub's log says more"  # not the exception's words
    monkeypatch.undo()
    assert (await api.client.get(path)).status_code == 200
