"""``/calls``: the call log (calls, their legs, the legs' recordings), and calls started or
hung up from outside.

Starting and hanging up are the call service's (``app.state.calls``): this module only checks
the request and answers with the call's record.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..call_limits import CallRefused
from ..callflows import CallFlow, Problem, identities
from ..records import CallRecord, LegRecord, RecordingRecord
from ..storage import Storage
from .call_flows import accepted, without_read_only
from .common import HubStorage, Pages, body_schema, json_body, validated
from .errors import ApiError, not_found
from .views import Accepted, CallView, Errors, LegView, One, OneRecording, Page, RecordingView
from .webhooks import CallWebhook

log = logging.getLogger(__name__)

router = APIRouter(prefix="/calls", tags=["calls"])

CallId = Annotated[str, Path(alias="callId")]
LegId = Annotated[str, Path(alias="legId")]
RecordingId = Annotated[str, Path(alias="recordingId")]

WAV = {
    200: {
        "description": "The recording, as a WAV file",
        "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class CallRequest(BaseModel):
    """A call to start: the hub calls ``destination`` and runs ``callFlow`` (or the default flow)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(min_length=1, max_length=100, description="Who the callee sees calling")
    destination: str = Field(max_length=40, description="client:<identity>: the one client to call")
    call_flow: CallFlow | None = Field(None, alias="callFlow", description="Default: the flow marked default")
    webhook: CallWebhook | None = Field(None, description="Told of this call's events, besides /webhooks")

    @field_validator("destination")
    @classmethod
    def _one_client(cls, destination: str) -> str:
        if len(destination.split(",")) != 1:
            raise ValueError("a call is made to one client:<identity>; ring several with a transfer step")
        identities(destination)  # raises with the reason
        return destination

    @property
    def identity(self) -> str:
        return identities(self.destination)[0]


FULL = {503: {"model": Errors, "description": "The hub is in max_calls calls: try again after Retry-After"}}


@router.post("", status_code=201, openapi_extra=body_schema(CallRequest), responses=FULL)
async def start_call(request: Request, storage: HubStorage) -> Accepted[CallView]:
    data: Any = await json_body(request)
    if isinstance(data, dict) and "callFlow" in data:
        data = {**data, "callFlow": without_read_only(data["callFlow"])}
    wanted = validated(CallRequest, data, whole="call")
    flow = wanted.call_flow or await storage.default_call_flow()
    if flow is None:
        raise ApiError(422, Problem("callFlow", "callFlow: none given, and no stored call flow is the default"))
    try:
        call = await request.app.state.calls.originate(
            source=wanted.source,
            identity=wanted.identity,
            flow=flow,
            webhook=wanted.webhook.webhook() if wanted.webhook else None,
        )
    except CallRefused as refused:  # 503 when the hub is full, 429 when the client is in too many calls
        raise ApiError(refused.http_status, Problem("", str(refused)), headers=refused.headers) from None
    warnings = accepted(flow, f"call {call.id}", "callFlow." if wanted.call_flow else "")
    return Accepted[CallView](data=[CallView.of(call)], warnings=warnings)


@router.get("")
async def list_calls(storage: HubStorage, paging: Pages) -> Page[CallView]:
    """The calls, newest first."""
    calls, total = await storage.page(CallRecord, paging.offset, paging.per_page, newest_first=True)
    return paging.of([CallView.of(call) for call in calls], total)


@router.get("/{callId}")
async def get_call(call_id: CallId, storage: HubStorage) -> One[CallView]:
    return One[CallView](data=[CallView.of(await _call(storage, call_id))])


@router.delete("/{callId}", status_code=204, response_class=Response)
async def hang_up(call_id: CallId, request: Request, storage: HubStorage) -> Response:
    """End a call that is still going; one that has ended stays as it was."""
    await _call(storage, call_id)
    await request.app.state.calls.hang_up(call_id)
    return Response(status_code=204)


@router.get("/{callId}/legs")
async def list_legs(call_id: CallId, storage: HubStorage, paging: Pages) -> Page[LegView]:
    """The call's legs, in the order they started."""
    await _call(storage, call_id)
    legs, total = await storage.page(LegRecord, paging.offset, paging.per_page, parent=call_id)
    return paging.of([LegView.of(leg) for leg in legs], total)


