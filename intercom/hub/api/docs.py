"""The OpenAPI schema and its Swagger page, for admin keys only: they map every route of the hub.

The page carries the schema in itself, so that it needs no second request (which a browser
would send without the key).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from .common import authorize

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"


def install_docs(app: FastAPI) -> None:
    """Serve ``/openapi.json`` and ``/docs`` behind :func:`authorize` (make ``app`` with
    ``openapi_url=None, docs_url=None, redoc_url=None`` so FastAPI serves neither unguarded)."""

    @app.get(OPENAPI_PATH, include_in_schema=False, dependencies=[Security(authorize)])
    async def openapi(request: Request) -> dict[str, Any]:
        return request.app.openapi()

    @app.get(DOCS_PATH, include_in_schema=False, dependencies=[Security(authorize)])
    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="", title=f"{app.title} - Voice API", swagger_ui_parameters={"spec": request.app.openapi()}
        )
