"""Every refusal, on any path of the hub, in MessageBird's shape:
``{"errors": [{"code", "message", "description", "parameter"}]}``.

FastAPI's own refusals (a bad query parameter, an unknown route, a method not allowed, a crash)
are rewritten too, so that a client reads one format wherever it went wrong: MessageBird's SDKs
look for ``errors`` to tell a refusal from an answer, and print ``description``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from ..callflows import Problem, problems
from .views import ErrorItem, Errors

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request refused: its HTTP status and what is wrong, one problem per fault."""

    def __init__(self, status: int, *found: Problem, headers: Mapping[str, str] | None = None) -> None:
        super().__init__("; ".join(problem.message for problem in found))
        self.status = status
        self.problems = found
        self.headers = headers


def not_found(kind: str, item_id: str) -> ApiError:
    return ApiError(404, Problem("", f"no {kind} with id {item_id!r}"))


def error_response(status: int, found: Iterable[Problem], headers: Mapping[str, str] | None = None) -> JSONResponse:
    items = [ErrorItem.of(status, problem) for problem in found]
    return JSONResponse(Errors(errors=items).model_dump(), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    for unavailable in app.state.storage.unavailable:  # the backend's "cannot write now"
        app.add_exception_handler(unavailable, _not_written)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _crash)


async def _api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc.status, exc.problems, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    # Bodies are validated by the routes themselves; what is left here are query parameters,
    # whose location ("query", "perPage") is reported as just the name.
    located = [{**error, "loc": error["loc"][1:]} for error in exc.errors()]
    return error_response(422, problems(located, whole="request"))  # type: ignore[arg-type]


async def _http_error(request: Request, exc: HTTPException) -> Response:
    message = f"{exc.detail}: {request.method} {_sent_path(request)}"
    headers = exc.headers
    if exc.status_code == 405:  # Starlette names the methods of one route of this path only
        named = {method.strip() for method in (headers or {}).get("Allow", "").split(",") if method.strip()}
        headers = {**(headers or {}), "Allow": ", ".join(sorted(named | _methods(request)))}
    return error_response(exc.status_code, [Problem("", message)], headers)


def _sent_path(request: Request) -> str:
    """The path as the client sent it (before :mod:`.paths` routed it as its ``/v1`` form)."""
    raw: bytes | None = request.scope.get("raw_path")
    return raw.decode(errors="replace") if raw else request.url.path


def _methods(request: Request) -> set[str]:
    """Every method the OpenAPI schema documents for the path routed (an API path in its ``/v1``
    form, the one the schema documents). Where templates of several lengths match
    (``{recordingId}.wav`` and ``{recordingId}``), the most literal one is the path's."""
    matching: list[tuple[int, list[str]]] = []
    for template, operations in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))  # {callId} matches one segment
        if re.fullmatch(pattern, request.url.path):
            matching.append((len(re.sub(r"\{\w+\}", "", template)), list(operations)))
    literal = max((length for length, _ in matching), default=0)
    return {method.upper() for length, operations in matching if length == literal for method in operations}


async def _not_written(request: Request, exc: Exception) -> Response:
    """A read-only or full disk refused a write (a new webhook, a call flow): the hub is fine
    otherwise, and the request may be tried again once the disk works (calls go on meanwhile)."""
    log.warning("%s %s not done: the database cannot be written (%s)", request.method, request.url.path, exc)
    message = f"the hub cannot write its database ({exc}); try again once its disk works"
    return error_response(503, [Problem("", message)])


async def _crash(request: Request, exc: Exception) -> Response:
    """Starlette logs the exception and re-raises it after this answer; this only shapes the body."""
    return error_response(500, [Problem("", "internal error: the hub's log says more")])
