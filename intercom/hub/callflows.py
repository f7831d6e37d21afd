"""Call flows, as the MessageBird Voice API models them: a titled list of steps run in order.

A flow is stored as JSON and checked when it is created, not when a caller is waiting: an
action the engine cannot run, or a transfer to something that is not ``client:<identity>``,
is refused with a message naming the step. The JSON uses the Voice API's field names
(``onKeypressGoto``, ``createdAt``), so a flow written for that API reads the same here.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..auth import CapabilityError, check_identity

# Every action of the Voice API. Those in RUNNABLE_ACTIONS are what the engine can do today.
Action = Literal["transfer", "say", "play", "pause", "record", "fetchCallFlow", "sendKeys", "hangup"]
RUNNABLE_ACTIONS = frozenset({"transfer", "hangup"})

DEFAULT_TRANSFER_TIMEOUT = 30
MAX_TRANSFER_TIMEOUT = 600
CLIENT_PREFIX = "client:"


class CallFlowError(ValueError):
    """A call flow that cannot be stored or run, with the reason."""


class TransferOptions(BaseModel):
    """``transfer``: ring one or more clients; the first to answer is bridged."""

    model_config = ConfigDict(extra="forbid")

    destination: str
    timeout: int = Field(DEFAULT_TRANSFER_TIMEOUT, ge=1, le=MAX_TRANSFER_TIMEOUT)

    @field_validator("destination")
    @classmethod
    def _clients_only(cls, destination: str) -> str:
        identities(destination)  # raises with the reason
        return destination

    @property
    def identities(self) -> list[str]:
        return identities(self.destination)


def identities(destination: str) -> list[str]:
    """``client:a,client:b`` -> ``["a", "b"]``; raises :class:`ValueError` naming a bad item."""
    result = []
    for item in destination.split(","):
        item = item.strip()
        if not item.startswith(CLIENT_PREFIX):
            raise ValueError(f"destination {item!r} is not client:<identity>")
        identity = item.removeprefix(CLIENT_PREFIX)
        try:
            check_identity(identity)
        except CapabilityError as exc:
            raise ValueError(f"destination {item!r}: {exc}") from None
        if identity not in result:
            result.append(identity)
    return result


OPTIONS_MODELS: dict[str, type[BaseModel]] = {"transfer": TransferOptions}


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], min_length=1, max_length=64)
    action: Action
    options: dict[str, Any] = Field(default_factory=dict)
    on_keypress_goto: str | None = Field(None, alias="onKeypressGoto")
    on_keypress_var: str | None = Field(None, alias="onKeypressVar")
    conditions: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _runnable(self) -> Step:
        if self.action not in RUNNABLE_ACTIONS:
            raise ValueError(f"action {self.action!r} is not supported by this hub yet")
        model = OPTIONS_MODELS.get(self.action)
        if model is not None:
            model.model_validate(self.options)
        elif self.options:
            raise ValueError(f"action {self.action!r} takes no options")
        return self

    def typed_options(self) -> BaseModel | None:
        model = OPTIONS_MODELS.get(self.action)
        return model.model_validate(self.options) if model is not None else None


class CallFlow(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)
    title: str = ""
    record: bool = False
    steps: list[Step] = Field(min_length=1)
    created_at: float | None = Field(None, alias="createdAt")
    updated_at: float | None = Field(None, alias="updatedAt")

    @model_validator(mode="after")
    def _unique_step_ids(self) -> CallFlow:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} is used twice")
            seen.add(step.id)
        return self

    @classmethod
    def from_json(cls, text: str | bytes) -> CallFlow:
        """Parse and check a flow; :class:`CallFlowError` says what is wrong, one line per problem."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise CallFlowError(_describe(exc)) from None

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "flow"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
