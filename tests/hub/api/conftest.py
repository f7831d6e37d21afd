"""The Voice API of a real hub on 127.0.0.1, with a client holding a valid access key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from ...conftest import STEP, Hub
from .call_log import StandInCalls


@dataclass
class Api:
    hub: Hub
    client: httpx.AsyncClient
    calls: StandInCalls

    @property
    def storage(self):
        return self.hub.storage


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[Api]:
    calls = StandInCalls(hub.storage)
    hub.running.app.state.calls = calls
    headers = {"Authorization": f"AccessKey {hub.key.secret}"}
    async with httpx.AsyncClient(base_url=f"http://{hub.address}", headers=headers, timeout=STEP) as client:
        yield Api(hub, client, calls)


def errors(response: httpx.Response, status: int) -> list[dict[str, object]]:
    """The errors of a refusal, checked to be in the Voice API's shape (MessageBird's SDKs print
    ``description``: it says what ``message`` says)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"errors"} and body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"code", "message", "description", "parameter"}, error
        assert error["code"] == status and isinstance(error["message"], str) and error["message"]
        assert error["description"] == error["message"]
        assert error["parameter"] is None or isinstance(error["parameter"], str)
    return body["errors"]
