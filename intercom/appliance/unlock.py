"""The door's lock: who may open it, the code typed at its keypad or from a desk, and lockouts
that pacing cannot beat.

Three ways in, each judged here:

- the door's own keypad: digits become attempts at the code;
- digits heard in a call (DTMF from a desk's keypad): attempts too, but only from an identity the
  hub asserts and the allow-list (``INTERCOM_UNLOCK_FROM``) names; from anyone else, or from a
  call nobody is asserted on (a flow of the hub's own: voicemail, say), a complete attempt is
  refused unjudged;
- a desk's unlock request (its UNLOCK button): no code at all; it opens for an allowed identity;
- the hub's own request for a source it names (Home Assistant's Open door over MQTT, no call, no
  identity): it opens only when the allow-list names ``source:<name>`` (docs/home-assistant.md).

An attempt ends with ``#`` when the code ends with ``#``, otherwise once as many digits as the
code has arrived. Wrong codes count per counter: the keypad's, and each remote identity's, so
that five ``#`` pressed at the door lock out the door's keypad and not the resident's desk.
A counter locks when it has :data:`WRONG_LIMIT` wrong codes in :data:`WRONG_WINDOW_S` (since its
last lockout ended): 5 minutes first, each further lockout doubling up to an hour, back to 5
minutes after a quiet day. Whatever the pace, a counter with :data:`DAILY_CAP` wrong codes in
the last 24 hours stays locked until the oldest of them is a day old: at most that many guesses
a day are even judged. During a lockout even the right code does nothing; an unlock request is
no guess, and is not locked out.

Everything judged or refused, and each lockout, is a line of the audit log in the :class:`UnlockStore`,
which also carries the counters across restarts; times are the wall clock (``time.time``), as the
state outlives the process.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Collection
from enum import StrEnum

from .unlock_store import AuditEntry, Lockout, Outcome, Source, UnlockStore

log = logging.getLogger(__name__)

MIN_CODE_DIGITS = 4  # before a closing #: 10 000 codes at least, DAILY_CAP of them judged a day
WRONG_LIMIT = 5
WRONG_WINDOW_S = 15 * 60.0
FIRST_LOCKOUT_S = 5 * 60.0
MAX_LOCKOUT_S = 60 * 60.0
QUIET_S = 24 * 3600.0  # this long after a lockout ended, the next one starts from the first again
DAILY_CAP = 20
DAY_S = 24 * 3600.0
KEYPAD = "keypad"
# The sources the hub may ask for on behalf of (P-Intercom-Source), and who the audit says asked.
SOURCES = {"home_assistant": "home assistant"}


class Verdict(StrEnum):
    PENDING = "pending"  # the attempt is not complete yet
    OPEN = "open"
    WRONG = "wrong"
    LOCKED = "locked"  # a complete attempt during a lockout, right or wrong: not judged
    REFUSED = "refused"  # from someone not allowed to open the door: not judged


def lockout_seconds(level: int) -> float:
    """How long the ``level``-th lockout in a row lasts: 5 min doubling, at most an hour."""
    return min(FIRST_LOCKOUT_S * 2 ** min(level - 1, 16), MAX_LOCKOUT_S)


def _cap_ends(wrong_today: list[float]) -> float:
    """When a counter with the daily cap of wrong codes in its last 24 h (oldest first) may guess
    again: once the oldest of the last :data:`DAILY_CAP` is a day old; 0.0 under the cap."""
    return wrong_today[-DAILY_CAP] + DAY_S if len(wrong_today) >= DAILY_CAP else 0.0


class UnlockGuard:
    """Judges attempts and requests; ``on_record`` hears every line written to the audit log."""

    def __init__(
        self,
        code: str,
        store: UnlockStore,
        allowed: Collection[str],
        clock: Callable[[], float] = time.time,
        on_record: Callable[[AuditEntry], None] | None = None,
    ) -> None:
        self._code = code
        self._store = store
        self._allowed = frozenset(allowed)
        self._clock = clock
        self._on_record = on_record
        self._typed: dict[str, str] = {}  # a half-typed attempt, by where it is typed

    # -- the three ways in ---------------------------------------------------------------------

    def keypad(self, digit: str) -> Verdict:
        """A key of the door's own keypad."""
        attempt = self._add(KEYPAD, digit)
        if attempt is None:
            return Verdict.PENDING
        return self._judge(attempt, KEYPAD, "keypad", KEYPAD, None)

    def remote_digit(self, digit: str, identity: str | None, call_id: str | None, group: str | None = None) -> Verdict:
        """A DTMF digit heard in call ``call_id``, sent by ``identity`` (in ``group``) as the hub asserts it."""
        attempt = self._add(f"remote:{identity or ''}", digit)
        if attempt is None:
            return Verdict.PENDING
        if not self.allows(identity, group):
            self._refuse(identity, call_id, "a code")
            return Verdict.REFUSED
        return self._judge(attempt, f"remote:{identity}", "remote", identity, call_id)

    def request(self, identity: str | None, call_id: str | None, group: str | None = None) -> Verdict:
        """A desk's unlock request: it opens for an allowed identity, lockout or not (no guess)."""
        if not self.allows(identity, group):
            self._refuse(identity, call_id, "an unlock request")
            return Verdict.REFUSED
        how = f"unlock request (group {group})" if identity not in self._allowed else "unlock request"
        log.info("unlock requested by %s: opening the door", identity)
        self._record("remote", identity, call_id, "open", how)
        return Verdict.OPEN

    def request_from_source(self, source: str | None) -> Verdict:
        """The hub's unlock request for a source it names, outside any call: it opens only when the
        door's own allow-list names ``source:<name>``; nobody else's word adds one."""
        who = SOURCES.get(source or "")
        if who is None or f"source:{source}" not in self._allowed:
            self._refuse(who or source, None, "an unlock request")
            return Verdict.REFUSED
        log.info("unlock requested by %s through the hub: opening the door", who)
        self._record("remote", who, None, "open", f"unlock request ({who} through the hub)")
        return Verdict.OPEN

    def allows(self, identity: str | None, group: str | None) -> bool:
        """Whether the allow-list names the identity the hub asserts, or ``group:<name>`` of the
        group it asserts with it (a paired phone: ``group:phones``)."""
        if identity is None:
            return False
        return identity in self._allowed or (group is not None and f"group:{group}" in self._allowed)

    def reset(self) -> None:
        """Forget half-typed remote attempts (the call ended); the keypad's and the counters stay."""
        self._typed = {where: typed for where, typed in self._typed.items() if where == KEYPAD}

    def locked_until(self) -> float:
        """When the last lockout of any counter ends (0 or a past time: none now)."""
        now = self._clock()
        return max((self._locked_until(counter, now) for counter in self._store.counters(now - DAY_S)), default=0.0)

    def seconds_locked(self) -> float:
        """How long until no counter is locked out any more (0: none is now); the door shows it."""
        return max(0.0, self.locked_until() - self._clock())

    # -- judging -------------------------------------------------------------------------------

    def _add(self, where: str, digit: str) -> str | None:
        """Type ``digit`` at ``where``; the attempt it completes, if it completes one."""
        typed = self._typed.get(where, "") + digit
        complete = digit == "#" if self._code.endswith("#") else len(typed) >= len(self._code)
        if complete:
            self._typed.pop(where, None)
            return typed
        if len(typed) > 2 * len(self._code) + 16:  # a key held down: not an attempt, keep the tail
            typed = typed[-len(self._code) :]
        self._typed[where] = typed
        return None

    def _judge(self, attempt: str, counter: str, source: Source, who: str, call_id: str | None) -> Verdict:
        now = self._clock()
        until = self._locked_until(counter, now)
        if until > now:
            # Logged, not written: the audit log keeps what was judged, and a guesser cannot flood it.
            log.warning("unlock code from %s during its lockout (%.0f s left): not judged", who, until - now)
            return Verdict.LOCKED
        if hmac.compare_digest(attempt.encode(), self._code.encode()):
            log.info("unlock code from %s accepted: opening the door", who)
            self._record(source, who, call_id, "open", "code", counter)
            return Verdict.OPEN
        self._record(source, who, call_id, "wrong", "code", counter)
        wrong_today = self._store.wrong_since(counter, now - DAY_S)
        log.warning("wrong unlock code from %s (%d in the last 24 h)", who, len(wrong_today))
        self._maybe_lock(counter, source, who, call_id, now, wrong_today)
        return Verdict.WRONG

    def _maybe_lock(
        self, counter: str, source: Source, who: str, call_id: str | None, now: float, wrong_today: list[float]
    ) -> None:
        if until := _cap_ends(wrong_today):
            detail = f"{len(wrong_today)} wrong codes in 24 h: locked for {(until - now) / 3600:.1f} h"
            self._lock_out(source, who, call_id, counter, detail)
            return
        last = self._store.lockout(counter)
        since = max(now - WRONG_WINDOW_S, last.until if last is not None else 0.0)
        recent = sum(at > since for at in wrong_today)
        if recent < WRONG_LIMIT:
            return
        level = last.level + 1 if last is not None and now - last.until < QUIET_S else 1
        seconds = lockout_seconds(level)
        self._store.set_lockout(counter, Lockout(level, now, now + seconds))
        detail = f"{recent} wrong codes in {WRONG_WINDOW_S / 60:.0f} min: locked for {seconds / 60:.0f} min"
        self._lock_out(source, who, call_id, counter, f"{detail} (lockout {level} in a row)")

    def _lock_out(self, source: Source, who: str, call_id: str | None, counter: str, detail: str) -> None:
        log.warning("unlock lockout for %s: %s", who, detail)
        self._record(source, who, call_id, "lockout", detail, counter)

    def _locked_until(self, counter: str, now: float) -> float:
        lockout = self._store.lockout(counter)
        capped = _cap_ends(self._store.wrong_since(counter, now - DAY_S))
        return max(lockout.until if lockout is not None else 0.0, capped)

    def _refuse(self, identity: str | None, call_id: str | None, what: str) -> None:
        who = identity or "nobody (a call of the hub's own)"
        log.warning("%s from %s refused: not in INTERCOM_UNLOCK_FROM", what, who)
        self._record("remote", identity, call_id, "refused", what)

    def _record(
        self,
        source: Source,
        who: str | None,
        call_id: str | None,
        verdict: Outcome,
        detail: str,
        counter: str = "",
    ) -> None:
        entry = AuditEntry(self._clock(), source, who, call_id, verdict, detail, counter)
        self._store.add(entry)
        if self._on_record is not None:
            self._on_record(entry)
