"""A call the hub offers this client (PROTOCOL.md section 5), until it is accepted, rejected or cancelled.

The client answers ``100 Trying`` at once and emits ``incoming``; once the offer is applied it
sends ``180 Ringing``, unless the app rejected the call inside its handler. ``accept()`` answers
200 and returns the :class:`Call`; ``reject()`` answers 480. A caller who gives up (CANCEL),
or 60 s without an answer (408), ends it; the client then emits ``canceled``, as the seed SDK
does for every failure of an incoming call, a reject included.

The ring sounds on the unit's own speaker from the 180 until the call is settled one way or
another; on ``accept()`` it stops before the call's own sink opens the speaker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc import RTCPeerConnection, RTCSessionDescription

from ..media import MutableSource
from ..sip import Request, ServerTransaction, make_response
from ..sip.door import asserted_identity
from ..sip.ids import new_tag
from ..transport import SipConnection
from .call import Call

if TYPE_CHECKING:
    from .media import CallAudio
    from .progress_tones import Playing, ProgressTones

log = logging.getLogger(__name__)

NO_ANSWER_TIMEOUT = 60.0


class IncomingCall:
    def __init__(
        self,
        connection: SipConnection,
        transaction: ServerTransaction,
        invite: Request,
        media: RTCPeerConnection,
        source: MutableSource,
        contact: str,
        make_call: Callable[[RTCPeerConnection, MutableSource], Call],
        on_failed: Callable[[IncomingCall], None],
        audio: CallAudio,
        tones: ProgressTones,
    ) -> None:
        self._connection = connection
        self._transaction = transaction
        self._invite = invite
        self._media = media
        self._source = source
        self._contact = contact
        self._make_call = make_call
        self._on_failed = on_failed
        self._audio = audio
        self._tones = tones
        self._ring: Playing | None = None
        self._tag = new_tag()
        self._prepared: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._prepare())
        self._no_answer = asyncio.get_running_loop().call_later(NO_ANSWER_TIMEOUT, self._time_out)
        self.settled = False
        self._refused = False  # rejected, cancelled or timed out: no 180 any more
        self.call: Call | None = None

    @property
    def id(self) -> str:
        return self._invite.call_id

    @property
    def display_name(self) -> str | None:
        return self._invite.from_.display_name

    @property
    def remote_identity(self) -> str | None:
        """Who calls, as the hub asserts it (``None``: a call the hub makes itself, e.g. the Voice API)."""
        return asserted_identity(self._invite.headers)

    async def _prepare(self) -> None:
        """Apply the offer; then ring, unless the app already said no."""
        self._media.addTrack(self._source)
        await self._media.setRemoteDescription(RTCSessionDescription(self._invite.body.decode(), "offer"))
        if not self._refused:
            self._respond(180, headers=[("Contact", self._contact)])
        if not self.settled:
            self._ring = self._tones.ring(self._audio)

    def accept(self) -> Call:
        """Answer the call. Returns the :class:`Call` at once, as the seed SDK does: its ``accepted``
        and ``confirmed`` follow, so handlers attached right away see every status."""
        if self.settled:
            raise RuntimeError("this call was already accepted, rejected or cancelled")
        self.settled = True
        self._no_answer.cancel()
        call = self._make_call(self._media, self._source)
        call.remote_identity = self.remote_identity
        self.call = call
        call.answer_in_background(self._answer(call))
        return call

    async def _answer(self, call: Call) -> None:
        try:
            await self._prepared
        except Exception as exc:  # an offer we cannot take
            self._respond(488)
            raise ValueError(f"cannot answer this offer: {exc}") from exc
        await self._stop_ring()  # before the call's sink opens the same speaker
        await call.answer_incoming(self._transaction, self._invite, self._tag, self._contact)

    def reject(self) -> None:
        """Decline with 480 Temporarily Unavailable."""
        self._fail(480)

    def cancelled(self) -> None:
        """The caller gave up: 487 to the INVITE (the CANCEL itself was answered by the client)."""
        self._fail(487)

    def _time_out(self) -> None:
        self._fail(408)

    def _fail(self, status: int) -> None:
        if self.settled:
            return
        self.settled = self._refused = True
        self._no_answer.cancel()
        self._respond(status)
        self._on_failed(self)
        asyncio.get_running_loop().create_task(self._release())

    async def _release(self) -> None:
        self._prepared.cancel()
        await asyncio.gather(self._prepared, return_exceptions=True)
        await self._stop_ring()
        await self._media.close()
        self._source.stop()

    async def _stop_ring(self) -> None:
        if self._ring is not None:
            await self._ring.stop()

    def _respond(self, status: int, headers: list[tuple[str, str]] | None = None) -> None:
        if self._connection.closed:
            return
        response = make_response(self._invite, status, to_tag=self._tag, headers=headers)
        try:
            self._connection.send_response(self._transaction, response)
        except Exception as exc:  # e.g. the transaction ended with the socket
            log.info("%s to %s not sent: %s", status, self.id, exc)

    def connection_lost(self) -> None:
        if not self.settled:
            self.settled = self._refused = True
            self._no_answer.cancel()
            self._on_failed(self)
            asyncio.get_running_loop().create_task(self._release())
