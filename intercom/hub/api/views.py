"""What the Voice API answers: its objects, envelopes and errors, in MessageBird's shapes.

The same rendering feeds the REST views and the webhooks (:mod:`intercom.hub.webhooks`), so a
receiver sees exactly what a GET would have shown. Times go out as RFC 3339 UTC to the second
(``2026-11-25T10:00:00Z``), as MessageBird writes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..callflows import Problem, Step
from ..records import (
    CallRecord,
    CallStatus,
    Direction,
    LegRecord,
    LegStatus,
    RecordingKind,
    RecordingRecord,
    UnlockEvent,
    UnlockEventKind,
)


def rfc3339(seconds: float | str) -> str:
    """Seconds since the epoch as RFC 3339 UTC; a time already written so (a view validated
    again on its way out) stays as it is."""
    if isinstance(seconds, str):
        return seconds
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The rows keep seconds since the epoch; a view shows them in RFC 3339.
Timestamp = Annotated[
    str,
    BeforeValidator(rfc3339),
    Field(json_schema_extra={"format": "date-time"}, examples=["2026-11-25T10:00:00Z"]),
]


class _View(BaseModel):
    model_config = ConfigDict(populate_by_name=True, from_attributes=True)

    @classmethod
    def of(cls, row: object) -> Self:
        """The view of a stored row (its fields are the row's attributes of the same names)."""
        return cls.model_validate(row)


class CallFlowView(_View):
    id: str
    title: str
    record: bool
    steps: list[Step]
    default: bool
    created_at: Timestamp = Field(alias="createdAt")
    updated_at: Timestamp = Field(alias="updatedAt")


class WebhookView(_View):
    id: str
    url: str
    title: str | None
    token: str = Field(description="Signs each delivery; made by the hub when none was given")
    created_at: Timestamp = Field(alias="createdAt")
    updated_at: Timestamp = Field(alias="updatedAt")


class CallView(_View):
    id: str
    status: CallStatus
    source: str
    destination: str
    call_flow_id: str | None = Field(alias="callFlowId")
    reason: str | None = Field(description="Why the call ended, in words")
    created_at: Timestamp = Field(alias="createdAt")
    updated_at: Timestamp = Field(alias="updatedAt")
    ended_at: Timestamp | None = Field(alias="endedAt")


class LegView(_View):
    id: str
    call_id: str = Field(alias="callID")
    source: str
    destination: str
    status: LegStatus
    direction: Direction
    duration: int = Field(description="Whole seconds from the answer to the end (or to now)")
    created_at: Timestamp = Field(alias="createdAt")
    updated_at: Timestamp = Field(alias="updatedAt")
    answered_at: Timestamp | None = Field(alias="answeredAt")
    ended_at: Timestamp | None = Field(alias="endedAt")


class RecordingLinks(_View):
    """Where a recording and its file are, as MessageBird writes them: from the API's root,
    without ``/v1`` (the hub serves both forms)."""

    self: str
    file: str

    @classmethod
    def of(cls, recording: RecordingRecord) -> RecordingLinks:
        path = f"/calls/{recording.call_id}/legs/{recording.leg_id}/recordings/{recording.id}"
        return cls(self=path, file=f"{path}.wav")


class RecordingView(_View):
    id: str
    format: str = Field(description="Always wav", examples=["wav"])
    leg_id: str = Field(alias="legId")
    status: str = Field(
        description="recording: it runs, its file grows (the file answers 409); done: kept; pruned: its file went "
        "to keep the recordings quota (the file answers 410)",
        examples=["done"],
    )
    duration: int = Field(description="Whole seconds of audio")
    type: RecordingKind
    created_at: Timestamp = Field(alias="createdAt")
    updated_at: Timestamp = Field(alias="updatedAt")
    links: RecordingLinks = Field(alias="_links")

    @classmethod
    def of(cls, recording: RecordingRecord) -> RecordingView:
        return cls(
            id=recording.id,
            format="wav",
            leg_id=recording.leg_id,
            status=recording.status if recording.pruned_at is None else "pruned",
            duration=round(recording.duration),
            type=recording.kind,
            created_at=recording.created_at,
            updated_at=recording.updated_at,
            links=RecordingLinks.of(recording),
        )


class UnlockView(_View):
    """A door's unlock, wrong code or lockout, as a webhook's ``unlock`` item carries it."""

    id: str
    door: str
    event: UnlockEventKind
    source: Literal["keypad", "remote"]
    who: str | None
    call_id: str | None = Field(alias="callId")
    time: Timestamp

    @classmethod
    def of(cls, event: UnlockEvent) -> UnlockView:
        return cls(
            id=event.id, door=event.door, event=event.event, source=event.source, who=event.who,
            call_id=event.sip_call_id, time=event.at,
        )  # fmt: skip


def render(
    row: CallRecord | LegRecord | RecordingRecord | UnlockEvent,
) -> CallView | LegView | RecordingView | UnlockView:
    """A call-log row (or a door's event) as the API shows it."""
    if isinstance(row, UnlockEvent):
        return UnlockView.of(row)
    if isinstance(row, CallRecord):
        return CallView.of(row)
    if isinstance(row, LegRecord):
        return LegView.of(row)
    return RecordingView.of(row)


Item = TypeVar("Item", bound=BaseModel)


class One(BaseModel, Generic[Item]):
    """A single object: MessageBird wraps it in a list of one."""

    data: list[Item] = Field(min_length=1, max_length=1)


class OneRecording(One[RecordingView]):
    """A recording, with its ``_links`` beside ``data`` too: MessageBird's Python SDK downloads
    the file from there."""

    model_config = ConfigDict(populate_by_name=True)

    links: RecordingLinks = Field(alias="_links")

    @classmethod
    def of(cls, recording: RecordingRecord) -> OneRecording:
        return cls(data=[RecordingView.of(recording)], links=RecordingLinks.of(recording))


class OptionWarning(BaseModel):
    """An option taken but not acted on (a MessageBird feature the hub does not have)."""

    parameter: str = Field(description="The option as a dotted path (steps.0.options.mask)")
    message: str


class Accepted(One[Item], Generic[Item]):
    """A call flow or call stored or started: ``warnings`` lists the options it ignores."""

    warnings: list[OptionWarning] = Field(default_factory=list)


class Pagination(_View):
    total_count: int = Field(alias="totalCount", ge=0)
    page_count: int = Field(alias="pageCount", ge=0)
    current_page: int = Field(alias="currentPage", ge=1)
    per_page: int = Field(alias="perPage", ge=1)


class Page(BaseModel, Generic[Item]):
    data: list[Item]
    pagination: Pagination


class ErrorItem(BaseModel):
    code: int = Field(description="The HTTP status (MessageBird's own error codes are deprecated)")
    message: str
    description: str = Field(description="The same text as message: MessageBird's SDKs print this one")
    parameter: str | None = Field(description="The field at fault as a dotted path (steps.0.options.payload)")

    @classmethod
    def of(cls, status: int, problem: Problem) -> ErrorItem:
        return cls(
            code=status, message=problem.message, description=problem.message, parameter=problem.parameter or None
        )


class Errors(BaseModel):
    errors: list[ErrorItem] = Field(min_length=1)
