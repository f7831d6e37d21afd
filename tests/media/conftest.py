from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .helpers import MediaKit


@pytest.fixture
async def media() -> AsyncIterator[MediaKit]:
    """A :class:`MediaKit`; at teardown everything is closed and nothing may be left running."""
    kit = MediaKit()
    yield kit
    await kit.close()
    tasks, threads = await kit.leftovers()
    assert not tasks, f"tasks left running: {tasks}"
    assert not threads, f"decoder threads left running: {threads}"
