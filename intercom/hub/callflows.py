"""Call flows, as the MessageBird Voice API models them: a titled list of steps run in order.

A flow is stored as JSON and checked when it is created, not when a caller is waiting: an
action the engine cannot run, or a transfer to something that is not ``client:<identity>``,
is refused with a message naming the step. The JSON uses the Voice API's field names
(``onKeypressGoto``, ``createdAt``), so a flow written for that API reads the same here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ..auth import CapabilityError, check_identity

Action = Literal["transfer", "say", "play", "pause", "record", "fetchCallFlow", "sendKeys", "hangup"]

DEFAULT_TRANSFER_TIMEOUT = 30
MAX_TRANSFER_TIMEOUT = 600
MAX_PAUSE_SECONDS = 3600
MAX_RECORD_SECONDS = 3600
CLIENT_PREFIX = "client:"
GROUP_PREFIX = "group:"  # every client the hub asserts is in the group (paired phones: group:phones)
MEDIA_SUFFIXES = (".wav", ".mp3")
MAX_MEDIA = 20  # files one play step plays in turn
MIN_MACHINE_TIMEOUT_MS, MAX_MACHINE_TIMEOUT_MS = 400, 10_000  # MessageBird's bounds
# The languages MessageBird transcribes a recording in (taken, and ignored: see NO_TRANSCRIPTION).
TRANSCRIBE_LANGUAGES = ("de-DE", "en-AU", "en-UK", "en-US", "es-ES", "es-LA", "fr-FR", "it-IT", "nl-NL", "pt-BR")
NO_MACHINES = "the hub calls apps and units, never an answering machine, so it detects none"
NO_TRANSCRIPTION = "the hub has no speech-to-text; the recording is kept, without a transcription"

# The Voice API's ``say`` languages and the espeak-ng voice file that speaks each (the nearest
# espeak-ng has where it has no voice for the region). Matched without regard to case. Voices are
# named by file: espeak-ng ignores a ``+f3`` variant after a region name such as ``en-gb``.
LANGUAGES = {
    "cy-gb": "cel/cy", "da-dk": "gmq/da", "de-de": "gmw/de", "el-gr": "grk/el", "en-au": "gmw/en",
    "en-gb": "gmw/en", "en-gb-wls": "gmw/en", "en-in": "gmw/en", "en-us": "gmw/en-US", "es-es": "roa/es",
    "es-mx": "roa/es-419", "es-us": "roa/es-419", "fi-fi": "urj/fi", "fr-ca": "roa/fr", "fr-fr": "roa/fr",
    "id-id": "poz/id", "is-is": "gmq/is", "it-it": "roa/it", "ja-jp": "jpx/ja", "ko-kr": "ko", "ml-in": "dra/ml",
    "nb-no": "gmq/nb", "nl-nl": "gmw/nl", "pl-pl": "zlw/pl", "pt-br": "roa/pt-BR", "pt-pt": "roa/pt",
    "ro-ro": "roa/ro", "ru-ru": "zle/ru", "sv-se": "gmq/sv", "ta-in": "dra/ta", "th-th": "tai/th",
    "tr-tr": "trk/tr", "uk-ua": "zle/uk", "vi-vn": "aav/vi", "zh-cn": "sit/cmn", "zh-hk": "sit/yue",
}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a flow: a line that names the place, and that place as a dotted path
    (``steps.0.options.payload``; empty for the flow as a whole) for an API to point at."""

    parameter: str
    message: str


class CallFlowError(ValueError):
    """A call flow that cannot be stored or run, with the reason, one :class:`Problem` per fault."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [Problem("", message)]

    @classmethod
    def of(cls, error: ValidationError) -> CallFlowError:
        found = problems(error.errors())
        return cls("; ".join(problem.message for problem in found), found)


class _Within(ValueError):
    """A model validator's problems with fields below it: raised whole, so that the path to the
    field survives pydantic's wrapping (its error names only the model)."""

    def __init__(self, *found: Problem) -> None:
        super().__init__("; ".join(problem.message for problem in found))
        self.problems = found


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # MessageBird's options that the hub takes but does not act on, each with why: set to anything
    # but its default, one is a warning (see CallFlow.ignored), so that a flow written for
    # MessageBird runs here and its author learns what it does not do.
    IGNORED: ClassVar[Mapping[str, str]] = {}

    def ignored(self) -> list[Problem]:
        """The options set here that the hub does not act on: the option and a line saying why."""
        found = []
        for name, why in self.IGNORED.items():
            field, value = type(self).model_fields[name], getattr(self, name)
            if value != field.default:
                option = field.alias or name
                found.append(Problem(option, f"{option} {json.dumps(value)} is ignored: {why}"))
        return found


class _MachineDetection(_Options):
    """MessageBird's answering-machine detection, for steps that talk to whoever answered."""

    if_machine: Literal["continue", "delay", "hangup"] = Field("continue", alias="ifMachine")
    machine_timeout: int | None = Field(
        None, alias="machineTimeout", ge=MIN_MACHINE_TIMEOUT_MS, le=MAX_MACHINE_TIMEOUT_MS, description="Milliseconds"
    )

    IGNORED: ClassVar[Mapping[str, str]] = {"if_machine": NO_MACHINES, "machine_timeout": NO_MACHINES}


