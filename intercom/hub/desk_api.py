"""``/desk/api/``: what a paired phone's page may ask of the hub, with its device credential.

Pairing trades a one-time code for the credential (bad codes are counted per source address:
:class:`BadCodes`); every other route takes the credential as ``Authorization: Bearer`` and shows
the desk's view only: tokens for the phone's own identity, whether the doors are online, the
doors' calls and their voicemails. Nothing an admin key reads (keys, flows, webhooks, other
recordings) is reachable from here. Refusals use the hub's ``{"errors": [...]}`` envelope.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .api.calls import recording_file
from .api.common import json_body
from .api.errors import ApiError
from .callflows import CLIENT_PREFIX, Problem
from .config import HubConfig
from .pairing import CodeGone, Phone, PhoneBook
from .records import CallRecord, LegRecord, RecordingRecord
from .storage import Storage

log = logging.getLogger(__name__)

PREFIX = "/desk/api"
MAX_CALLS = 100
MAX_SOURCES = 10_000  # addresses whose bad codes are remembered; beyond, the oldest are forgotten
CHALLENGE = {"WWW-Authenticate": "Bearer"}


class PairBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=100)
    device: str = Field(min_length=1, max_length=100)


class BadCodes:
    """Bad pairing codes per source address in a sliding window: a guesser gets 429 after a few,
    which with 256-bit codes only keeps the log and the database quiet."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._seen: dict[str, deque[float]] = {}

    def retry_after(self, source: str, now: float) -> float:
        """Seconds until ``source`` may try again; 0 when it may now."""
        times = self._seen.get(source)
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times or len(times) < self.limit:
            return 0.0
        return times[0] + self.window - now

    def add(self, source: str, now: float) -> None:
        if source not in self._seen and len(self._seen) >= MAX_SOURCES:
            del self._seen[next(iter(self._seen))]
        self._seen.setdefault(source, deque()).append(now)


def _storage(request: Request) -> Storage:
    return request.app.state.storage


async def _phone(request: Request) -> Phone:
    """The phone whose credential the request carries: 401 without one, or for an unknown or revoked one."""
    scheme, _, credential = (request.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise ApiError(401, Problem("", "send the header Authorization: Bearer <credential>"), headers=CHALLENGE)
    phone = await PhoneBook(_storage(request)).phone_of(credential.strip())
    if phone is None:
        raise ApiError(401, Problem("", "unknown or revoked device credential: pair again"), headers=CHALLENGE)
    return phone


PairedPhone = Annotated[Phone, Depends(_phone)]
router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.post("/pair", status_code=201)
async def pair(request: Request) -> dict[str, str]:
    """A one-time code for the device credential: 410 once used or expired, 429 after too many bad codes."""
    config: HubConfig = request.app.state.config
    bad_codes: BadCodes = request.app.state.bad_pairing_codes
    source, now = request.client.host if request.client else "", time.monotonic()
    if (wait := bad_codes.retry_after(source, now)) > 0:
        log.warning(
            "pairing from %s refused: %d bad codes in %.0f s, the limit pairing_max_bad_codes", source,
            config.pairing_max_bad_codes, config.pairing_bad_code_window,
        )  # fmt: skip
        raise ApiError(
            429,
            Problem("", f"too many bad pairing codes from {source}: try again in {math.ceil(wait)} s"),
            headers={"Retry-After": str(math.ceil(wait))},
        )
    try:
        body = PairBody.model_validate(await json_body(request))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ApiError(422, Problem(".".join(map(str, first["loc"])), first["msg"])) from None
    try:
        paired = await PhoneBook(_storage(request)).pair(body.code, body.device)
    except CodeGone as exc:
        bad_codes.add(source, now)
        raise ApiError(410, Problem("code", str(exc))) from None
    log.info("phone %s paired (%s)", paired.identity, body.device)
    return {"credential": paired.credential, "identity": paired.identity}


@router.post("/token")
async def token(request: Request, phone: PairedPhone) -> dict[str, Any]:
    """A short-lived JWT for the phone's own identity, with a desk's capabilities."""
    config: HubConfig = request.app.state.config
    jwt, expires_at = await PhoneBook(_storage(request)).token(phone, config.desk_token_seconds)
    return {"jwt": jwt, "expiresAt": expires_at}


@router.get("/doors")
async def doors(request: Request, phone: PairedPhone) -> dict[str, Any]:
    """Each door the hub knows of, and whether it is registered now."""
    config: HubConfig = request.app.state.config
    registrar = request.app.state.registrar
    return {"doors": [{"identity": door, "online": bool(await registrar.find(door))} for door in config.doors]}


@router.get("/calls")
async def calls(
    request: Request, phone: PairedPhone, limit: Annotated[int, Query(ge=1, le=MAX_CALLS)] = 20
) -> dict[str, Any]:
    """The doors' calls (those the desks and phones are rung for), newest first, with their voicemail."""
    config: HubConfig = request.app.state.config
    storage = _storage(request)
    sources = [f"{CLIENT_PREFIX}{door}" for door in config.doors]
    return {"calls": [await _call_view(storage, call) for call in await storage.calls_from(sources, limit)]}


@router.get("/voicemails/{recording_id}.wav", response_class=FileResponse)
async def voicemail(request: Request, recording_id: str, phone: PairedPhone) -> FileResponse:
    """A voicemail of a door's call; 404 for any other recording."""
    storage = _storage(request)
    recording = await storage.get(RecordingRecord, recording_id)
    call = await storage.get(CallRecord, recording.call_id) if recording is not None else None
    config: HubConfig = request.app.state.config
    if recording is None or call is None or not _is_voicemail(recording, call, config):
        raise ApiError(404, Problem("", f"no voicemail {recording_id!r}"))
    return recording_file(storage, recording)


def _is_voicemail(recording: RecordingRecord, call: CallRecord, config: HubConfig) -> bool:
    """A ``record`` step's recording (not a transfer's) of a door's call."""
    return recording.kind == "ivr" and call.source.removeprefix(CLIENT_PREFIX) in config.doors


async def _call_view(storage: Storage, call: CallRecord) -> dict[str, Any]:
    legs, _ = await storage.page(LegRecord, parent=call.id)
    answered = [leg for leg in legs if leg.direction == "outgoing" and leg.answered_at is not None]
    voicemail = None
    for leg in legs:
        recordings, _ = await storage.page(RecordingRecord, parent=leg.id)
        for recording in recordings:
            if recording.kind == "ivr" and recording.pruned_at is None and recording.status == "done":
                voicemail = {
                    "id": recording.id,
                    "duration": recording.duration,
                    "url": f"{PREFIX}/voicemails/{recording.id}.wav",
                }
    return {
        "id": call.id,
        "from": call.source.removeprefix(CLIENT_PREFIX),
        "to": call.destination,
        "startedAt": call.created_at,
        "endedAt": call.ended_at,
        "status": call.status,
        "answeredBy": answered[0].destination.removeprefix(CLIENT_PREFIX) if answered else None,
        "voicemail": voicemail,
    }


def install(app: FastAPI, config: HubConfig) -> None:
    """Serve ``/desk/api/`` from ``app``."""
    app.state.bad_pairing_codes = BadCodes(config.pairing_max_bad_codes, config.pairing_bad_code_window)
    app.include_router(router)
