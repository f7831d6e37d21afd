"""Writes what happens to calls into the call log (SQLite) and tells the webhooks.

Every status change of a call or a leg, and every recording kept, goes through here: the row is
stored at once (a hub that stops mid-call leaves a log that says how far the call got) and then
handed to the webhook dispatcher, which never blocks.

A disk that cannot be written (read-only, full) never fails a call: the row is held back in
memory, the latest version of each row, at most ``MAX_HELD_BACK`` rows (the oldest beyond that are
lost and counted), and written as soon as a write succeeds again (the next row, or the retry of
:class:`~intercom.hub.retention.Retention`). A hub stopped meanwhile loses what it held back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from typing import Any, Protocol

from .records import LEG_FINAL, CallRecord, LegRecord, PublishedRow, RecordingRecord, UnlockEvent, Webhook
from .storage import Storage

log = logging.getLogger(__name__)

MAX_HELD_BACK = 1_000  # rows kept in memory while the disk fails: ~1 kB each


class Publisher(Protocol):
    """Told of every row the call log writes (the webhooks, which store a delivery for each; the
    MQTT bridge's publishers, which only queue)."""

    async def publish(self, row: PublishedRow, created: bool, extra: Webhook | None = None) -> None: ...


class Publishers:
    """Several publishers as one (the webhooks, the MQTT bridge), each told in turn: one's fault
    never keeps the news from the next."""

    def __init__(self, *publishers: Publisher) -> None:
        self.publishers = publishers

    async def publish(self, row: PublishedRow, created: bool, extra: Webhook | None = None) -> None:
        for publisher in self.publishers:
            try:
                await publisher.publish(row, created, extra)
            except Exception:
                log.exception("publishing %s %s failed", type(row).__name__, row.id)


class Later:
    """A publisher told a moment after the row changed, in order, each row as it was then.

    The MQTT bridge's rendering and sending (about 13 messages a call, 0.3-0.5 ms of the hub's loop
    each on the 2-core test machine) then come after a call's set-up instead of amid it: with ``delay`` at
    20 ms the desk rings as soon with the bridge as without, and Home Assistant still hears the
    ring within ~35 ms of the press (bench/mqtt.py)."""

    def __init__(self, publisher: Publisher, delay: float = 0.02) -> None:
        self.publisher = publisher
        self.delay = delay
        self._pending: deque[tuple[PublishedRow, bool, Webhook | None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._telling: asyncio.Task[None] | None = None

    async def publish(self, row: PublishedRow, created: bool, extra: Webhook | None = None) -> None:
        self._pending.append((row.model_copy(), created, extra))  # later changes are later news
        if self._timer is None and self._telling is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._telling = asyncio.ensure_future(self._tell())

    async def _tell(self) -> None:
        """Rows that arrive while earlier ones are told are told after them, in the same run."""
        try:
            while self._pending:
                await self.publisher.publish(*self._pending.popleft())
        finally:
            self._telling = None


class CallLog:
    def __init__(self, storage: Storage, publisher: Publisher | None = None) -> None:
        self.storage = storage
        self.publisher = publisher
        self._webhooks: dict[str, Webhook] = {}  # a call's own webhook (POST /v1/calls), while it lasts
        self._held_back: dict[tuple[type, str], Any] = {}  # rows not written yet, oldest first
        self.lost = 0  # rows dropped from the held-back ones since start-up
        self._lost_unsaid = 0  # of those, not yet in the log line that says logging resumed

    async def close_unfinished(self, hub: str | None = None) -> int:
        """At start-up: calls a stopped hub left open end with their legs, and say why. ``hub``:
        another hub on a shared database that stopped with calls open and did not come back.

        They end when the hub was last known alive, not now: its heartbeat, the last row it wrote
        of the call, or the end of the audio a recording of it holds, whichever is latest (run
        :func:`~intercom.hub.recordings.recover_recordings` first, so that those are counted)."""
        heartbeat = await self.storage.last_alive(hub) or 0.0
        legs: dict[str, list[LegRecord]] = defaultdict(list)
        for leg in await self.storage.unfinished(LegRecord, tuple(LEG_FINAL), hub):
            legs[leg.call_id].append(leg)
        calls = {call.id: call for call in await self.storage.unfinished(CallRecord, ("ended",), hub)}
        for call_id in calls.keys() | legs.keys():
            call = calls.get(call_id)
            alive = max(heartbeat, call.updated_at if call else 0.0, *await self._last_signs(legs[call_id]))
            for leg in legs[call_id]:
                await self.update_leg(leg, status="hangup" if leg.answered_at else "failed", ended_at=alive)
            if call is not None:
                reason = call.reason or "the hub stopped during the call"
                await self.update_call(call, status="ended", reason=reason, ended_at=alive)
        return len(calls)

    async def _last_signs(self, legs: list[LegRecord]) -> list[float]:
        """When the hub last wrote each leg, and when the audio of each of their recordings ends."""
        signs = [leg.updated_at for leg in legs]
        for leg in legs:
            recordings, _ = await self.storage.page(RecordingRecord, parent=leg.id)
            signs += [recording.created_at + recording.duration for recording in recordings]
        return signs

    async def new_call(self, record: CallRecord, webhook: Webhook | None = None) -> CallRecord:
        if webhook is not None:
            self._webhooks[record.id] = webhook
        return await self._keep(record, created=True)

    async def update_call(self, record: CallRecord, **changes: Any) -> None:
        if record.status == "ended":
            return  # the end is final; later news (a BYE crossing ours) changes nothing
        if changes.get("status") == "ended":
            changes.setdefault("ended_at", time.time())
        await self._change(record, changes)
        if record.status == "ended":
            self._webhooks.pop(record.id, None)

    async def new_leg(self, leg: LegRecord) -> LegRecord:
        return await self._keep(leg, created=True)

    async def update_leg(self, leg: LegRecord | None, **changes: Any) -> None:
        if leg is None or leg.status in LEG_FINAL:
            return
        if changes.get("status") == "ongoing":
            changes.setdefault("answered_at", time.time())
        if changes.get("status") in LEG_FINAL:
            changes.setdefault("ended_at", time.time())
        await self._change(leg, changes)

    async def recording_started(self, recording: RecordingRecord) -> None:
        """A recording's row as its file is made (status "recording"), so that a hub that dies
        mid-recording finds it at the next start; told to nobody until it is kept. A disk that
        refuses it leaves the recording without that safety net, and the call going on."""
        await self.storage.try_put(recording)

    async def recording_dropped(self, recording: RecordingRecord) -> None:
        """A started recording that holds nothing after all: its row goes (or, on a disk that
        refuses, at the next start, which finds no audio in it)."""
        with contextlib.suppress(*self.storage.errors):
            await self.storage.delete(RecordingRecord, recording.id)

    async def new_recording(self, recording: RecordingRecord) -> None:
        """A recording kept (status "done"): stored and told to the webhooks."""
        await self._keep(recording, created=True)

    async def publish_event(self, event: UnlockEvent) -> None:
        """A door's event: stored (the building's audit, pruned with the call log), then told to
        the webhooks; a disk that refuses it fails no door (:attr:`Storage.fault` says so)."""
        await self.storage.try_put(event)
        if self.publisher is not None:
            try:
                await self.publisher.publish(event, created=True)
            except Exception:  # a webhook must never break the door's report
                log.exception("publishing the door's %s event failed", event.event)

    async def _change(self, row: CallRecord | LegRecord, changes: dict[str, Any]) -> None:
        if all(getattr(row, name) == value for name, value in changes.items()):
            return
        for name, value in changes.items():
            setattr(row, name, value)
        await self._keep(row, created=False)

    @property
    def held_back(self) -> int:
        return len(self._held_back)

    async def write_held_back(self) -> None:
        """Write the rows a failing disk held back, oldest first, until one fails again."""
        for key, row in list(self._held_back.items()):
            if not await self.storage.try_put(row):
                return
            del self._held_back[key]
        if self._lost_unsaid:
            log.warning("call log: %d row(s) were lost while the disk could not be written", self._lost_unsaid)
            self._lost_unsaid = 0

    async def _keep(self, row: Any, created: bool) -> Any:
        if await self.storage.try_put(row):
            if self._held_back:
                await self.write_held_back()
        else:
            self._hold_back(row)
        if self.publisher is not None:
            call_id = row.id if isinstance(row, CallRecord) else row.call_id
            try:
                await self.publisher.publish(row, created, self._webhooks.get(call_id))
            except Exception:  # a webhook must never break a call
                log.exception("publishing %s %s failed", type(row).__name__, row.id)
        return row

    def _hold_back(self, row: Any) -> None:
        key = (type(row), row.id)
        self._held_back.pop(key, None)  # the latest version, at the end: the newest
        self._held_back[key] = row
        if len(self._held_back) > MAX_HELD_BACK:
            del self._held_back[next(iter(self._held_back))]
            self.lost += 1
            self._lost_unsaid += 1