class TransferOptions(_MachineDetection):
    """``transfer``: ring one or more clients; the first to answer is bridged.

    ``record``: ``in`` keeps what the caller says, ``out`` what the caller hears, ``both`` the two
    as the left and right channel of one file.
    """

    destination: str
    timeout: int = Field(DEFAULT_TRANSFER_TIMEOUT, ge=1, le=MAX_TRANSFER_TIMEOUT)
    record: Literal["in", "out", "both"] | None = None
    mask: bool = False

    IGNORED: ClassVar[Mapping[str, str]] = {
        **_MachineDetection.IGNORED,
        "mask": "the hub has no numbers to show instead: the callee sees who calls",
    }

    @field_validator("destination")
    @classmethod
    def _clients_only(cls, destination: str) -> str:
        identities(destination)  # raises with the reason
        return destination

    @property
    def identities(self) -> list[str]:
        return identities(self.destination)


class SayOptions(_MachineDetection):
    """``say``: speak ``payload`` to the caller (espeak-ng), ``repeat`` times."""

    payload: str = Field(min_length=1, max_length=1000)
    language: str = "en-GB"
    voice: Literal["male", "female"] = "female"
    repeat: int = Field(1, ge=1, le=10)

    @field_validator("language")
    @classmethod
    def _known_language(cls, language: str) -> str:
        if language.lower() not in LANGUAGES:
            raise ValueError(f"language {language!r} is not one of {', '.join(sorted(LANGUAGES))}")
        return language

    @property
    def espeak_voice(self) -> str:
        return LANGUAGES[self.language.lower()]


def _media_file_or_url(media: str) -> str:
    if media.startswith(("http://", "https://")):
        if not urlsplit(media).hostname:
            raise ValueError(f"media {media!r} is a URL without a host")
        return media
    if "://" in media:
        raise ValueError(f"media {media!r}: only http and https URLs can be fetched")
    path = PurePosixPath(media)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"media {media!r} must be a path inside the hub's media directory")
    if path.suffix.lower() not in MEDIA_SUFFIXES:
        raise ValueError(f"media {media!r} is not a .wav or .mp3 file")
    return media


Media = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_media_file_or_url)]


class PlayOptions(_MachineDetection):
    """``play``: WAV or MP3 files, from the hub's ``media`` directory or http(s) URLs: one, or a
    list played in turn (MessageBird takes both)."""

    media: Annotated[
        list[Media],
        BeforeValidator(lambda media: [media] if isinstance(media, str) else media),
        Field(min_length=1, max_length=MAX_MEDIA),
    ]


class PauseOptions(_Options):
    """``pause``: silence for ``length`` seconds (keys still count)."""

    length: float = Field(gt=0, le=MAX_PAUSE_SECONDS)


class RecordOptions(_Options):
    """``record``: keep what the caller says, until ``maxLength`` seconds (0: no limit of its
    own, as MessageBird has it), ``timeout`` seconds of silence (0: no limit) or a key
    (``finishOnKey``). ``onFinish`` gets the WAV in a POST."""

    max_length: int = Field(60, alias="maxLength", ge=0, le=MAX_RECORD_SECONDS)
    timeout: int = Field(5, ge=0, le=MAX_RECORD_SECONDS)
    finish_on_key: Literal["any", "#", "*", "none"] = Field("#", alias="finishOnKey")
    on_finish: str | None = Field(None, alias="onFinish")
    transcribe: bool = False
    transcribe_language: Literal[TRANSCRIBE_LANGUAGES] | None = Field(None, alias="transcribeLanguage")

    IGNORED: ClassVar[Mapping[str, str]] = {"transcribe": NO_TRANSCRIPTION, "transcribe_language": NO_TRANSCRIPTION}

    @field_validator("on_finish")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return url if url is None else http_url(url, "onFinish")


class FetchCallFlowOptions(_Options):
    """``fetchCallFlow``: POST the call to ``url``; the flow it answers replaces the steps left."""

    url: str

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return http_url(url, "url")


class SendKeysOptions(_Options):
    """``sendKeys``: DTMF to the caller; a comma waits half a second."""

    keys: str = Field(min_length=1, max_length=100, pattern=r"^[0-9A-Da-d*#,]+$")


def http_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} {url!r} is not an http(s) URL")
    return url


def identities(destination: str) -> list[str]:
    """``client:a,client:b,group:phones`` -> ``["a", "b", "group:phones"]``; raises :class:`ValueError`
    naming a bad item. A group stays named: who is in it is known only when it rings (the registrar)."""
    result = []
    for item in destination.split(","):
        item = item.strip()
        if not item.startswith((CLIENT_PREFIX, GROUP_PREFIX)):
            raise ValueError(f"destination {item!r} is not client:<identity> (nor group:<name>)")
        identity = item.removeprefix(CLIENT_PREFIX).removeprefix(GROUP_PREFIX)
        try:
            check_identity(identity)
        except CapabilityError as exc:
            raise ValueError(f"destination {item!r}: {exc}") from None
        named = item if item.startswith(GROUP_PREFIX) else identity
        if named not in result:
            result.append(named)
    return result


