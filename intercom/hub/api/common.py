"""What every Voice API route shares: the admin-key check, paging, and reading a JSON body.

Routes read their bodies themselves rather than through FastAPI's body parameters, so that a
call flow is refused with :class:`~intercom.hub.callflows.CallFlow`'s own messages (which name
the step and option); :func:`body_schema` documents each body in the OpenAPI schema instead.
"""

from __future__ import annotations

import hmac
import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError

from ...auth import AccessKey, warn_if_legacy
from ..callflows import Problem, problems
from ..storage import Storage
from .errors import ApiError
from .views import Page, Pagination

MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000  # keeps the offset within SQLite's integers
MAX_OFFSET = MAX_PAGE * MAX_PER_PAGE
DEFAULT_PER_PAGE = 10
MAX_BODY = 1024 * 1024  # a call flow of 500 steps fits with room to spare
CHALLENGE = {"WWW-Authenticate": "AccessKey"}

Model = TypeVar("Model", bound=BaseModel)

ACCESS_KEY = APIKeyHeader(
    name="Authorization",
    scheme_name="AccessKey",
    description="`AccessKey <key>`, where the key is an admin key's secret (`intercom keys create --admin`).",
    auto_error=False,
)


async def storage_of(request: Request) -> Storage:
    return request.app.state.storage


HubStorage = Annotated[Storage, Depends(storage_of)]


async def authorize(storage: HubStorage, header: Annotated[str | None, Security(ACCESS_KEY)]) -> AccessKey:
    """The caller's admin key: 401 without a known key, 403 when it is revoked or a unit's (a unit
    key only signs its unit's tokens). A legacy unscoped key passes, with its warning."""
    scheme, _, secret = (header or "").strip().partition(" ")
    if scheme.lower() != "accesskey" or not secret.strip():
        raise ApiError(401, Problem("", "send the header Authorization: AccessKey <key>"), headers=CHALLENGE)
    key = await storage.key_by_secret(secret.strip())
    if key is None:
        raise ApiError(401, Problem("", "no such access key"), headers=CHALLENGE)
    if key.revoked:
        raise ApiError(403, Problem("", f"access key {key.id} is revoked"))
    if key.scope is None:
        warn_if_legacy(key)
    elif not key.scope.admin:
        who = ", ".join(key.scope.identities)
        raise ApiError(403, Problem("", f"access key {key.id} is a unit key for {who}: it has no Voice API rights"))
    return key


async def metrics_reader(request: Request, storage: HubStorage) -> None:
    """``/metrics`` (live call counts tell when someone is at the door): the configured metrics
    token as ``Authorization: Bearer <token>``, compared in constant time, or an admin key."""
    header = request.headers.get("Authorization") or ""
    scheme, _, credential = header.strip().partition(" ")
    token = request.app.state.config.metrics_token
    if token and scheme.lower() == "bearer" and hmac.compare_digest(credential.strip().encode(), token.encode()):
        return
    await authorize(storage, header)


@dataclass(frozen=True)
class Paging:
    offset: int
    per_page: int

    @property
    def page(self) -> int:
        """The page the offset falls in (an offset between two pages counts as the earlier)."""
        return self.offset // self.per_page + 1

    def of(self, items: list[Model], total: int) -> Page[Model]:
        pages = math.ceil(total / self.per_page)
        pagination = Pagination(total_count=total, page_count=pages, current_page=self.page, per_page=self.per_page)
        return Page(data=items, pagination=pagination)


PAGING_NAMES = ("page", "currentPage", "perPage", "limit", "offset")


async def paging(
    request: Request,
    page: Annotated[int | None, Query(ge=1, le=MAX_PAGE, description="From 1 (default 1)")] = None,
    current_page: Annotated[
        int | None, Query(alias="currentPage", ge=1, le=MAX_PAGE, description="Another name for page")
    ] = None,
    per_page: Annotated[int | None, Query(alias="perPage", ge=1, le=MAX_PER_PAGE, description="Default 10")] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PER_PAGE, description="Another name for perPage")] = None,
    offset: Annotated[
        int | None, Query(ge=0, le=MAX_OFFSET, description="Items to skip, instead of page: from 0")
    ] = None,
) -> Paging:
    """MessageBird's SDKs page in three ways: ``page`` and ``perPage``, ``currentPage`` and
    ``perPage`` (Node's webhooks), ``limit`` and ``offset`` (Python's call flows and webhooks,
    Node's recordings). Each is honoured; two names for one thing, or one name twice, are refused
    rather than one of them guessed."""
    for name in PAGING_NAMES:
        if len(request.query_params.getlist(name)) > 1:
            raise ApiError(400, Problem(name, f"{name} is given more than once"))
    _one_of({"page": page, "currentPage": current_page, "offset": offset})
    _one_of({"perPage": per_page, "limit": limit})
    size = per_page or limit or DEFAULT_PER_PAGE
    if offset is not None:
        return Paging(offset, size)
    return Paging(((page or current_page or 1) - 1) * size, size)


def _one_of(given: dict[str, int | None]) -> None:
    names = [name for name, value in given.items() if value is not None]
    if len(names) > 1:
        raise ApiError(400, Problem(names[1], f"{' and '.join(names)} say the same thing: give one of them"))


Pages = Annotated[Paging, Depends(paging)]


async def json_body(request: Request) -> Any:
    """The body as JSON: 413 past :data:`MAX_BODY`, 400 when it is not JSON."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise ApiError(413, Problem("", f"the body is larger than {MAX_BODY} bytes"))
    try:
        return json.loads(body, parse_constant=_not_json)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(400, Problem("", f"the body is not JSON: {exc}")) from None


def _not_json(constant: str) -> None:
    """Python reads NaN and Infinity; JSON has neither, and a stored NaN would come back as null."""
    raise ValueError(f"{constant} is not a JSON value")


def validated(model: type[Model], data: Any, whole: str) -> Model:
    """``data`` as ``model``, or 422 with one error per fault, each naming its field. Checked as
    JSON, so that the messages are those ``intercom callflows create`` gives for a file."""
    try:
        return model.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise ApiError(422, *problems(exc.errors(), whole=whole)) from None


def input_name(model_name: str) -> str:
    """A request body's name in the OpenAPI components: FastAPI's for the input side of a model."""
    return f"{model_name}-Input"


INPUT_REF = "#/components/schemas/" + input_name("{model}")


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads a JSON body of ``model``, documented by
    :func:`intercom.hub.api.install` under the name this refers to."""
    schema = {"$ref": INPUT_REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
