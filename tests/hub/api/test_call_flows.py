"""/v1/call-flows: create, list in pages, replace, delete; bad flows refused naming the field."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from intercom.hub import storage as storage_module
from intercom.hub.callflows import CallFlow

from .call_log import T0
from .conftest import errors

RING_DESK = {
    "title": "Door",
    "steps": [{"id": "ring", "action": "transfer", "options": {"destination": "client:desk"}}],
}


@pytest.fixture
def clock(monkeypatch):
    """The storage's clock, set by the test: timestamps are rendered to the second."""
    now = SimpleNamespace(value=T0)
    monkeypatch.setattr(storage_module, "time", SimpleNamespace(time=lambda: now.value))
    return now


async def test_a_flow_is_created_read_replaced_and_deleted(api, clock):
    response = await api.client.post("/v1/call-flows", json=RING_DESK)
    assert response.status_code == 201
    (created,) = response.json()["data"]
    assert created == {
        "id": created["id"],
        "title": "Door",
        "record": False,
        "steps": [
            {
                "id": "ring",
                "action": "transfer",
                "options": {"destination": "client:desk"},
                "onKeypressGoto": None,
                "onKeypressVar": None,
                "conditions": [],
            }
        ],
        "default": False,
        "createdAt": "2026-11-25T10:00:00Z",
        "updatedAt": "2026-11-25T10:00:00Z",
    }
    flow_id = created["id"]
    assert (await api.storage.get_call_flow(flow_id)).steps[0].typed_options().identities == ["desk"]
    assert (await api.client.get(f"/v1/call-flows/{flow_id}")).json() == {"data": [created]}

    clock.value = T0 + 90
    replacement = {"id": flow_id, "title": "Door, evenings", "steps": [{"id": "bye", "action": "hangup"}]}
    response = await api.client.put(f"/v1/call-flows/{flow_id}", json=replacement)
    assert response.status_code == 200, response.text
    (replaced,) = response.json()["data"]
    assert replaced["title"] == "Door, evenings" and [step["id"] for step in replaced["steps"]] == ["bye"]
    assert replaced["createdAt"] == "2026-11-25T10:00:00Z" and replaced["updatedAt"] == "2026-11-25T10:01:30Z"

    response = await api.client.delete(f"/v1/call-flows/{flow_id}")
    assert response.status_code == 204 and response.content == b""
    errors(await api.client.get(f"/v1/call-flows/{flow_id}"), 404)
    errors(await api.client.delete(f"/v1/call-flows/{flow_id}"), 404)
    errors(await api.client.put(f"/v1/call-flows/{flow_id}", json=replacement), 404)


async def test_flows_are_listed_in_pages_oldest_first(api):
    for number in range(25):
        await api.storage.create_call_flow(CallFlow.model_validate({"id": f"flow-{number:02}", **RING_DESK}))
    seen = []
    for page, size in ((1, 10), (2, 10), (3, 5), (4, 0)):
        body = (await api.client.get("/v1/call-flows", params={"page": page, "perPage": 10})).json()
        assert body["pagination"] == {"totalCount": 25, "pageCount": 3, "currentPage": page, "perPage": 10}
        assert len(body["data"]) == size
        seen += [flow["id"] for flow in body["data"]]
    assert seen == [f"flow-{number:02}" for number in range(25)]
    body = (await api.client.get("/v1/call-flows")).json()
    assert body["pagination"] == {"totalCount": 25, "pageCount": 3, "currentPage": 1, "perPage": 10}
    errors(await api.client.get("/v1/call-flows", params={"perPage": 101}), 422)
    errors(await api.client.get("/v1/call-flows", params={"page": 0}), 422)


async def test_an_empty_list_has_no_pages(api):
    body = (await api.client.get("/v1/call-flows")).json()
    assert body == {"data": [], "pagination": {"totalCount": 0, "pageCount": 0, "currentPage": 1, "perPage": 10}}


@pytest.mark.parametrize(
    ("flow", "parameter", "message"),
    [
        (
            {"steps": [{"id": "s", "action": "say", "options": {}}]},
            "steps.0.options.payload",
            "steps.0: say step 's': options.payload: Field required",
        ),
        (
            {"steps": [{"action": "hangup"}, {"id": "t", "action": "transfer", "options": {"destination": "+3161"}}]},
            "steps.1.options.destination",
            "transfer step 't': options.destination: destination '+3161' is not client:<identity>",
        ),
        ({"steps": [{"action": "dance"}]}, "steps.0.action", "steps.0.action: Input should be"),
        ({"steps": []}, "steps", "steps: List should have at least 1 item"),
        ({"steps": [{"action": "hangup"}], "colour": "red"}, "colour", "colour: Extra inputs are not permitted"),
        ([], None, "flow: Input should be an object"),
    ],
)
async def test_a_bad_flow_is_refused_naming_the_field(api, flow, parameter, message):
    (error,) = errors(await api.client.post("/v1/call-flows", json=flow), 422)
    assert error["parameter"] == parameter and message in error["message"]
    assert await api.storage.count_call_flows() == 0


