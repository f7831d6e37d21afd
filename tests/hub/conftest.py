"""Fixtures of the hub's tests: the desk API of a real hub, as a paired phone's page uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from intercom.hub import Storage
from intercom.hub.pairing import PhoneBook

from ..conftest import Hub
from ..units import STEP
from .pairing import Desk


@pytest.fixture
async def desk_api(hub: Hub) -> AsyncIterator[Desk]:
    """``/desk/api/`` of the test's hub over HTTP, and its phone book (what ``intercom web`` does)."""
    async with httpx.AsyncClient(base_url=f"http://{hub.address}", timeout=STEP) as http:
        yield Desk(hub, http, PhoneBook(hub.storage))


OpenStorage = Callable[[str], Awaitable[Storage]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def open_storage(request, tmp_path) -> AsyncIterator[OpenStorage]:
    """Opens the test's database (one per test, on each backend) as the hub of the id given:
    several hubs sharing one database, as PostgreSQL lets them. Each is closed at the end."""
    opened: list[Storage] = []
    if request.param == "postgresql":
        from intercom.hub.storage_postgresql import PostgresStorage

        cluster = request.getfixturevalue("postgres")
        url = cluster.url(cluster.new_database())

    async def open_as(hub_id: str) -> Storage:
        if request.param == "sqlite":
            opened.append(Storage(tmp_path, hub_id=hub_id))
        else:
            opened.append(await PostgresStorage.open(url, tmp_path, hub_id, password=cluster.password, pool_size=2))
        return opened[-1]

    yield open_as
    for storage in opened:
        await storage.aclose()


@pytest.fixture
async def storage(open_storage: OpenStorage) -> Storage:
    """An empty hub database on each backend: the tests of what the hub stores run on every one."""
    return await open_storage("")
