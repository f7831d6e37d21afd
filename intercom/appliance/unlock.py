"""The door's unlock code: digits heard in a call become attempts, and too many wrong ones lock out.

Digits arrive one at a time (DTMF INFO from the desk, or a visitor pressing keys). An attempt
ends with ``#`` when the code ends with ``#``, otherwise once as many digits as the code has
arrived; a correct attempt opens the door once. Five wrong attempts within a minute lock the door
for five minutes: someone is guessing. During a lockout even the right code does nothing; both
are logged, as is every opening.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

log = logging.getLogger(__name__)

WRONG_LIMIT = 5
WRONG_WINDOW_S = 60.0
LOCKOUT_S = 300.0


class Verdict(StrEnum):
    PENDING = "pending"  # the attempt is not complete yet
    OPEN = "open"
    WRONG = "wrong"
    LOCKED = "locked"  # a complete attempt during a lockout, right or wrong


class UnlockGuard:
    def __init__(self, code: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._code = code
        self._clock = clock
        self._typed = ""
        self._wrong_at: deque[float] = deque(maxlen=WRONG_LIMIT)
        self._locked_until = 0.0

    @property
    def locked(self) -> bool:
        return self._clock() < self._locked_until

    def digit(self, digit: str) -> Verdict:
        """Take one digit; say what the attempt it completes (if any) comes to."""
        self._typed += digit
        complete = digit == "#" if self._code.endswith("#") else len(self._typed) >= len(self._code)
        if not complete:
            if len(self._typed) > 2 * len(self._code) + 16:  # a key held down: not an attempt, keep the tail
                self._typed = self._typed[-len(self._code) :]
            return Verdict.PENDING
        attempt, self._typed = self._typed, ""
        now = self._clock()
        if now < self._locked_until:
            log.warning("unlock attempt during the lockout (%.0f s left): ignored", self._locked_until - now)
            return Verdict.LOCKED
        if hmac.compare_digest(attempt, self._code):
            log.info("unlock code accepted: opening the door")
            return Verdict.OPEN
        self._wrong_at.append(now)
        log.warning(
            "wrong unlock code (%d in the last minute)", sum(now - at <= WRONG_WINDOW_S for at in self._wrong_at)
        )
        if len(self._wrong_at) == WRONG_LIMIT and now - self._wrong_at[0] <= WRONG_WINDOW_S:
            self._locked_until = now + LOCKOUT_S
            self._wrong_at.clear()
            log.warning(
                "%d wrong unlock codes within a minute: the door stays locked for %.0f s", WRONG_LIMIT, LOCKOUT_S
            )
        return Verdict.WRONG

    def reset(self) -> None:
        """Forget a half-typed attempt (the call ended); wrong attempts and a lockout are kept."""
        self._typed = ""