async def test_every_fault_is_its_own_error(api):
    flow = {"steps": [{"id": "s", "action": "say", "options": {"payload": "", "voice": "robot"}}]}
    found = errors(await api.client.post("/v1/call-flows", json=flow), 422)
    assert [error["parameter"] for error in found] == ["steps.0.options.payload", "steps.0.options.voice"]


async def test_ids_are_unique_and_a_put_keeps_its_own(api):
    assert (await api.client.post("/v1/call-flows", json={"id": "door", **RING_DESK})).status_code == 201
    (error,) = errors(await api.client.post("/v1/call-flows", json={"id": "door", **RING_DESK}), 409)
    assert error["parameter"] == "id" and "exists already" in error["message"]
    (error,) = errors(await api.client.put("/v1/call-flows/door", json={"id": "gate", **RING_DESK}), 422)
    assert error["parameter"] == "id"
    response = await api.client.put("/v1/call-flows/door", json=RING_DESK)  # no id: this one
    assert response.status_code == 200 and response.json()["data"][0]["id"] == "door"


async def test_timestamps_sent_back_as_read_are_ignored(api, clock):
    """MessageBird's SDKs send a flow back with the createdAt and updatedAt they read."""
    sent = {**RING_DESK, "createdAt": "0001-01-01T00:00:00Z", "updatedAt": "0001-01-01T00:00:00Z"}
    (created,) = (await api.client.post("/v1/call-flows", json=sent)).json()["data"]
    assert created["createdAt"] == "2026-11-25T10:00:00Z"
    clock.value += 60
    response = await api.client.put(f"/v1/call-flows/{created['id']}", json={**created, "title": "Gate"})
    assert response.status_code == 200
    (replaced,) = response.json()["data"]
    assert replaced["title"] == "Gate" and replaced["createdAt"] == created["createdAt"]
    assert replaced["updatedAt"] == "2026-11-25T10:01:00Z"


async def test_one_flow_at_most_is_the_default(api):
    for flow_id in ("day", "night"):
        response = await api.client.post("/v1/call-flows", json={"id": flow_id, "default": True, **RING_DESK})
        assert response.status_code == 201
    flows = {flow["id"]: flow["default"] for flow in (await api.client.get("/v1/call-flows")).json()["data"]}
    assert flows == {"day": False, "night": True}
    response = await api.client.put("/v1/call-flows/day", json={"default": True, **RING_DESK})
    assert response.json()["data"][0]["default"] is True
    assert (await api.storage.default_call_flow()).id == "day"
    assert not (await api.storage.get_call_flow("night")).default


async def test_a_paging_parameter_given_twice_is_refused(api):
    for query in ("page=1&page=2", "perPage=5&perPage=50"):
        (error,) = errors(await api.client.get(f"/v1/call-flows?{query}"), 400)
        assert error["parameter"] == query.split("=")[0] and "more than once" in error["message"]


async def test_options_the_hub_ignores_are_stored_and_answered_with_warnings(api, caplog):
    flow = {"steps": [{"id": "hello", "action": "say", "options": {"payload": "Hi", "ifMachine": "hangup"}}]}
    response = await api.client.post("/call-flows", json=flow)
    assert response.status_code == 201
    body = response.json()
    (warning,) = body["warnings"]
    assert warning["parameter"] == "steps.0.options.ifMachine"
    assert warning["message"].startswith("""say step 'hello': ifMachine "hangup" is ignored: """)
    (stored,) = body["data"]
    assert stored["steps"][0]["options"] == flow["steps"][0]["options"]  # kept as sent
    assert (await api.client.get(f"/call-flows/{stored['id']}")).json() == {"data": [stored]}
    logged = [r.getMessage() for r in caplog.records if "options ignored" in r.getMessage()]
    assert logged == [f"call flow {stored['id']}: options ignored: {warning['message']}"]
    response = await api.client.put(f"/v1/call-flows/{stored['id']}", json={"steps": [{"action": "hangup"}]})
    assert response.status_code == 200 and response.json()["warnings"] == []
