"""Where the Voice API answers: at the root, as MessageBird's own API does (its SDKs call
``/calls``, ``/call-flows``, ``/webhooks``), and under ``/v1``, the hub's documented form; and
with or without a trailing slash (the Python SDK writes ``calls/?page=1``).

Both are done before routing, by rewriting the path to its ``/v1`` form without the slash: one
set of routes serves every form (a second copy of the routes cost every request of the hub, even
``/healthz``, ~0.4 ms of matching on a 2-core box: bench/api.py). A trailing slash is dropped
rather than answered with Starlette's 307 to an absolute URL: clients drop ``Authorization`` when
they follow a redirect, and a URL built from the ``Host`` header may not even be the hub's. Only
the API's paths are touched (their first segment is one of the API's), so that no other path of
the hub is shadowed and a page served elsewhere (``/desk/``) keeps its own meaning of a slash.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/v1"


def routed_path(path: str, roots: frozenset[str]) -> str | None:
    """The ``/v1`` form of an API path without its trailing slash; ``None`` for a path that is
    not the API's or is already in that form."""
    under_prefix = path.startswith(PREFIX + "/")
    rest = path.removeprefix(PREFIX) if under_prefix else path
    if rest.split("/", 2)[1] not in roots:
        return None
    rest = rest.removesuffix("/") if rest.endswith("/") and rest != "/" else rest
    routed = PREFIX + rest
    return None if routed == path else routed


class ApiPaths:
    """ASGI middleware: ``/calls``, ``/calls/`` and ``/v1/calls/`` are routed as ``/v1/calls``."""

    def __init__(self, app: ASGIApp, roots: Iterable[str]) -> None:
        self.app = app
        self.roots = frozenset(roots)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (routed := routed_path(scope["path"], self.roots)) is not None:
            # raw_path stays what the client sent: the log and the error messages name that
            scope = {**scope, "path": routed}
        await self.app(scope, receive, send)
