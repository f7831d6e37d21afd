"""The Voice API: MessageBird's REST shapes, for the hub's call flows, calls and webhooks.

It answers at the root (``/calls``), as MessageBird's API does and its SDKs expect, and under
``/v1`` (``/v1/calls``), the same routes (see :mod:`.paths`); the OpenAPI schema documents the
``/v1`` form, once, and says the other in words.

Every route wants ``Authorization: AccessKey <key>`` (an admin key's secret). Answers are
``{"data": [...]}``, with ``pagination`` for lists; refusals, on any path of the hub, are
``{"errors": [...]}``. The OpenAPI schema at ``/openapi.json`` (admin keys only, as ``/docs``)
describes all of it, request bodies included.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Security
from pydantic import BaseModel

from ..callflows import CallFlow
from . import call_flows, calls, webhooks
from .common import INPUT_REF, authorize, input_name
from .docs import install_docs
from .errors import install_error_handlers
from .paths import PREFIX, ApiPaths
from .views import Errors

# The bodies routes read themselves (see common.body_schema), for the OpenAPI schema.
BODIES: tuple[type[BaseModel], ...] = (
    CallFlow,
    webhooks.WebhookRequest,
    webhooks.WebhookUpdate,
    calls.CallRequest,
)
ROUTERS = (call_flows.router, calls.router, webhooks.router)

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Serve the Voice API from ``app``."""
    api = APIRouter(
        dependencies=[Security(authorize)],
        responses={"4XX": {"model": Errors, "description": "Refused: one error per fault"}},
    )
    for router in ROUTERS:
        api.include_router(router)
    app.include_router(api, prefix=PREFIX)
    # No 307 to an absolute URL for any path: the API's slashes are dropped instead (paths.py).
    app.router.redirect_slashes = False
    app.add_middleware(ApiPaths, roots=[router.prefix.strip("/") for router in ROUTERS])
    install_error_handlers(app)
    _document_bodies(app)
    install_docs(app)


def _document_bodies(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema["info"]["description"] = (
                "Every operation is served at the root too (`/calls` as `/v1/calls`), as MessageBird's API "
                "is, and with or without a trailing slash."
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in BODIES:
                body = model.model_json_schema(by_alias=True, ref_template=INPUT_REF)
                for name, definition in body.pop("$defs", {}).items():
                    schemas[input_name(name)] = definition
                schemas[input_name(model.__name__)] = body
            flow = schemas[input_name(CallFlow.__name__)]
            for name in call_flows.READ_ONLY:
                flow["properties"][name] = {"readOnly": True, "description": "Set by the hub: a value sent is ignored"}
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
