"""The call log as a person reads it over SSH: ``intercom calls list`` and ``calls show``, and the
demo's closing lines (local time, who rang and who answered, talk time, recordings)."""

from __future__ import annotations

import time

from .records import CallRecord, LegRecord, RecordingRecord
from .storage import Storage


async def call_list(storage: Storage, limit: int) -> list[str]:
    """The latest ``limit`` calls, newest first, each with whom it rang and its recordings."""
    calls, total = await storage.page(CallRecord, limit=limit, newest_first=True)
    lines = [] if calls else ["no calls"]
    for call in calls:
        legs, recordings = await _legs_and_recordings(storage, call.id)
        talked = max((leg.duration for leg in legs if leg.direction == "outgoing"), default=0)
        line = f"{clock(call.created_at)}  {call.source} → {call.destination}  {call.status}"
        if talked:
            line += f", talked {minutes(talked)}"
        lines.append(line + (f"  ({call.reason})" if call.reason else ""))
        rung = [_rung(leg) for leg in legs if leg.direction == "outgoing"]
        if rung:
            lines.append(f"    rang {'; '.join(rung)}")
        for recording in recordings:
            lines.append(f"    recording {minutes(recording.duration)}  {_file(storage, recording)}")
    if total > len(calls):
        lines.append(f"({total - len(calls)} older calls not shown; --limit N shows more)")
    return lines


async def call_detail(storage: Storage, call_id: str) -> list[str] | None:
    """One call with each of its legs and recordings; ``None`` when there is no such call."""
    call = await storage.get(CallRecord, call_id)
    if call is None:
        return None
    legs, recordings = await _legs_and_recordings(storage, call.id)
    ended = f", ended {clock(call.ended_at)}" if call.ended_at is not None else ""
    lines = [
        f"call {call.id}: {call.status}" + (f" ({call.reason})" if call.reason else ""),
        f"  from {call.source} to {call.destination}, call flow {call.call_flow_id or '-'}",
        f"  started {clock(call.created_at)}{ended}",
        "legs:" if legs else "legs: none",
    ]
    for leg in legs:
        answered = f"answered {clock(leg.answered_at)}, talked {minutes(leg.duration)}" if leg.answered_at else ""
        lines.append(
            f"  {leg.id}  {leg.direction:<8}  {leg.source} → {leg.destination}  {leg.status}  {answered}".rstrip()
        )
    lines.append("recordings:" if recordings else "recordings: none")
    for recording in recordings:
        lines.append(
            f"  {recording.id}  {recording.kind:<8}  {minutes(recording.duration)}  leg {recording.leg_id}  "
            f"{_file(storage, recording)}" + (f"  (stopped early: {recording.cut})" if recording.cut else "")
        )
    return lines


def _file(storage: Storage, recording: RecordingRecord) -> str:
    """Where its WAV is, or that it went to keep the recordings quota."""
    if recording.pruned_at is not None:
        return f"(pruned {clock(recording.pruned_at)}: the recordings quota)"
    return str(storage.data_dir / recording.path)


async def _legs_and_recordings(storage: Storage, call_id: str) -> tuple[list[LegRecord], list[RecordingRecord]]:
    legs, _ = await storage.page(LegRecord, parent=call_id)
    recordings = [recording for leg in legs for recording in (await storage.page(RecordingRecord, parent=leg.id))[0]]
    return legs, recordings


def _rung(leg: LegRecord) -> str:
    """``desk: answered 0:42`` or ``kitchen: no_answer``: who was rung, and how it went."""
    name = leg.destination.removeprefix("client:")
    return f"{name}: answered {minutes(leg.duration)}" if leg.answered_at else f"{name}: {leg.status}"


def clock(seconds: float) -> str:
    """A moment in local time, as the unit's owner reads a log."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02}"