OPTIONS_MODELS: dict[str, type[_Options]] = {
    "transfer": TransferOptions,
    "say": SayOptions,
    "play": PlayOptions,
    "pause": PauseOptions,
    "record": RecordOptions,
    "fetchCallFlow": FetchCallFlowOptions,
    "sendKeys": SendKeysOptions,
}


class Condition(BaseModel):
    """A step runs only when every condition holds. ``>`` and ``<`` compare numbers when both
    sides are numbers, text otherwise; a variable that is not set is the empty text."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN would be stored as null

    variable: str = Field(min_length=1, max_length=100)
    operator: Literal["==", "!=", ">", "<"]
    value: str | int | float

    def holds(self, variables: dict[str, str]) -> bool:
        left, right = variables.get(self.variable, ""), str(self.value)
        try:
            left_number, right_number = float(left), float(right)
        except ValueError:
            ordered: tuple[object, object] = (left, right)
        else:
            ordered = (left_number, right_number)
        a, b = ordered
        if self.operator == "==":
            return a == b
        if self.operator == "!=":
            return a != b
        return a > b if self.operator == ">" else a < b  # type: ignore[operator]


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12], min_length=1, max_length=64)
    action: Action
    options: dict[str, Any] = Field(default_factory=dict)
    on_keypress_goto: str | None = Field(None, alias="onKeypressGoto", min_length=1, max_length=64)
    on_keypress_var: str | None = Field(None, alias="onKeypressVar", min_length=1, max_length=100)
    conditions: list[Condition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _options(self) -> Step:
        model = OPTIONS_MODELS.get(self.action)
        if model is not None:
            try:
                model.model_validate(self.options)
            except ValidationError as exc:
                found = problems(exc.errors(), "options")
                raise _Within(
                    *(replace(p, message=f"{self.action} step {self.id!r}: {p.message}") for p in found)
                ) from None
        elif self.options:
            raise _Within(Problem("options", f"action {self.action!r} takes no options"))
        return self

    def typed_options(self) -> _Options | None:
        model = OPTIONS_MODELS.get(self.action)
        return model.model_validate(self.options) if model is not None else None

    def runs_with(self, variables: dict[str, str]) -> bool:
        return all(condition.holds(variables) for condition in self.conditions)


class CallFlow(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)
    title: str = Field("", max_length=200)
    record: bool = False
    steps: list[Step] = Field(min_length=1, max_length=500)
    default: bool = False  # the flow a POST /v1/calls runs when it names none
    created_at: float | None = Field(None, alias="createdAt")
    updated_at: float | None = Field(None, alias="updatedAt")

    @model_validator(mode="after")
    def _unique_step_ids(self) -> CallFlow:
        seen: set[str] = set()
        for index, step in enumerate(self.steps):
            if step.id in seen:
                raise _Within(Problem(f"steps.{index}.id", f"step id {step.id!r} is used twice"))
            seen.add(step.id)
        for index, step in enumerate(self.steps):
            if step.on_keypress_goto is not None and step.on_keypress_goto not in seen:
                raise _Within(
                    Problem(
                        f"steps.{index}.onKeypressGoto",
                        f"step {step.id!r}: onKeypressGoto names no step of this flow ({step.on_keypress_goto!r})",
                    )
                )
        return self

    def ignored(self) -> list[Problem]:
        """The options this flow sets that the hub takes but does not act on, each with why."""
        found = []
        for index, step in enumerate(self.steps):
            options = step.typed_options()
            for problem in options.ignored() if options is not None else ():
                where = f"steps.{index}.options.{problem.parameter}"
                found.append(Problem(where, f"{step.action} step {step.id!r}: {problem.message}"))
        return found

    def index_of(self, step_id: str) -> int:
        return next(index for index, step in enumerate(self.steps) if step.id == step_id)

    @classmethod
    def from_json(cls, text: str | bytes) -> CallFlow:
        """Parse and check a flow; :class:`CallFlowError` says what is wrong, one line per problem."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise CallFlowError.of(exc) from None

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def problems(errors: Iterable[ErrorDetails], prefix: str = "", whole: str = "flow") -> list[Problem]:
    """Pydantic's errors as problems: each line starts with where it is (``whole`` when that is
    the object itself), and a validator's :class:`_Within` adds the path below it."""
    found = []
    for error in errors:
        where = _path(prefix, *error["loc"])
        cause = error.get("ctx", {}).get("error")
        inner = (
            cause.problems if isinstance(cause, _Within) else [Problem("", error["msg"].removeprefix("Value error, "))]
        )
        found.extend(
            Problem(_path(where, problem.parameter), f"{where or whole}: {problem.message}") for problem in inner
        )
    return found


def _path(*parts: str | int) -> str:
    return ".".join(str(part) for part in parts if part != "")
