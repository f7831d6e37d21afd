"""The port the harness serves its page from, chosen here so that the hub can allow its origin."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def page_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def page_origin(port: int) -> str:
    """The Origin the page's WebSocket sends: the hub must allow it (it is not the hub's own)."""
    return f"http://127.0.0.1:{port}"
