"""The Voice API: MessageBird's REST shapes under ``/v1``, for the hub's call flows, calls and webhooks.

Every route wants ``Authorization: AccessKey <key>`` (an admin key's secret). Answers are
``{"data": [...]}``, with ``pagination`` for lists; refusals are ``{"errors": [...]}``. The
OpenAPI schema at ``/openapi.json`` (admin keys only, as ``/docs``) describes all of it, request
bodies included.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Security
from pydantic import BaseModel

from ..callflows import CallFlow
from . import call_flows, calls, webhooks
from .common import INPUT_REF, authorize, input_name
from .docs import install_docs
from .errors import PREFIX, install_error_handlers
from .views import Errors

# The bodies routes read themselves (see common.body_schema), for the OpenAPI schema.
BODIES: tuple[type[BaseModel], ...] = (CallFlow, webhooks.WebhookRequest, calls.CallRequest)

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Serve the Voice API from ``app``."""
    api = APIRouter(
        prefix=PREFIX,
        dependencies=[Security(authorize)],
        responses={"4XX": {"model": Errors, "description": "Refused: one error per fault"}},
    )
    for router in (call_flows.router, calls.router, webhooks.router):
        api.include_router(router)
    app.include_router(api)
    install_error_handlers(app)
    _document_bodies(app)
    install_docs(app)


def _document_bodies(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = generate().setdefault("components", {}).setdefault("schemas", {})
            for model in BODIES:
                schema = model.model_json_schema(by_alias=True, ref_template=INPUT_REF)
                for name, definition in schema.pop("$defs", {}).items():
                    schemas[input_name(name)] = definition
                schemas[input_name(model.__name__)] = schema
            flow = schemas[input_name(CallFlow.__name__)]
            for name in call_flows.READ_ONLY:
                flow["properties"][name] = {"readOnly": True, "description": "Set by the hub: a value sent is ignored"}
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
