"""The B2BUA: a call is the party its flow talks to, plus the legs the flow rings, bridged in the hub.

A call from a client starts with an INVITE to ``sip:00000@<hub>`` carrying its JWT; a call the
Voice API makes (POST /v1/calls) starts by ringing a client, who becomes the party once it
answers. The flow (:mod:`intercom.hub.flow_engine`) then runs step by step. The hub answers a
caller itself as soon as a step speaks, plays, listens or records; ``transfer`` forks an INVITE
to every device of every listed identity, relays the first 180, bridges the first 200 and
cancels the rest. The call ends for both sides when either sends BYE or loses its socket; a
caller nobody answered gets the best failure the callees gave (a 6xx first, else the lowest
code), or 480. The hub ends a call itself at its maximum duration, and when an answered leg has
sent no RTP for the media timeout (:mod:`intercom.hub.call_limits`). Every change is written to
the call log as it happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..http_client import OutboundPolicy, new_client
from ..media import AudioBridge, MediaPolicy, new_peer_connection, packets_received
from ..media.tasks import cancel_and_wait
from ..sip import Dialog, Response
from ..sip.dtmf import DTMF_CONTENT_TYPE, dtmf_body
from ..transport import ConnectionClosed, SipConnection
from .call_limits import CallLimits
from .call_log import CallLog
from .callflows import CLIENT_PREFIX, DEFAULT_TRANSFER_TIMEOUT, CallFlow, TransferOptions
from .edge_flows import hub_address
from .flow_engine import run_flow
from .flow_media import FlowMedia
from .legs import CalleeLeg, CallerLeg, HubAddress, send_bye
from .recordings import Recording
from .records import CallRecord, LegRecord, LegStatus, RecordingKind
from .registrar import Registrar
from .retention import StorageLimits
from .storage_fault import StorageFault

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

NOBODY = (480, "Temporarily Unavailable")
CANCELLED = (487, "Request Terminated")
DECLINED = (603, "Decline")
CANCEL_ANSWER_TIMEOUT = 5.0  # how long a cancelled device may take to send its 487
DTMF_SENT_MS = 100
ACK_TIMEOUT = 5.0  # how long keys for a caller wait for the ACK of the hub's answer
BUSY_CODES = frozenset({486, 600, 603})
MEDIA_CHECKS = 5  # looks at the legs' packet counts per media timeout: a dead leg ends within 1.2 timeouts
MAX_QUEUED_KEYS = 32  # DTMF keys kept for a step that reads none yet; a peer sending more has the rest dropped
NO_ANSWER_CODES = frozenset({408, 480})

T = TypeVar("T")


@dataclass
class FlowServices:
    """What steps need beyond SIP: the data directory's files, an HTTP client, the call log."""

    data_dir: Path
    call_log: CallLog
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    storage_limits: StorageLimits = field(default_factory=StorageLimits)
    recording_sync_seconds: float | None = None  # see HubConfig
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    recordings_cut: Counter[str] = field(default_factory=Counter)  # recordings stopped early, by why
    _http: httpx.AsyncClient | None = None

    async def http(self) -> httpx.AsyncClient:
        """The client of ``fetchCallFlow`` and ``onFinish``, made at first use."""
        if self._http is None:
            self._http = await new_client(self.outbound)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the call (an ``onFinish`` upload), keeping a reference until done."""
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"  # what ``play`` steps may name

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"  # spoken prompts and fetched media

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    @property
    def fault(self) -> StorageFault:
        return self.call_log.storage.fault


@dataclass
class LegStats:
    """What the browser client reports about its leg (stats INFO, the post-dial-delay MESSAGE).

    A browser sends a stats INFO every few seconds for the life of the call (~1.7 kB each), and
    nothing reads more than the latest: so the latest and a count are kept, whatever the length
    of the call."""

    last_report: str | None = None
    reports: int = 0
    post_dial_delay_ms: float | None = None

    def add_report(self, report: str) -> None:
        self.last_report = report
        self.reports += 1


class HubCall:
    """One call: its party, the devices being rung, the bridge once one answers, and its log rows."""

    def __init__(
        self,
        caller: CallerLeg | CalleeLeg | None,
        caller_name: str,
        variables: dict[str, str],
        registrar: Registrar,
        hub: HubAddress,
        media: MediaPolicy,
        services: FlowServices,
        limits: CallLimits,
        record: CallRecord,
        caller_record: LegRecord | None = None,
        caller_key: str | None = None,
    ) -> None:
        self.caller = caller  # the party; None while a Voice API call still rings its client
        self.caller_key = caller_key  # the access key of the caller's token, if a client called
        self.caller_name = caller_name
        self.variables = variables
        self.registrar = registrar
        self.hub = hub
        self.media = media
        self.services = services
        self.limits = limits
        self.record = record
        self.caller_record = caller_record
        self.callee: CalleeLeg | None = None
        self.bridge: AudioBridge | None = None
        self.flow_media: FlowMedia | None = None
        self.failure = NOBODY
        self.ended = asyncio.Event()
        self.keys: asyncio.Queue[str] = asyncio.Queue(MAX_QUEUED_KEYS)
        self.keys_dropped = 0
        self.stats = {"caller": LegStats(), "callee": LegStats()}
        self.recordings: list[Recording] = []
        self.record_whole_call = False  # the flow's ``record: true``: from the hub's answer to the end
        self._ringing: list[CalleeLeg] = []
        self._hung_up: set[str] = set()  # the sides that sent or were sent BYE

    @property
    def id(self) -> str:
        """The key of the call while it runs: the caller's Call-ID, or the call's id for a Voice API call."""
        return self.caller.call_id if isinstance(self.caller, CallerLeg) else self.record.id

    @property
    def log(self) -> CallLog:
        return self.services.call_log

    @property
    def established(self) -> bool:
        """The party's dialog is up: the hub answered the caller, or the client answered the hub."""
        return self.caller is not None and self.caller.dialog is not None

    @property
    def over(self) -> bool:
        """Ended, or refused before anyone answered: no step has anything left to do."""
        if self.ended.is_set() or self.caller is None:
            return True
        return isinstance(self.caller, CallerLeg) and self.caller.answered and self.caller.dialog is None

    async def run(self, flow: CallFlow) -> None:
        """Run ``flow`` until it ends or the call reaches one of its limits, which hangs it up."""
        flow_run = asyncio.create_task(self._run_flow(flow), name=f"flow of call {self.id}")
        watch = asyncio.create_task(self._limit_reached(), name=f"limits of call {self.id}")
        try:
            await asyncio.wait({flow_run, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch.done():
                reason = watch.result()
                log.warning("call %s: hung up: %s", self.id, reason)
                self.limits.hung_up += 1
                self.record.reason = reason
                await self.hang_up(reason, failure=(480, f"Temporarily Unavailable ({reason})"))
            await flow_run
        finally:
            for task in (watch, flow_run):
                if not task.done():  # a task that ended has said how already
                    await cancel_and_wait(task)
            await self.refuse_caller()  # a flow that ends (or fails) unanswered must not leave the caller ringing
            await self.end(by=None)
            await self.close()

    async def _run_flow(self, flow: CallFlow) -> None:
        """A Voice API call first rings its client (as long as a ``transfer`` rings), then runs ``flow``."""
        if self.caller is None:
            await self._ring_party(DEFAULT_TRANSFER_TIMEOUT)
        if not self.over:
            await run_flow(flow, self)

    async def _limit_reached(self) -> str:
        """Wait until the call has lasted its maximum duration, or an answered leg has sent no RTP
        for the media timeout; say which, naming the setting. The limits are read at every look,
        so a hub whose settings change applies them to the calls already going."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        heard: dict[str, tuple[int, float]] = {}  # per answered side: packets so far, and since when
        while (now := loop.time()) < started + (longest := self.limits.max_call_duration):
            quiet = self.limits.media_timeout
            for side, leg in self._media_legs():
                count = packets_received(leg.media)
                if heard.get(side, (None,))[0] != count:
                    heard[side] = (count, now)
                elif now - heard[side][1] >= quiet:
                    who = leg.identity or "anonymous"
                    return f"no audio from the {side} ({who}) for {quiet:g} s, the limit media_timeout"
            await asyncio.sleep(min(quiet / MEDIA_CHECKS, started + longest - now))
        return f"the call lasted {longest:g} s, the limit max_call_duration"

    def _media_legs(self) -> list[tuple[str, CallerLeg | CalleeLeg]]:
        """The sides whose media is up: answered by the hub, or answering it."""
        legs = (("caller", self.caller), ("callee", self.callee))
        return [(side, leg) for side, leg in legs if leg is not None and leg.dialog is not None]

    def identities(self) -> set[str]:
        """The clients this call holds (what :class:`CallLimits` counts): the one that called or a
        Voice API call rings, the device that answered, and the devices ringing."""
        legs = (self.caller, self.callee, *self._ringing)
        found = {leg.identity for leg in legs if leg is not None and leg.identity is not None}
        if self.caller is None:  # a Voice API call, before its client answers
            found.add(self.record.destination.removeprefix(CLIENT_PREFIX))
        return found

    def key_pressed(self, key: str) -> None:
        """A DTMF key from the party for the flow; past :data:`MAX_QUEUED_KEYS` unread, dropped."""
        if self.keys.full():
            self.keys_dropped += 1
            if self.keys_dropped == 1:
                log.warning("call %s: %d keys unread: dropping the keys after them", self.id, MAX_QUEUED_KEYS)
            return
        self.keys.put_nowait(key)

    async def until_ended(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or ``None`` (and ``work`` cancelled) once the call ends first."""
        task = asyncio.ensure_future(work)
        ended = asyncio.create_task(self.ended.wait())
        try:
            await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return None if task.cancelled() else task.result()

    # -- the party ----------------------------------------------------------------------------

    async def establish(self) -> FlowMedia | None:
        """Answer the caller with the hub's own audio (once); ``None`` when the call is over."""
        if self.over:
            return None
        if self.flow_media is None:
            assert self.caller is not None
            if isinstance(self.caller, CallerLeg) and self.caller.dialog is None:
                try:
                    await self.caller.answer(self.identity_of("callee"))
                except ConnectionClosed:
                    log.info("call %s: the caller left as the hub answered", self.id)
                    self.ended.set()
                    return None
                await self._answered(self.caller_record)
            self.flow_media = FlowMedia(self.caller.media)
            self.flow_media.start()
            if self.record_whole_call:
                await self.start_recording("call", self.caller_record, said=True, heard=True)
        return self.flow_media

    async def start_recording(self, kind: RecordingKind, leg: LegRecord | None, said: bool, heard: bool) -> Recording:
        assert self.flow_media is not None and leg is not None
        recording = Recording(self.services, leg, kind, self.flow_media, said=said, heard=heard)
        self.recordings.append(recording)
        await recording.start()
        return recording

    async def send_keys(self, keys: str) -> None:
        """DTMF to the party, one INFO per key, as a browser sends them; a comma waits half a second.

        Not before the caller's ACK: a request that overtakes our 200 finds no dialog there yet."""
        if isinstance(self.caller, CallerLeg):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ACK_TIMEOUT):
                    await self.until_ended(self.caller.acknowledged.wait())
        for key in keys:
            if self.over or self.caller is None or self.caller.dialog is None or self.caller.connection.closed:
                return
            if key == ",":
                await self.until_ended(asyncio.sleep(0.5))
                continue
            info = self.caller.dialog.create_request(
                "INFO",
                self.caller.hub.via(),
                headers=[("Content-Type", DTMF_CONTENT_TYPE)],
                body=dtmf_body(key, DTMF_SENT_MS),
            )
            try:
                await self.caller.connection.request(info)
            except (ConnectionClosed, TimeoutError) as exc:
                log.info("call %s: DTMF %s not delivered: %s", self.id, key, exc)
                return

    async def refuse_caller(self) -> None:
        """Answer a caller nobody answered with the failure of the call (``hangup``, end of flow)."""
        if isinstance(self.caller, CallerLeg) and not self.caller.answered:
            status, reason = self.failure
            self.caller.respond(status, reason)
            if self.caller_record is not None:
                await self.log.update_leg(self.caller_record, status=_leg_status(status, timed_out=False))

    async def _answered(self, leg: LegRecord | None) -> None:
        if leg is not None:
            await self.log.update_leg(leg, status="ongoing")
        await self.log.update_call(self.record, status="ongoing")

    async def _ring_party(self, timeout: int) -> None:
        """A Voice API call: ring its client; the first device to answer is the party."""
        identity = self.record.destination.removeprefix(CLIENT_PREFIX)
        winner = await self._ring([identity], timeout, source=self.caller_name)
        if winner is None:
            self.record.reason = self.record.reason or "no answer"
            return
        await winner.connect_media()
        self.caller, self.caller_record = winner, winner.record
        await self._answered(None)

    # -- transfer -----------------------------------------------------------------------------

    async def transfer(self, options: TransferOptions) -> bool:
        """Ring every device of every identity; ``True`` once one answered and the call ended."""
        winner = await self._ring(options.identities, options.timeout, source=f"{CLIENT_PREFIX}{self.caller_name}")
        if winner is None:
            return False
        await self._bridge(winner, options.record)
        return True

    async def _ring(self, identities: list[str], timeout: int, source: str) -> CalleeLeg | None:
        bindings = [
            binding
            for identity in identities
            for binding in await self.registrar.find(identity)
            if binding.grant.incoming is not None and not binding.connection.closed  # type: ignore[attr-defined]
        ]
        if not bindings:
            log.info("call %s: nobody registered as %s", self.id, ", ".join(identities))
            self.failure = NOBODY
            self.record.reason = f"nobody registered as {', '.join(identities)}"
            return None
        busy = {
            identity
            for identity in {binding.identity for binding in bindings}
            if not self.limits.may_ring(identity, self)
        }
        bindings = [binding for binding in bindings if binding.identity not in busy]
        if not bindings:
            self.record.reason = f"busy: {', '.join(sorted(busy))} in too many calls, the limit max_calls_per_identity"
            self.failure = (486, f"Busy Here ({self.record.reason})")
            return None
        bindings = bindings[: self.limits.ring_legs(len(bindings))]
        if self.record.status == "queued":
            await self.log.update_call(self.record, status="starting")
        self._ringing = []
        for binding in bindings:
            hub = hub_address(binding.connection, self.hub)
            leg = CalleeLeg(binding, hub, new_peer_connection(self.media, opus_passthrough=True))
            leg.record = await self.log.new_leg(
                LegRecord(
                    call_id=self.record.id,
                    source=source,
                    destination=f"{CLIENT_PREFIX}{binding.identity}",
                    direction="outgoing",
                )
            )
            self._ringing.append(leg)
        winner = await self._first_answer(self._ringing, timeout)
        self._ringing = []
        return winner

    async def _first_answer(self, legs: list[CalleeLeg], timeout: float) -> CalleeLeg | None:
        caller = self.identity_of("caller")
        tasks = {asyncio.create_task(leg.ring(self.caller_name, self._on_ringing(leg), caller)): leg for leg in legs}
        winner: CalleeLeg | None = None
        failures: list[Response] = []
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                pending = set(tasks)
                while pending and winner is None:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        response = _answer_of(task, tasks[task])
                        if response is None:
                            continue
                        if response.is_success and winner is None:
                            winner = tasks[task]
                        elif response.is_success:
                            await tasks[task].bye()  # answered at the same moment as the winner
                        else:
                            failures.append(response)
                            if response.status_code >= 600:  # RFC 3261 16.7: a 6xx ends the search
                                pending = set()
        except TimeoutError:
            log.info("call %s: no answer within %d s", self.id, timeout)
            failures, timed_out = [], True
            self.record.reason = "no answer"
        await self._stop_ringing([leg for leg in legs if leg is not winner], tasks)
        for leg in legs:
            if leg is winner:
                await self.log.update_leg(leg.record, status="ongoing")
            else:  # its refusal, no answer in time, or the 487 of our CANCEL (hangup)
                status = leg.final.status_code if leg.final is not None else 0
                await self.log.update_leg(leg.record, status=_leg_status(status, timed_out))
        if winner is None and self.failure != CANCELLED:
            self.failure = _best_failure(failures)
        return winner

    def _on_ringing(self, leg: CalleeLeg) -> Callable[[], None]:
        def ringing() -> None:
            # a callback of the transport's, which cannot wait: written by a task that starts
            # before the next message is read (and ends at once on SQLite), so before any answer
            self.services.spawn(self.log.update_leg(leg.record, status="ringing"))
            if isinstance(self.caller, CallerLeg) and self.caller.dialog is None:
                self.caller.ringing()

        return ringing

    async def _stop_ringing(self, legs: list[CalleeLeg], tasks: dict[asyncio.Task[Response], CalleeLeg]) -> None:
        await asyncio.gather(*(leg.cancel() for leg in legs))
        for task, leg in tasks.items():
            if leg in legs:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    async with asyncio.timeout(CANCEL_ANSWER_TIMEOUT):
                        await task  # the 487 after our CANCEL
                task.cancel()
                await leg.media.close()

    async def cancel_by_caller(self) -> None:
        """The caller sent CANCEL (or left): 487 to the caller, CANCEL to every device ringing."""
        self.failure = CANCELLED
        self.record.reason = "the caller hung up"
        await self.refuse_caller()
        await self.stop_ringing()

    async def stop_ringing(self) -> None:
        await asyncio.gather(*(leg.cancel() for leg in self._ringing))

    def key_ids(self) -> set[str]:
        """The access keys the call stands on: its parties' and the devices' ringing."""
        return self._party_keys() | {leg.binding.grant.access_key_id for leg in self._ringing}

    def _party_keys(self) -> set[str]:
        """The key of the caller's token, and of the bindings of the devices that answered."""
        legs = (self.caller, self.callee)
        keys = {leg.binding.grant.access_key_id for leg in legs if isinstance(leg, CalleeLeg)}
        return keys | {self.caller_key} if self.caller_key is not None else keys

    async def keys_revoked(self, revoked: set[str]) -> None:
        """Keys were revoked: a party standing on one ends the call; a device ringing on one stops."""
        if self._party_keys() & revoked:
            log.warning("call %s: ended, its access key was revoked", self.id)
            await self.hang_up("access key revoked")
            return
        await asyncio.gather(*(leg.cancel() for leg in self._ringing if leg.binding.grant.access_key_id in revoked))

    async def hang_up(self, reason: str, failure: tuple[int, str] = DECLINED) -> None:
        """End the call from outside (DELETE /v1/calls/{id}, a limit) wherever it is: a caller not
        yet answered gets ``failure``, ringing devices are cancelled, answered sides get BYE."""
        self.record.reason = self.record.reason or reason
        self.failure = failure
        await self.refuse_caller()
        await self.stop_ringing()
        await self.end(by=None)

    # -- bridged ------------------------------------------------------------------------------

    async def _bridge(self, winner: CalleeLeg, record: str | None) -> None:
        self.callee = winner
        await winner.connect_media()
        media = await self.establish()
        if media is None:
            log.info("call %s: the caller left as %s answered", self.id, winner.binding.identity)
            await winner.bye()
            await self.log.update_leg(winner.record, status="hangup")
            return
        await media.hand_to_bridge()
        if record is not None:
            await self.start_recording(
                "transfer", winner.record, said=record in ("in", "both"), heard=record in ("out", "both")
            )
        self.bridge = AudioBridge(self.caller.media, winner.media, tap=media.bridge_tap(0))  # type: ignore[union-attr]
        self.bridge.start()
        log.info("call %s: %s -> %s bridged", self.id, self.caller_name, winner.binding.identity)
        await self.ended.wait()

    def identity_of(self, side: str) -> str | None:
        """Who the hub asserts is on ``side``: a client's identity from its token; ``None`` for
        no leg yet, or a caller whose token names nobody."""
        leg = self.caller if side == "caller" else self.callee
        return leg.identity if leg is not None else None

    def key_of(self, side: str) -> str | None:
        """The access key of the token the hub asserts ``side``'s identity from."""
        leg = self.caller if side == "caller" else self.callee
        if isinstance(leg, CalleeLeg):
            return leg.binding.grant.access_key_id
        return self.caller_key if side == "caller" else None

    def dialog_of(self, side: str) -> tuple[SipConnection, Dialog | None]:
        leg = self.caller if side == "caller" else self.callee
        assert leg is not None
        return leg.connection, leg.dialog

    async def end(self, by: str | None) -> None:
        """Hang up, sending BYE to every answered side but ``by`` (the one that hung up). Called
        again, it ends a side that joined since: a client answering a Voice API call as it was
        hung up gets its BYE at the end of :meth:`run`."""
        self.ended.set()
        if by is not None:
            self._hung_up.add(by)
        legs = {"caller": self.caller, "callee": self.callee}
        ending = {side: leg for side, leg in legs.items() if side not in self._hung_up and leg is not None}
        self._hung_up.update(ending)
        await asyncio.gather(*(send_bye(leg.connection, leg.dialog, leg.hub) for leg in ending.values()))

    async def close(self) -> None:
        """Release the media ends and keep the recordings; nothing of the call is left running."""
        if self.bridge is not None:
            await self.bridge.stop()
        if self.flow_media is not None:
            await self.flow_media.close()
        for recording in self.recordings:
            await recording.stop()
        for leg in (self.caller, self.callee):
            if leg is not None:
                await leg.media.close()
        for leg_record in (self.caller_record, self.callee.record if self.callee else None):
            if leg_record is not None:
                await self.log.update_leg(leg_record, status="hangup")
        await self.log.update_call(self.record, status="ended")


def _leg_status(code: int, timed_out: bool) -> LegStatus:
    if timed_out or code in NO_ANSWER_CODES:
        return "no_answer"
    if code in BUSY_CODES:
        return "busy"
    if code == CANCELLED[0]:
        return "hangup"
    return "failed"


def _answer_of(task: asyncio.Task[Response], leg: CalleeLeg) -> Response | None:
    if task.cancelled():
        return None
    error = task.exception()
    if error is not None:
        log.info("ringing %s failed: %r", leg.binding.identity, error)
        return None
    return task.result()


def _best_failure(responses: list[Response]) -> tuple[int, str]:
    if not responses:
        return NOBODY
    global_failures = [response for response in responses if response.status_code >= 600]
    chosen = global_failures[0] if global_failures else min(responses, key=lambda response: response.status_code)
    return chosen.status_code, chosen.reason
