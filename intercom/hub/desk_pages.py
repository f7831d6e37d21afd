"""The web desk's pages at ``/desk/``: the files ``node build.mjs`` put in ``intercom/web/dist/desk``,
served with the headers that let a phone keep them and a browser trust nothing else.

- ``/desk/`` and ``/desk/pair`` are the page (the pairing view reads its code from the URL's
  fragment, which never reaches the hub). The HTML names each asset with ``?v=<its hash>``: an
  asset asked for with its current hash is kept a year (``immutable``), anything else (the HTML,
  ``sw.js``, an asset without or with an old hash) is revalidated on every use (``no-cache``), so a
  new build shows at the next load and a phone never runs half of one and half of another.
- Every answer carries a strict Content-Security-Policy (no inline script or style, connections
  to this origin and its SIP WebSocket only, media from blob URLs for voicemails), no referrer,
  no sniffing, no framing.
- ``/desk/api/`` is not ours (:mod:`intercom.hub.pairing`'s endpoints): the mount steps aside.
- A checkout where ``dist/`` is not built answers 503 with a page that says how to build it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import NotModifiedResponse, PathLike, StaticFiles
from starlette.types import Message, Receive, Scope, Send

log = logging.getLogger(__name__)

ROOT = "/desk"
API = ROOT + "/api"
INDEX = "index.html"
PAGES = frozenset({".", "pair"})  # what /desk/ and /desk/pair are: the page, which routes itself
KEPT = "public, max-age=31536000, immutable"  # an asset asked for with its current hash
REVALIDATED = "no-cache"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".webmanifest": "application/manifest+json",
    ".json": "application/json",
    ".map": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".wav": "audio/wav",
    ".txt": "text/plain; charset=utf-8",
}
# A Host the CSP may name: a DNS name or an IP literal, with a port. Anything else (a header
# that would add directives) leaves the policy at 'self', which Chromium extends to wss anyway.
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")
# A relative asset the HTML names in src= or href= (not a URL, not an absolute path).
_ASSET_REFERENCE = re.compile(r'\b(src|href)="([A-Za-z0-9_][A-Za-z0-9_./-]*)"')
NOT_BUILT = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Web desk not built</title>"
    "<h1>The web desk is not built</h1><p>This hub runs from a checkout where "
    "<code>intercom/web/dist/</code> has not been built. Run <code>make web</code> (it needs npm; "
    "see docs/web-desk.md), or install the hub from its wheel, which ships the page built.</p>"
)


def content_security_policy(scheme: str, host: str | None) -> str:
    """The page may run its own scripts and styles only, talk to its own origin and SIP WebSocket
    only, play what it fetched (a voicemail's blob URL), and be framed by nobody."""
    websocket = "wss" if scheme == "https" else "ws"
    connect = f"'self' {websocket}://{host}" if host and _HOST.match(host) else "'self'"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "font-src 'self'",
            f"connect-src {connect}",
            "media-src 'self' blob:",
            "worker-src 'self'",
            "manifest-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    headers = Headers(scope=scope)
    policy = content_security_policy(scope.get("scheme", "http"), headers.get("host"))
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"microphone=(self), camera=(), geolocation=()"),
    ]


class _Hashes:
    """Each file's content hash, computed again only when its size or time changes."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, int, str]] = {}

    def of(self, path: str) -> str | None:
        try:
            status = os.stat(path)
        except OSError:
            return None
        seen = self._known.get(path)
        if seen and seen[:2] == (status.st_mtime_ns, status.st_size):
            return seen[2]
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        self._known[path] = (status.st_mtime_ns, status.st_size, digest)
        return digest


class DeskFiles(StaticFiles):
    """``dist/desk`` as the page and its assets (Starlette's static files keep paths inside it)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory, check_dir=False)
        self.root = directory
        self.hashes = _Hashes()
        self._told_not_built = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = security_headers(scope)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await super().__call__(scope, receive, with_headers)

    async def check_config(self) -> None:
        """Nothing: a missing directory is a 503 per request (it may be built while the hub runs)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if not (self.root / INDEX).is_file():
            if not self._told_not_built:
                self._told_not_built = True
                log.warning("/desk/ answers 503: %s is not built (run make web, or install the wheel)", self.root)
            return HTMLResponse(NOT_BUILT, status_code=503, headers={"Cache-Control": REVALIDATED})
        try:
            if path in PAGES:
                if scope["method"] not in ("GET", "HEAD"):
                    raise HTTPException(405, headers={"Allow": "GET, HEAD"})
                return self.page()
            return await super().get_response(path, scope)
        except HTTPException as refusal:
            # Plain text rather than the Voice API's JSON: a browser shows this one to a person.
            reason = {404: "Not found", 405: "Method not allowed"}.get(refusal.status_code, "Refused")
            return Response(
                f"{refusal.status_code} {reason}\n",
                status_code=refusal.status_code,
                headers=refusal.headers,
                media_type="text/plain",
            )

    def page(self) -> Response:
        """The HTML with each asset it names versioned by its hash (``app.js?v=…``)."""

        def versioned(match: re.Match[str]) -> str:
            attribute, name = match.groups()
            digest = self.hashes.of(os.path.join(self.root, name)) if ".." not in name else None
            return f'{attribute}="{name}?v={digest}"' if digest else match.group(0)

        html = _ASSET_REFERENCE.sub(versioned, (self.root / INDEX).read_text(encoding="utf-8"))
        return HTMLResponse(html, headers={"Cache-Control": REVALIDATED})

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        suffix = Path(full_path).suffix
        asked = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))).get("v")
        current = self.hashes.of(str(full_path)) if asked else None
        kept = asked is not None and asked == current and suffix != ".html" and Path(full_path).name != "sw.js"
        response = FileResponse(
            full_path,
            status_code=status_code,
            stat_result=stat_result,
            media_type=TYPES.get(suffix, "application/octet-stream"),
            headers={"Cache-Control": KEPT if kept else REVALIDATED},
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


class _DeskMount(Mount):
    """``/desk/...`` but for ``/desk/api/...``, whatever order the routes were added in."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if path == API or path.startswith(API + "/"):
            return Match.NONE, {}
        return super().matches(scope)


def install(app: FastAPI, directory: Path) -> None:
    """Serve ``directory`` (the built ``dist/desk``) at ``/desk/``; ``/desk`` redirects there."""

    async def to_the_page(_request: object) -> Response:
        return RedirectResponse(ROOT + "/", status_code=308)

    app.router.routes.append(Route(ROOT, to_the_page, methods=["GET", "HEAD"]))
    app.router.routes.append(_DeskMount(ROOT, app=DeskFiles(directory)))
