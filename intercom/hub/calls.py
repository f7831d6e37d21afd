"""The B2BUA: every call is the caller's leg plus the legs the call flow rings, bridged in the hub.

A call starts with an INVITE to ``sip:00000@<hub>`` carrying the caller's JWT. Its flow (the
token's ``callProcessorId``) runs step by step; ``transfer`` forks an INVITE to every device of
every listed identity, relays the first 180, bridges the first 200 and cancels the rest. The
call ends for both sides when either sends BYE or loses its socket; a caller nobody answered
gets the best failure the callees gave (a 6xx first, else the lowest code), or 480.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from ..auth import Grant
from ..media import AudioBridge, MediaPolicy, new_peer_connection
from ..sip import Dialog, Response
from ..transport import ConnectionClosed, SipConnection
from .callflows import CallFlow, TransferOptions
from .flow_engine import run_flow
from .legs import CalleeLeg, CallerLeg, HubAddress, send_bye
from .registrar import Registrar

log = logging.getLogger(__name__)

NOBODY = (480, "Temporarily Unavailable")
CANCELLED = (487, "Request Terminated")
CANCEL_ANSWER_TIMEOUT = 5.0  # how long a cancelled device may take to send its 487


@dataclass
class LegStats:
    """What the browser client reports about its leg (stats INFO, the post-dial-delay MESSAGE)."""

    reports: list[str] = field(default_factory=list)
    post_dial_delay_ms: float | None = None


class HubCall:
    """One call: the caller's leg, the devices being rung, and the bridge once one answers."""

    def __init__(
        self,
        caller: CallerLeg,
        grant: Grant,
        variables: dict[str, str],
        registrar: Registrar,
        hub: HubAddress,
        media: MediaPolicy,
    ) -> None:
        self.caller = caller
        self.grant = grant
        self.variables = variables
        self.registrar = registrar
        self.hub = hub
        self.media = media
        self.callee: CalleeLeg | None = None
        self.bridge: AudioBridge | None = None
        self.failure = NOBODY
        self.ended = asyncio.Event()
        self.stats = {"caller": LegStats(), "callee": LegStats()}
        self._ringing: list[CalleeLeg] = []

    @property
    def id(self) -> str:
        return self.caller.call_id

    @property
    def caller_name(self) -> str:
        outgoing = self.grant.outgoing
        return (outgoing.identity if outgoing else None) or "anonymous"

    @property
    def over(self) -> bool:
        """Ended, or refused before anyone answered: no step has anything left to do."""
        return self.ended.is_set() or (self.caller.answered and self.callee is None)

    async def run(self, flow: CallFlow) -> None:
        try:
            await run_flow(flow, self)
        finally:
            self.refuse_caller()  # a flow that ends (or fails) unanswered must not leave the caller ringing
            await self.end(by=None)
            await self.close()

    # -- flow steps ---------------------------------------------------------------------------

    async def transfer(self, options: TransferOptions) -> bool:
        """Ring every device of every identity; ``True`` once one answered and the call ended."""
        bindings = [
            binding
            for identity in options.identities
            for binding in self.registrar.lookup(identity)
            if binding.grant.incoming is not None and not binding.connection.closed  # type: ignore[attr-defined]
        ]
        if not bindings:
            log.info("call %s: nobody registered as %s", self.id, options.destination)
            self.failure = NOBODY
            return False
        self._ringing = [
            CalleeLeg(binding, self.hub, new_peer_connection(self.media, opus_passthrough=True)) for binding in bindings
        ]
        winner = await self._first_answer(self._ringing, options.timeout)
        self._ringing = []
        if winner is None:
            return False
        await self._bridge(winner)
        return True

    def refuse_caller(self) -> None:
        """Answer a caller nobody answered with the failure of the call (``hangup``, end of flow)."""
        status, reason = self.failure
        self.caller.respond(status, reason)

    # -- forking --------------------------------------------------------------------------------

    async def _first_answer(self, legs: list[CalleeLeg], timeout: float) -> CalleeLeg | None:
        tasks = {asyncio.create_task(leg.ring(self.caller_name, self.caller.ringing)): leg for leg in legs}
        winner: CalleeLeg | None = None
        failures: list[Response] = []
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
            failures = []
        await self._stop_ringing([leg for leg in legs if leg is not winner], tasks)
        if winner is None and self.failure != CANCELLED:
            self.failure = _best_failure(failures)
        return winner

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
        self.refuse_caller()
        await asyncio.gather(*(leg.cancel() for leg in self._ringing))

    # -- bridged --------------------------------------------------------------------------------

    async def _bridge(self, winner: CalleeLeg) -> None:
        self.callee = winner
        await winner.connect_media()
        try:
            await self.caller.answer()
        except ConnectionClosed:
            log.info("call %s: the caller left as %s answered", self.id, winner.binding.identity)
            await winner.bye()
            self.ended.set()
            return
        self.bridge = AudioBridge(self.caller.media, winner.media)
        self.bridge.start()
        log.info("call %s: %s -> %s bridged", self.id, self.caller_name, winner.binding.identity)
        await self.ended.wait()

    def dialog_of(self, side: str) -> tuple[SipConnection, Dialog | None]:
        if side == "caller":
            return self.caller.connection, self.caller.dialog
        assert self.callee is not None
        return self.callee.connection, self.callee.dialog

    async def end(self, by: str | None) -> None:
        """Hang up, sending BYE to every answered side but ``by`` (the one that hung up)."""
        if self.ended.is_set():
            return
        self.ended.set()
        sides = [side for side in ("caller", "callee") if side != by and (side == "caller" or self.callee)]
        await asyncio.gather(*(send_bye(*self.dialog_of(side), self.hub) for side in sides))

    async def close(self) -> None:
        """Release the media ends; nothing of the call is left running."""
        if self.bridge is not None:
            await self.bridge.stop()
        await self.caller.media.close()
        if self.callee is not None:
            await self.callee.media.close()


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
