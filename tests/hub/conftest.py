"""Fixtures of the hub's tests: the desk API of a real hub, as a paired phone's page uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from intercom.hub.pairing import PhoneBook

from ..conftest import Hub
from ..units import STEP
from .pairing import Desk


@pytest.fixture
async def desk_api(hub: Hub) -> AsyncIterator[Desk]:
    """``/desk/api/`` of the test's hub over HTTP, and its phone book (what ``intercom web`` does)."""
    async with httpx.AsyncClient(base_url=f"http://{hub.address}", timeout=STEP) as http:
        yield Desk(hub, http, PhoneBook(hub.storage))
