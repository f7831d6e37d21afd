"""A call, either direction: its statuses, its media, mute, DTMF and hang-up (PROTOCOL.md sections 3-5).

Statuses follow the seed SDK: a caller goes ``connecting -> ringing -> accepted -> confirmed ->
ended`` (or ``failed`` with an ``error`` event); a callee ``accepted -> confirmed -> ended``.
Each is emitted once, in order. Events: ``status``, ``error``, ``muted`` (the new value) and,
beyond the seed, ``digits`` (a DTMF digit the far end sent: a :class:`Digits`, a ``str`` that
also says who the hub asserts sent it) and ``unlock`` (the far end asked to open the door: the
asserted identity, or ``None``). :attr:`Call.remote_identity` is who the hub asserts is at the
other end; :meth:`Call.request_unlock` asks the far end to open its door.

A caller hears ringback on its own speaker while ringing, busy or congestion after a failure, and
each digit it sends (:mod:`.progress_tones`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiortc import RTCPeerConnection, RTCSessionDescription

from ..media import MutableSource
from ..sip import Address, Dialog, DialogError, Request, Response, ServerTransaction, Via, make_cancel, make_response
from ..sip.door import UNLOCK_CONTENT_TYPE, asserted_group, asserted_identity
from ..sip.dtmf import DTMF_CONTENT_TYPE, DTMF_DIGITS, dtmf_body, dtmf_signals
from ..sip.headers import content_type
from ..sip.ids import new_branch
from ..transport import ConnectionClosed, SipConnection
from .call_stats import CallStats
from .call_stats import collect as collect_stats
from .errors import DeviceError, InternalError
from .events import EventTarget
from .invite import build_post_dial_delay
from .media import SoundDevice
from .registration import RegistrationState

if TYPE_CHECKING:
    from .media import AudioSink, CallAudio
    from .progress_tones import Playing, ProgressTones

log = logging.getLogger(__name__)

DTMF_TONE_MS = 100
DTMF_GAP_S = 0.5


class CallStatus(enum.StrEnum):
    CONNECTING = "connecting"
    RINGING = "ringing"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    ENDED = "ended"


class Digits(str):
    """A DTMF key the far end sent, and who the hub asserts sent it (``None``: nobody, e.g. a
    flow of the hub's own) and in which group (a paired phone: ``phones``). It is the plain
    ``str`` the ``digits`` event always carried."""

    asserted_identity: str | None
    asserted_group: str | None

    def __new__(cls, key: str, asserted_identity: str | None, asserted_group: str | None = None) -> Digits:
        digits = super().__new__(cls, key)
        digits.asserted_identity = asserted_identity
        digits.asserted_group = asserted_group
        return digits


class Sender(str):
    """Who the hub asserts sent an unlock request: the identity (the plain ``str`` the ``unlock``
    event always carried) and the group the hub asserts it is in (``None``: none)."""

    group: str | None

    def __new__(cls, identity: str, group: str | None) -> Sender:
        sender = super().__new__(cls, identity)
        sender.group = group
        return sender


class Call(EventTarget):
    """One call's SIP dialog and media. Made by ``Client.start_call`` or ``IncomingCall.accept``."""

    def __init__(
        self,
        connection: SipConnection,
        media: RTCPeerConnection,
        source: MutableSource,
        audio: CallAudio,
        tones: ProgressTones,
        registration: RegistrationState,
        on_finished: Callable[[Call], None],
    ) -> None:
        super().__init__()
        self._connection = connection
        self._media = media
        self._source = source
        self._audio = audio
        self._tones = tones
        self._ringback: Playing | None = None
        self._hung_up = False  # a 180 crossing our CANCEL must not start the ringback
        self._sink: AudioSink | None = None
        self._registration = registration
        self._on_finished = on_finished
        self._sent_at = 0.0
        self._reported_delay = False
        self._side_tasks: set[asyncio.Task[object]] = set()
        self._status: CallStatus | None = None
        self._dialog: Dialog | None = None
        self._invite: Request | None = None
        self._digit_sender: asyncio.Task[None] | None = None
        self._closed = False
        self._speaker_device: str | None = None  # set_output_source before the answer
        self.id = ""
        self.remote_identity: str | None = None  # asserted by the hub in the INVITE, or in its 200
        if isinstance(source.source, SoundDevice):
            source.source.on_error = self._device_failed("microphone")

    @property
    def status(self) -> CallStatus | None:
        return self._status

    @property
    def is_muted(self) -> bool:
        return self._source.muted

    @property
    def dialog(self) -> Dialog | None:
        return self._dialog

    async def stats(self) -> CallStats:
        """RTP both ways and, for a sound card, the capture and playback counts (:mod:`.call_stats`)."""
        return await collect_stats(self.id, self._status, self._media, self._source.source, self._sink)

    def mute(self, muted: bool) -> None:
        """Send silence instead of the microphone (RTP keeps flowing, as the browser's does)."""
        if muted != self._source.muted:
            self._source.mute(muted)
            self._emit("muted", muted)

    def send_digits(self, digits: str) -> None:
        """Send DTMF as one INFO per digit, 100 ms tone and 500 ms gap apart, after any still queued.

        Each digit's tone sounds on our own speaker as it goes, over the far end's audio."""
        if not isinstance(digits, str) or not DTMF_DIGITS.match(digits):
            raise ValueError(f"DTMF digits are 0-9, * and #, not {digits!r}")
        if self._dialog is None or self._status not in (CallStatus.ACCEPTED, CallStatus.CONFIRMED):
            raise RuntimeError("digits can be sent once the call is answered")
        previous = self._digit_sender
        self._digit_sender = asyncio.create_task(self._send_digits(digits, previous))

    async def _send_digits(self, digits: str, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        for index, digit in enumerate(digits):
            if self._dialog is None or self._closed:
                return
            body = dtmf_body(digit, DTMF_TONE_MS)
            info = self._dialog.create_request(
                "INFO", self._via(), headers=[("Content-Type", DTMF_CONTENT_TYPE)], body=body
            )
            if self._sink is not None:
                self._tones.key(self._audio, self._sink, digit)
            try:
                await self._connection.request(info)
            except (ConnectionClosed, TimeoutError) as exc:
                log.info("DTMF %s not delivered: %s", digit, exc)
                return
            if index < len(digits) - 1:
                await asyncio.sleep(DTMF_TONE_MS / 1000 + DTMF_GAP_S)  # the browser client's pacing

    async def request_unlock(self) -> bool:
        """Ask the far end to open its door: one INFO, no code typed (the door decides by who the
        hub says sent it). ``True`` when it arrived, ``False`` when the hub or the far end refused
        it (e.g. 403: the call is not bridged to a client); the door's verdict is its own."""
        if self._dialog is None or self._status not in (CallStatus.ACCEPTED, CallStatus.CONFIRMED):
            raise RuntimeError("an unlock can be requested once the call is answered")
        info = self._dialog.create_request("INFO", self._via(), headers=[("Content-Type", UNLOCK_CONTENT_TYPE)])
        try:
            response = await self._connection.request(info)
        except (ConnectionClosed, TimeoutError) as exc:
            log.info("call %s: unlock request not delivered: %s", self.id, exc)
            return False
        if not response.is_success:
            log.info("call %s: unlock request refused: %s", self.id, response.text())
        return response.is_success

    async def set_input_source(self, constraints: dict[str, object]) -> None:
        """Capture from another microphone, as the seed's ``setInputSource({audio: {deviceId}})``.

        No renegotiation: the new device's stream opens before the old one closes. Raises
        ``ValueError`` for constraints without an audio ``deviceId``, ``UnknownDevice`` for an id
        no device has (the call carries on with the old one), and ``RuntimeError`` without an
        active call or when this call's sound does not come from a sound card.
        """
        audio = constraints.get("audio") if isinstance(constraints, dict) else None
        device_id = audio.get("deviceId") if isinstance(audio, dict) else None
        if not isinstance(device_id, str) or not device_id:
            raise ValueError(f"set_input_source takes {{'audio': {{'deviceId': ...}}}}, not {constraints!r}")
        self._require_active("set_input_source")
        microphone = self._source.source
        if not isinstance(microphone, SoundDevice):
            raise RuntimeError("this call's sound does not come from a sound card (see CallAudio.sound_card)")
        await microphone.switch(device_id)

    async def set_output_source(self, device_id: str) -> None:
        """Play the far end on another speaker, as the seed's ``setOutputSource(deviceId)``.

        Before the answer, the choice waits for the speaker to open. Raises as
        :meth:`set_input_source` does.
        """
        if not isinstance(device_id, str) or not device_id:
            raise ValueError(f"set_output_source takes a device id, not {device_id!r}")
        self._require_active("set_output_source")
        if self._sink is None:
            from ..audio.devices import resolve
            from ..audio.portaudio import PORTAUDIO  # only units with a sound card get here

            await PORTAUDIO.run(resolve, device_id, "audiooutput")  # the same error now as later
            self._speaker_device = device_id
            return
        if not isinstance(self._sink, SoundDevice):
            raise RuntimeError("this call's sound does not go to a sound card (see CallAudio.sound_card)")
        await self._sink.switch(device_id)

    def _require_active(self, method: str) -> None:
        if self._closed or self._status in (None, CallStatus.FAILED, CallStatus.ENDED):
            raise RuntimeError(f"{method} needs an active call; this one is {self._status or 'not started'}")

    def _device_failed(self, device: str) -> Callable[[Exception], None]:
        def report(cause: Exception) -> None:
            if not self._closed:
                log.warning("call %s: %s failed: %s", self.id, device, cause)
                self._emit("error", DeviceError(device, cause))

        return report

    async def disconnect(self) -> None:
        """Hang up: CANCEL before the answer, BYE after."""
        if self._closed:
            return
        self._hung_up = True
        await self._stop_ringback()  # silence at once, not when the far end has confirmed
        if self._dialog is None and self._invite is not None:
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await self._connection.request(make_cancel(self._invite))
            return  # the INVITE's 487 ends the call
        if self._dialog is not None:
            bye = self._dialog.create_request("BYE", self._via())
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await self._connection.request(bye)
        elif self._status is None:  # hung up before the call started dialling: it still began
            self._set_status(CallStatus.CONNECTING)
        await self._finish(CallStatus.ENDED)

    end_call = disconnect

    # -- driven by the client ------------------------------------------------------------------

    async def start_outgoing(self, make_invite: Callable[[str], Request]) -> None:
        """Make the offer, send the INVITE ``make_invite`` builds around it, and follow it to the
        answer or the failure. A call hung up meanwhile just ends."""
        self._set_status(CallStatus.CONNECTING)
        try:
            await self._media.setLocalDescription(await self._media.createOffer())  # ICE gathered: no trickle
        except Exception as exc:
            if not self._closed:
                await self._fail(f"RTC Session failed: cannot make an offer: {exc}")
            return
        if self._closed:
            return
        invite = make_invite(self._media.localDescription.sdp)
        self._invite = invite
        self.id = invite.call_id
        self._sent_at = time.monotonic()
        try:
            response = await self._connection.request(invite, on_provisional=self._provisional)
        except (ConnectionClosed, TimeoutError) as exc:
            await self._fail(f"RTC Session failed: {exc}")
            return
        if not response.is_success:
            if response.status_code == 487 and self._status is not CallStatus.FAILED:
                await self._finish(CallStatus.ENDED)  # we cancelled it
            else:
                await self._fail(f"RTC Session failed: {response.text()}", response.status_code)
            return
        self.remote_identity = asserted_identity(response.headers)
        try:
            self._dialog = Dialog.from_uac(invite, response)
            await self._media.setRemoteDescription(RTCSessionDescription(response.body.decode(), "answer"))
        except (DialogError, ValueError) as exc:
            await self._fail(f"RTC Session failed: bad answer: {exc}")
            return
        self._set_status(CallStatus.ACCEPTED)
        self._connection.send(self._dialog.create_ack(invite.cseq.number, self._via()))
        await self._stop_ringback()  # before the far end's sink opens the same speaker
        if self._closed:
            return
        self._start_sink()
        self._set_status(CallStatus.CONFIRMED)

    def _provisional(self, response: Response) -> None:
        if response.status_code in (180, 183):
            self._set_status(CallStatus.RINGING)
            if self._ringback is None and not (self._closed or self._hung_up):
                self._ringback = self._tones.ringback(self._audio)
            if not self._reported_delay and self._invite is not None:
                self._reported_delay = True
                delay_ms = (time.monotonic() - self._sent_at) * 1000
                self._in_background(
                    self._connection.request(build_post_dial_delay(self._registration, self._invite, delay_ms))
                )

    def _in_background(self, work: Awaitable[object]) -> None:
        """Fire and forget, without losing the task or its failure."""

        async def run() -> None:
            try:
                await work
            except (ConnectionClosed, TimeoutError) as exc:
                log.info("call %s: %s", self.id, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def answer_in_background(self, answering: Awaitable[None]) -> None:
        """Run ``IncomingCall.accept``'s answer; a failure fails the call."""

        async def run() -> None:
            try:
                await answering
            except Exception as exc:
                log.warning("call %s: answering failed: %s", self.id, exc)
                await self._fail(f"RTC Session failed: {exc}")

        self._in_background(run())

    async def answer_incoming(
        self, transaction: ServerTransaction, invite: Request, local_tag: str, contact: str
    ) -> None:
        """Answer an INVITE the hub sent (``IncomingCall.accept``)."""
        self._invite = invite
        self.id = invite.call_id
        await self._media.setLocalDescription(await self._media.createAnswer())
        headers = [("Contact", contact), ("Session-Expires", "90;refresher=uas"), ("Content-Type", "application/sdp")]
        ok = make_response(
            invite, 200, to_tag=local_tag, headers=headers, body=self._media.localDescription.sdp.encode()
        )
        self._dialog = Dialog.from_uas(invite, local_tag, Address.parse(contact))
        self._connection.send_response(transaction, ok)
        self._set_status(CallStatus.ACCEPTED)
        self._start_sink()

    def on_ack(self) -> None:
        if self._status is CallStatus.ACCEPTED:
            self._set_status(CallStatus.CONFIRMED)

    def on_request(self, transaction: ServerTransaction, request: Request) -> None:
        """An in-dialog request from the hub."""
        if self._dialog is None:  # it overtook the 200 we are still reading: the hub may retry
            reason = "Server Internal Error (the call is not answered yet)"
            self._connection.send_response(transaction, make_response(request, 500, reason))
            return
        try:
            self._dialog.receive_request(request)
        except DialogError as exc:
            self._connection.send_response(transaction, make_response(request, 500, f"Server Internal Error ({exc})"))
            return
        if request.method == "BYE":
            self._connection.send_response(transaction, make_response(request, 200))
            self._in_background(self._finish(CallStatus.ENDED))
        elif request.method == "INFO":
            self._on_info(transaction, request)
        elif request.method == "UPDATE":
            self._connection.send_response(transaction, make_response(request, 200))
        else:
            self._connection.send_response(
                transaction, make_response(request, 405, headers=[("Allow", "BYE,INFO,UPDATE")])
            )

    def _on_info(self, transaction: ServerTransaction, request: Request) -> None:
        kind = content_type(request.headers)
        if not kind:
            self._connection.send_response(transaction, make_response(request, 415))
            return
        self._connection.send_response(transaction, make_response(request, 200))
        sender, group = asserted_identity(request.headers), asserted_group(request.headers)
        if kind == DTMF_CONTENT_TYPE:
            for key in dtmf_signals(request.body):
                if DTMF_DIGITS.match(key):
                    self._emit("digits", Digits(key, sender, group))
        elif kind == UNLOCK_CONTENT_TYPE:
            self._emit("unlock", Sender(sender, group) if sender is not None else None)

    async def connection_lost(self) -> None:
        if self._status in (CallStatus.ACCEPTED, CallStatus.CONFIRMED):
            await self._finish(CallStatus.ENDED)
        else:
            await self._fail("RTC Session failed: connection to the hub lost")

    # -- internals ----------------------------------------------------------------------------

    def _via(self) -> Via:
        return Via("WSS", self._registration.via_host, None, {"branch": new_branch()})

    async def _stop_ringback(self) -> None:
        if self._ringback is not None:
            await self._ringback.stop()

    def _start_sink(self) -> None:
        for receiver in self._media.getReceivers():
            if receiver.track is not None and receiver.track.kind == "audio":
                self._sink = self._audio.sink(receiver.track)
                if isinstance(self._sink, SoundDevice):
                    self._sink.on_error = self._device_failed("speaker")
                    if self._speaker_device is not None:
                        self._sink.device = self._speaker_device
                self._sink.start()
                return

    @property
    def sink(self) -> AudioSink | None:
        """What plays the far end's audio, once the call is answered."""
        return self._sink

    def _set_status(self, status: CallStatus) -> None:
        if status is not self._status and not self._closed:
            self._status = status
            self._emit("status", status)

    async def _fail(self, message: str, status_code: int | None = None) -> None:
        """End the call ``failed``; ``status_code`` is the far end's final response, if it gave one."""
        failing = not self._closed
        self._set_status(CallStatus.FAILED)
        self._emit("error", InternalError(message))
        await self._close()
        if failing:
            self._tones.failure(self._audio, status_code)

    async def _finish(self, status: CallStatus) -> None:
        self._set_status(status)
        await self._close()

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._digit_sender is not None:
            self._digit_sender.cancel()
        await self._stop_ringback()
        if isinstance(self._source.source, SoundDevice) or isinstance(self._sink, SoundDevice):
            summary = (await self.stats()).sound_summary()
            log.info("call %s ended, its sound: %s", self.id, summary)
        if self._sink is not None:
            await self._sink.stop()
        await self._media.close()
        self._source.stop()
        self._on_finished(self)