@router.get("/{callId}/legs/{legId}/recordings")
async def list_recordings(call_id: CallId, leg_id: LegId, storage: HubStorage, paging: Pages) -> Page[RecordingView]:
    await _leg(storage, call_id, leg_id)
    recordings, total = await storage.page(RecordingRecord, paging.offset, paging.per_page, parent=leg_id)
    return paging.of([RecordingView.of(recording) for recording in recordings], total)


# Before the route below, whose {recordingId} would take "<id>.wav" too.
@router.get("/{callId}/legs/{legId}/recordings/{recordingId}.wav", response_class=FileResponse, responses=WAV)
async def get_recording_file(
    call_id: CallId, leg_id: LegId, recording_id: RecordingId, storage: HubStorage
) -> FileResponse:
    return recording_file(storage, await _recording(storage, call_id, leg_id, recording_id))


def recording_file(storage: Storage, recording: RecordingRecord) -> FileResponse:
    """A recording's WAV file (also the desk's voicemail, intercom.hub.desk_api); 410, 409 or 404
    when it has none to serve."""
    if recording.pruned_at is not None:
        raise ApiError(410, Problem("", f"recording {recording.id} was pruned to keep the recordings quota"))
    if recording.status == "recording":  # its file grows while it is sent: a length that would lie
        raise ApiError(409, Problem("", f"recording {recording.id} is still running: its file is served once done"))
    root = storage.data_dir.resolve()
    path = (root / recording.path).resolve()
    if not path.is_relative_to(root):
        log.warning("recording %s: its path %r is outside the data directory; not served", recording.id, recording.path)
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, Problem("", f"recording {recording.id} has no file"))
    return FileResponse(path, media_type="audio/wav", filename=f"{recording.id}.wav")


@router.get("/{callId}/legs/{legId}/recordings/{recordingId}")
async def get_recording(call_id: CallId, leg_id: LegId, recording_id: RecordingId, storage: HubStorage) -> OneRecording:
    return OneRecording.of(await _recording(storage, call_id, leg_id, recording_id))


@router.delete("/{callId}/legs/{legId}/recordings/{recordingId}", status_code=204, response_class=Response)
async def delete_recording(
    call_id: CallId, leg_id: LegId, recording_id: RecordingId, request: Request, storage: HubStorage
) -> Response:
    """Delete a recording, its file and its row: afterwards it answers 404, as if never made
    (a pruned one keeps its row, and 410, because nobody asked it gone). One still running is
    refused (409): its recorder is writing the file."""
    recording = await _recording(storage, call_id, leg_id, recording_id)
    if recording.status == "recording":
        raise ApiError(409, Problem("", f"recording {recording.id} is still running: delete it once it is done"))
    try:
        await request.app.state.retention.delete_recording(recording)
    except OSError as exc:
        why = f"the disk refused to delete its file ({exc.strerror or exc}); try again once it works"
        raise ApiError(503, Problem("", f"recording {recording.id} is kept: {why}")) from None
    return Response(status_code=204)


async def _call(storage: Storage, call_id: str) -> CallRecord:
    call = await storage.get(CallRecord, call_id)
    if call is None:
        raise not_found("call", call_id)
    return call


async def _leg(storage: Storage, call_id: str, leg_id: str) -> LegRecord:
    await _call(storage, call_id)
    leg = await storage.get(LegRecord, leg_id)
    if leg is None or leg.call_id != call_id:
        raise ApiError(404, Problem("", f"call {call_id!r} has no leg with id {leg_id!r}"))
    return leg


async def _recording(storage: Storage, call_id: str, leg_id: str, recording_id: str) -> RecordingRecord:
    await _leg(storage, call_id, leg_id)
    recording = await storage.get(RecordingRecord, recording_id)
    if recording is None or recording.leg_id != leg_id:
        raise ApiError(404, Problem("", f"leg {leg_id!r} has no recording with id {recording_id!r}"))
    return recording
