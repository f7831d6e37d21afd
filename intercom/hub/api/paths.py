"""Where the Voice API answers: at the root, as MessageBird's own API does (its SDKs call
``/calls``, ``/call-flows``, ``/webhooks``), and under ``/v1``, the hub's documented form; and
with or without a trailing slash (the Python SDK writes ``calls/?page=1``).

A trailing slash is dropped before routing rather than answered with Starlette's 307 to an
absolute URL: clients drop ``Authorization`` when they follow a redirect, and a URL built from
the ``Host`` header may not even be the hub's. Only the API's paths are touched, so that a page
served elsewhere (``/desk/``) keeps its own meaning of a slash.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/v1"


def api_path(path: str, roots: frozenset[str]) -> bool:
    """Whether ``path`` is the Voice API's: its first segment (after ``/v1``) is one of ``roots``."""
    rest = path.removeprefix(PREFIX) if path.startswith(PREFIX + "/") else path
    return rest.split("/", 2)[1] in roots


class TrailingSlash:
    """ASGI middleware: ``/calls/`` is routed as ``/calls`` (under ``/v1`` too)."""

    def __init__(self, app: ASGIApp, roots: Iterable[str]) -> None:
        self.app = app
        self.roots = frozenset(roots)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/") and api_path(path, self.roots):
            raw: bytes = scope.get("raw_path") or path.encode()
            scope = {**scope, "path": path[:-1], "raw_path": raw.removesuffix(b"/")}
        await self.app(scope, receive, send)
