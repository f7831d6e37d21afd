"""``/call-flows``: the flows calls run, created, listed, replaced and deleted.

A body is checked by :class:`~intercom.hub.callflows.CallFlow` itself, so the API refuses a flow
with the same words as ``intercom callflows create``. ``createdAt`` and ``updatedAt`` in a body
are the hub's to set and are ignored: MessageBird's SDKs send back what they read. A flow that
sets MessageBird options the hub does not act on is stored, and the answer's ``warnings`` (and
one log line) say which and why.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from ..callflows import CallFlow, CallFlowError, Problem
from .common import HubStorage, Pages, body_schema, json_body, validated
from .errors import ApiError, not_found
from .views import Accepted, CallFlowView, One, OptionWarning, Page

log = logging.getLogger(__name__)

READ_ONLY = ("createdAt", "updatedAt")

router = APIRouter(prefix="/call-flows", tags=["call flows"])

FlowId = Annotated[str, Path(alias="callFlowId")]


def without_read_only(data: Any) -> Any:
    if isinstance(data, dict):
        return {name: value for name, value in data.items() if name not in READ_ONLY}
    return data


def read_flow(data: Any) -> CallFlow:
    """A call flow from a request body (422 naming the step and option at fault)."""
    return validated(CallFlow, without_read_only(data), whole="flow")


def accepted(flow: CallFlow, what: str, where: str = "") -> list[OptionWarning]:
    """The warnings for the options ``flow`` sets that the hub ignores, said in one log line too;
    ``where``: the flow's place in the body (``callFlow.``)."""
    ignored = flow.ignored()
    if ignored:
        log.warning("%s: options ignored: %s", what, "; ".join(problem.message for problem in ignored))
    return [OptionWarning(parameter=where + problem.parameter, message=problem.message) for problem in ignored]


@router.post("", status_code=201, openapi_extra=body_schema(CallFlow))
async def create_call_flow(request: Request, storage: HubStorage) -> Accepted[CallFlowView]:
    """Store a new flow; its ``id`` is generated unless the body names a free one (else 409)."""
    flow = read_flow(await json_body(request))
    try:
        stored = await storage.create_call_flow(flow)
    except CallFlowError as exc:
        raise ApiError(409, Problem("id", str(exc))) from None
    warnings = accepted(stored, f"call flow {stored.id}")
    return Accepted[CallFlowView](data=[CallFlowView.of(stored)], warnings=warnings)


@router.get("")
async def list_call_flows(storage: HubStorage, paging: Pages) -> Page[CallFlowView]:
    """The flows, oldest first."""
    flows = await storage.list_call_flows(paging.offset, paging.per_page)
    return paging.of([CallFlowView.of(flow) for flow in flows], await storage.count_call_flows())


@router.get("/{callFlowId}")
async def get_call_flow(flow_id: FlowId, storage: HubStorage) -> One[CallFlowView]:
    flow = await storage.get_call_flow(flow_id)
    if flow is None:
        raise not_found("call flow", flow_id)
    return One[CallFlowView](data=[CallFlowView.of(flow)])


@router.put("/{callFlowId}", openapi_extra=body_schema(CallFlow))
async def replace_call_flow(flow_id: FlowId, request: Request, storage: HubStorage) -> Accepted[CallFlowView]:
    """Replace a flow whole, keeping its ``createdAt``; a body's ``id``, if any, must be this one."""
    if await storage.get_call_flow(flow_id) is None:
        raise not_found("call flow", flow_id)
    data = await json_body(request)
    if isinstance(data, dict) and data.setdefault("id", flow_id) != flow_id:
        raise ApiError(422, Problem("id", f"id: {data['id']!r} is not the id of the flow replaced ({flow_id!r})"))
    stored = await storage.replace_call_flow(read_flow(data))
    if stored is None:  # deleted meanwhile
        raise not_found("call flow", flow_id)
    warnings = accepted(stored, f"call flow {stored.id}")
    return Accepted[CallFlowView](data=[CallFlowView.of(stored)], warnings=warnings)


@router.delete("/{callFlowId}", status_code=204, response_class=Response)
async def delete_call_flow(flow_id: FlowId, storage: HubStorage) -> Response:
    if not await storage.delete_call_flow(flow_id):
        raise not_found("call flow", flow_id)
    return Response(status_code=204)
