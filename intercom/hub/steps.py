"""The Voice API's actions, one coroutine each, run by :mod:`intercom.hub.flow_engine`.

An action gets the call, its step and the step's checked options, and answers what comes next:
:data:`NEXT`, :data:`END`, a :class:`Goto` or :class:`Replace` (a fetched flow). Steps that talk
to the caller first have the hub answer it (:meth:`HubCall.establish`). A prompt that cannot be
made (espeak-ng missing, a media URL down) is logged and skipped: a visitor at the door still
reaches the next step. A ``fetchCallFlow`` that fails ends the call, with the reason logged and
kept in the call log, because the flow has nothing left to do.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from ..http_client import OutboundRefused, httpx_module, outbound_module
from ..media import MediaError, SpeechError, load_media, speak
from ..media.tracks import SAMPLE_RATE
from .callflows import (
    CallFlow,
    CallFlowError,
    FetchCallFlowOptions,
    PauseOptions,
    PlayOptions,
    RecordOptions,
    SayOptions,
    SendKeysOptions,
    Step,
    TransferOptions,
)
from .flow_media import FlowMedia
from .records import RecordingRecord

if TYPE_CHECKING:
    from .calls import HubCall

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 5.0
REPEAT_GAP_SECONDS = 0.5  # between the repeats of a ``say``
SILENCE_CHECK_SECONDS = 0.1  # how often a recording looks at its trailing silence
ON_FINISH_TIMEOUT = 30.0


class _Signal(enum.Enum):
    NEXT = "next"
    END = "end"


NEXT = _Signal.NEXT
END = _Signal.END


@dataclass(frozen=True)
class Goto:
    step_id: str


@dataclass(frozen=True)
class Replace:
    steps: list[Step]
    record: bool


Outcome = _Signal | Goto | Replace


@dataclass
class StepRun:
    call: HubCall
    step: Step
    options: Any  # the step's options model (TransferOptions, SayOptions ...), None for hangup
    on_key: Callable[[str], bool] | None = None  # set by a step that takes keys itself


def _options(run: StepRun, model: type[BaseModel]) -> Any:
    assert isinstance(run.options, model)
    return run.options


async def _transfer(run: StepRun) -> Outcome:
    answered = await run.call.transfer(_options(run, TransferOptions))
    return END if answered else NEXT


async def _say(run: StepRun) -> Outcome:
    options: SayOptions = _options(run, SayOptions)
    # espeak-ng speaks while the caller's leg connects: a prompt not yet made costs no extra wait
    speaking = asyncio.ensure_future(
        speak(options.payload, options.espeak_voice, options.voice, run.call.services.cache_dir)
    )
    media = await run.call.establish()
    if media is None:
        speaking.cancel()
        return END
    try:
        samples = await run.call.until_ended(speaking)
    except SpeechError as exc:
        log.warning("call %s: say step %s skipped: %s", run.call.id, run.step.id, exc)
        return NEXT
    if samples is None:
        return END
    gap = np.zeros(round(REPEAT_GAP_SECONDS * SAMPLE_RATE), dtype=np.int16)
    for repeat in range(options.repeat):
        if not await _play(run.call, media, samples if repeat == 0 else np.concatenate([gap, samples])):
            break
    return NEXT


async def _play_media(run: StepRun) -> Outcome:
    """Each file in turn; one that cannot be had is logged and skipped, the next one played."""
    options: PlayOptions = _options(run, PlayOptions)
    media = await run.call.establish()
    if media is None:
        return END
    services = run.call.services
    for item in options.media:
        try:
            samples = await run.call.until_ended(
                load_media(item, services.media_dir, services.cache_dir, policy=services.outbound)
            )
        except MediaError as exc:
            log.warning("call %s: play step %s: %s skipped: %s", run.call.id, run.step.id, item, exc)
            continue
        if samples is None:
            return END
        if not await _play(run.call, media, samples):
            break  # the call ended, or the step was left
    return NEXT


async def _play(call: HubCall, media: FlowMedia, samples: np.ndarray) -> bool:
    """Play to the end (``True``), or stop at once when the step is left or the call ends."""
    try:
        return bool(await call.until_ended(media.audio.play(samples)))
    finally:
        media.audio.interrupt()


async def _pause(run: StepRun) -> Outcome:
    options: PauseOptions = _options(run, PauseOptions)
    if await run.call.establish() is None:
        return END
    await run.call.until_ended(asyncio.sleep(options.length))
    return NEXT


async def _record(run: StepRun) -> Outcome:
    options: RecordOptions = _options(run, RecordOptions)
    call = run.call
    if await call.establish() is None:
        return END
    recording = await call.start_recording("ivr", call.caller_record, said=True, heard=False)
    finished = asyncio.Event()

    def finish_on(key: str) -> bool:
        if options.finish_on_key == "none" or options.finish_on_key not in ("any", key):
            return False
        finished.set()
        return True

    run.on_key = finish_on
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (options.max_length or math.inf)  # 0: no limit but recording_max_seconds
    try:
        while not finished.is_set() and not call.over and loop.time() < deadline:
            if recording.cut is not None:
                break  # a limit or the disk stopped it: the flow goes on
            if options.timeout and recording.silent_seconds >= options.timeout:
                break
            wait = min(SILENCE_CHECK_SECONDS, deadline - loop.time())
            await call.until_ended(_wait_for(finished, wait))
    finally:
        kept = await recording.stop()
    if kept is not None and options.on_finish:
        call.services.spawn(_send_recording(call, kept, options.on_finish))
    return NEXT


async def _wait_for(event: asyncio.Event, seconds: float) -> None:
    try:
        async with asyncio.timeout(max(seconds, 0)):
            await event.wait()
    except TimeoutError:
        pass


async def _send_recording(call: HubCall, recording: RecordingRecord, url: str) -> None:
    """``onFinish``: POST the WAV with what it is (multipart: the fields and ``file``)."""
    services = call.services
    fields = {
        "callID": recording.call_id,
        "legID": recording.leg_id,
        "recordingID": recording.id,
        "duration": str(recording.duration),
    }
    httpx = await httpx_module()
    outbound = await outbound_module()
    try:
        content = (services.data_dir / recording.path).read_bytes()
        files = {"file": (f"{recording.id}.wav", content, "audio/wav")}
        http = await services.http()
        async with outbound.opened(
            http, services.outbound, "POST", url, data=fields, files=files, timeout=ON_FINISH_TIMEOUT
        ) as response:
            response.raise_for_status()  # the answer itself is not read: nothing in it is used
    except (OSError, httpx.HTTPError, OutboundRefused) as exc:
        log.warning("call %s: recording %s not sent to %s: %s", call.id, recording.id, url, exc)


async def _fetch_call_flow(run: StepRun) -> Outcome:
    options: FetchCallFlowOptions = _options(run, FetchCallFlowOptions)
    call = run.call
    body = {
        "callID": call.record.id,
        "source": call.record.source,
        "destination": call.record.destination,
        "variables": call.variables,
    }
    services = call.services
    http = await services.http()
    httpx = await httpx_module()
    outbound = await outbound_module()
    policy = services.outbound
    try:
        async with asyncio.timeout(FETCH_TIMEOUT):  # the whole exchange, however slowly it trickles
            answer = await call.until_ended(
                outbound.read(
                    http,
                    policy,
                    "POST",
                    options.url,
                    json=body,
                    max_bytes=policy.max_flow_bytes,
                    setting=policy.setting("max_flow_bytes"),
                )
            )
        if answer is None:
            return END
        response, content = answer
        response.raise_for_status()
        flow = CallFlow.from_json(content)
    except (TimeoutError, httpx.TimeoutException):
        failure = f"no answer within {FETCH_TIMEOUT:g} s"
    except (httpx.HTTPError, CallFlowError, OutboundRefused) as exc:
        failure = _first_line(exc)
    else:
        log.info("call %s: %s answered %d steps", call.id, options.url, len(flow.steps))
        return Replace(flow.steps, flow.record)
    reason = f"fetchCallFlow {options.url} failed: {failure}"
    log.warning("call %s: %s", call.id, reason)
    call.record.reason = reason
    return END


def _first_line(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0]


async def _send_keys(run: StepRun) -> Outcome:
    options: SendKeysOptions = _options(run, SendKeysOptions)
    if await run.call.establish() is None:
        return END
    await run.call.send_keys(options.keys)
    return NEXT


async def _hangup(run: StepRun) -> Outcome:
    return END


ACTIONS: dict[str, Callable[[StepRun], Awaitable[Outcome]]] = {
    "transfer": _transfer,
    "say": _say,
    "play": _play_media,
    "pause": _pause,
    "record": _record,
    "fetchCallFlow": _fetch_call_flow,
    "sendKeys": _send_keys,
    "hangup": _hangup,
}
