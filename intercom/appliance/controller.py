"""The appliance's one state machine: SDK events to lights, button presses to SDK actions.

Its tables are here, together: :data:`BUTTON_ACTIONS` says what each button of each role does,
and the light patterns for client and call statuses come from :mod:`.lights`. The controller holds
at most one call and one offered call; it talks to the hardware only through ``show(led, pattern)``
and ``pulse_relay(seconds)``, so that it runs the same on a Pi, on gpiozero's mock pins and in the
simulator.

- Door: CALL starts the configured call flow (ignored while a call is up, or hangs up when
  ``call_button_hangs_up``) and answers a desk's call when the door does not auto-answer; a desk's
  call is answered at once with ``auto_answer`` ("listen at the door"). Keypad digits, digits heard
  in a call and a desk's unlock request go to the :class:`~.unlock.UnlockGuard`, with who the hub
  asserts sent them: an opening pulses the relay once and sounds a confirmation on the door's
  speaker. What the guard records is reported to the hub (:mod:`.door_events`); while a lockout
  lasts, the idle call light shows ``lockout``.
- Desk: an offered call rings (the SDK's ring tone) and blinks the call light; ANSWER accepts;
  REJECT rejects, or hangs up a call in progress; MUTE toggles mute (the mute light follows);
  UNLOCK asks the door to open (an unlock request: no code typed); keypad digits send DTMF; CALL
  calls the door.
- Both: CALL held (:data:`LONG_PRESS_ACTIONS`) ends the call that was up when it was pressed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import Any, Literal

from ..media.tones import Tone, tone_pcm
from ..sdk import Call, CallStatus, Client, ClientStatus, IncomingCall
from .door_events import report
from .lights import CALL_STATUS_PATTERN, CLIENT_STATUS_PATTERN, LOCKOUT_PATTERN, MUTED_PATTERN
from .unlock import UnlockGuard, Verdict
from .unlock_store import AuditEntry, UnlockStore

log = logging.getLogger(__name__)

Role = Literal["door", "desk"]

BUTTON_ACTIONS: Mapping[tuple[Role, str], str] = {
    ("door", "call"): "call_or_answer",
    ("desk", "call"): "call_or_answer",
    ("desk", "answer"): "answer",
    ("desk", "reject"): "reject_or_hang_up",
    ("desk", "mute"): "toggle_mute",
    ("desk", "unlock"): "request_unlock",
}
# Held for the long-press time: CALL ends a call that was up when it was pressed, the visitor's way
# to hang up at a door that has one button (a press that starts a call never ends it).
LONG_PRESS_ACTIONS: Mapping[tuple[Role, str], str] = {
    ("door", "call"): "end_call_held",
    ("desk", "call"): "end_call_held",
}
KEYPAD_ACTIONS: Mapping[Role, str] = {"door": "type_code", "desk": "send_digit"}
CONFIRMATION = Tone((1320.0,), ((0.12, 0.08), (0.12, 0.0)), repeat=False)  # two short high beeps: open
ACTIVE = (CallStatus.CONNECTING, CallStatus.RINGING, CallStatus.ACCEPTED, CallStatus.CONFIRMED)


class Controller:
    def __init__(
        self,
        role: Role,
        client: Client,
        show: Callable[[str, str], None],
        pulse_relay: Callable[[float], None],
        *,
        unlock_code: str | None,
        relay_pulse_s: float,
        unlock_from: Collection[str] = ("desk",),
        unlock_store: UnlockStore | None = None,
        auto_answer: bool = False,
        call_button_hangs_up: bool = False,
        ring_timeout_s: float = 30.0,
        call_params: Mapping[str, str] | None = None,
    ) -> None:
        self.role = role
        self.client = client
        self._show = show
        self._pulse_relay = pulse_relay
        self._relay_pulse_s = relay_pulse_s
        self._auto_answer = auto_answer
        self._call_button_hangs_up = call_button_hangs_up
        self._ring_timeout_s = ring_timeout_s
        self._ring_timer: asyncio.TimerHandle | None = None
        self._call_params = dict(call_params or {})
        # Only a door judges codes; its store is the unit's (a test's may end with the process).
        self.guard = (
            UnlockGuard(unlock_code, unlock_store or UnlockStore.in_memory(), unlock_from, on_record=self._recorded)
            if role == "door" and unlock_code is not None
            else None
        )
        self._lockout_timer: asyncio.TimerHandle | None = None
        self.call: Call | None = None
        self.offered: IncomingCall | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._in_call_at_press: dict[str, bool] = {}  # by button: was a call up when it went down?
        self._refused = False  # the hub refused the client for good, and it has not tried again
        client.on("status", self._client_status)
        client.on("incoming", self._incoming)
        client.on("canceled", self._canceled)
        if (guard := self.guard) is not None:
            # Home Assistant's Open door, through the hub, outside any call
            client.on("unlockRequest", lambda source: self._open_if(guard.request_from_source(source)))
        self._client_status(client.status)
        self._show_idle()
        self._show("mute", MUTED_PATTERN[False])

    # -- buttons -------------------------------------------------------------------------------

    def press(self, button: str) -> None:
        """A button was pressed (keypad keys by their digit)."""
        self._in_call_at_press[button] = self._in_call()
        if len(button) == 1 and button in "0123456789*#":
            action = KEYPAD_ACTIONS[self.role]
            getattr(self, action)(button)
            return
        action = BUTTON_ACTIONS.get((self.role, button))
        if action is None:
            log.info("%s: the %s button does nothing on this unit", self.role, button)
            return
        getattr(self, action)()

    def long_press(self, button: str) -> None:
        """A button is still held the long-press time after it was pressed."""
        action = LONG_PRESS_ACTIONS.get((self.role, button))
        if action is not None:
            getattr(self, action)(button)

    def end_call_held(self, button: str) -> None:
        if self._in_call_at_press.get(button) and self._in_call():
            self._hang_up()

    def call_or_answer(self) -> None:
        if self.offered is not None:
            self.answer()
        elif self._in_call():
            if self._call_button_hangs_up:
                self._hang_up()
        elif self.client.status is ClientStatus.CONNECTED:
            self._follow(self.client.start_call(**self._call_params))
        else:
            log.warning("CALL pressed while the unit is %s: no call", self.client.status.value)

    def answer(self) -> None:
        offered = self._take_offered()
        if offered is not None and not offered.settled:
            self._follow(offered.accept())

    def reject_or_hang_up(self) -> None:
        offered = self._take_offered()
        if offered is not None and not offered.settled:
            offered.reject()
            self._show_idle()
        elif self._in_call():
            self._hang_up()

    def toggle_mute(self) -> None:
        if self._in_call():
            assert self.call is not None
            self.call.mute(not self.call.is_muted)

    def request_unlock(self) -> None:
        """The desk's UNLOCK: ask the door in the call to open (it decides by who the hub says we are)."""
        if self.call is not None and self.call.status in (CallStatus.ACCEPTED, CallStatus.CONFIRMED):
            self._spawn(self.call.request_unlock())

    def send_digit(self, digits: str) -> None:
        if self.call is not None and self.call.status in (CallStatus.ACCEPTED, CallStatus.CONFIRMED):
            self.call.send_digits(digits)

    def type_code(self, digit: str) -> None:
        """A key of the door's own keypad: the code may be typed there too, call or not."""
        assert self.guard is not None
        self._open_if(self.guard.keypad(digit))

    # -- SDK events ----------------------------------------------------------------------------

    def _client_status(self, status: ClientStatus) -> None:
        if status is ClientStatus.OFFLINE and self._refused:
            return  # the SDK ends a refusal offline: the light keeps saying error until the next try
        self._refused = status is ClientStatus.ERROR
        self._show("status", CLIENT_STATUS_PATTERN[status])

    def _incoming(self, offered: IncomingCall) -> None:
        if self._in_call() or self.offered is not None:
            offered.reject()  # one call at a time
            return
        if self.role == "door" and self._auto_answer:
            self._follow(offered.accept())
            return
        self.offered = offered
        self._show("call", CALL_STATUS_PATTERN[CallStatus.RINGING])
        self._ring_timer = asyncio.get_running_loop().call_later(self._ring_timeout_s, self._unanswered, offered)

    def _unanswered(self, offered: IncomingCall) -> None:
        """Nobody answered within the ring timeout: turn the call away, as REJECT would."""
        if offered is self.offered:
            log.info("no answer within %.0f s: the call is turned away", self._ring_timeout_s)
            self.reject_or_hang_up()

    def _canceled(self, offered: IncomingCall) -> None:
        if offered is self.offered:
            self._take_offered()
            self._show_idle()

    def _follow(self, call: Call) -> None:
        self.call = call
        call.on("status", lambda status: self._call_status(call, status))
        call.on("muted", lambda muted: self._show("mute", MUTED_PATTERN[muted]))
        if self.guard is not None:
            call.on("digits", lambda digits: self._judge_in_call(call, digits))
            call.on("unlock", lambda identity: self._unlock_requested(call, identity))
        self._call_status(call, call.status)

    def _call_status(self, call: Call, status: CallStatus | None) -> None:
        if call is not self.call or status is None:
            return
        if status in (CallStatus.ENDED, CallStatus.FAILED):
            self.call = None
            if self.guard is not None:
                self.guard.reset()
            self._show("mute", MUTED_PATTERN[False])
        if status is CallStatus.ENDED:
            self._show_idle()  # off, or the lockout again
        else:
            self._show("call", CALL_STATUS_PATTERN[status])

    def _judge_in_call(self, call: Call, digits: str) -> None:
        """Digits from the far end, with who the hub asserts sent them (a plain str: nobody)."""
        assert self.guard is not None
        sender = getattr(digits, "asserted_identity", None)
        group = getattr(digits, "asserted_group", None)
        for digit in digits:
            self._open_if(self.guard.remote_digit(digit, sender, call.id, group))

    def _unlock_requested(self, call: Call, identity: str | None) -> None:
        """The far end pressed UNLOCK: no code, the hub's word for who it is (and its group)."""
        assert self.guard is not None
        self._open_if(self.guard.request(identity, call.id, getattr(identity, "group", None)))

    def _open_if(self, verdict: Verdict) -> None:
        if verdict is not Verdict.OPEN:
            return
        self._pulse_relay(self._relay_pulse_s)
        sink = self.call.sink if self.call is not None else None
        if sink is not None and hasattr(sink, "mix"):
            sink.mix(tone_pcm(CONFIRMATION, CONFIRMATION.period))

    def _recorded(self, entry: AuditEntry) -> None:
        """A line of the audit log: the hub hears of it, in the background; a lockout shows."""
        if entry.verdict == "lockout":
            self._show_idle()
        self._spawn(report(self.client, entry))

    def _show_idle(self) -> None:
        """The call light with no call up: off, or ``lockout`` until the door's lockouts end."""
        if self._lockout_timer is not None:
            self._lockout_timer.cancel()
            self._lockout_timer = None
        if self._in_call() or self.offered is not None:
            return
        left = self.guard.seconds_locked() if self.guard is not None else 0.0
        if left <= 0:
            self._show("call", CALL_STATUS_PATTERN[CallStatus.ENDED])
            return
        self._show("call", LOCKOUT_PATTERN)
        self._lockout_timer = asyncio.get_running_loop().call_later(left, self._show_idle)

    def close(self) -> None:
        """Stop reacting: the panel is about to close (a ring timer must not light a closed LED)."""
        self._take_offered()
        if self._lockout_timer is not None:
            self._lockout_timer.cancel()
        self.client.remove_event_listener("status", self._client_status)
        self.client.remove_event_listener("incoming", self._incoming)
        self.client.remove_event_listener("canceled", self._canceled)

    # -- helpers -------------------------------------------------------------------------------

    def _take_offered(self) -> IncomingCall | None:
        """The offered call, taken off this unit's hands: no longer ringing here, its timer stopped."""
        if self._ring_timer is not None:
            self._ring_timer.cancel()
            self._ring_timer = None
        offered, self.offered = self.offered, None
        return offered

    def _in_call(self) -> bool:
        return self.call is not None and self.call.status in ACTIVE

    def _hang_up(self) -> None:
        assert self.call is not None
        self._spawn(self.call.disconnect())

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` beside the controller: a press, or a report, waits for no answer."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)  # kept until done
        task.add_done_callback(self._tasks.discard)
