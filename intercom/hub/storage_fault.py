"""Whether the hub can write its data directory: a read-only or full SD card must not stop calls.

Each part that writes (the call log, the recordings) reports its failures and successes here. The
first failure of a part is logged once, with what the hub does meanwhile; the first success after
it is logged once too. ``/metrics`` shows :attr:`StorageFault.parts` as a gauge per part, and an
embedding unit shows :meth:`StorageFault.summary` in ``systemctl status`` through a listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

CALL_LOG = "call_log"
RECORDINGS = "recordings"
PARTS = (CALL_LOG, RECORDINGS)

# What the hub does while a part cannot be written, said once in the log.
MEANWHILE = {
    CALL_LOG: "calls go on, not logged (the last rows are kept in memory and written when the disk works again)",
    RECORDINGS: "calls go on, not recorded",
}


class StorageFault:
    def __init__(self) -> None:
        self.parts: dict[str, str] = {}  # failing part -> why, in words
        self._listeners: list[Callable[[StorageFault], None]] = []

    def on_change(self, listener: Callable[[StorageFault], None]) -> None:
        """Call ``listener`` whenever a part starts or stops failing."""
        self._listeners.append(listener)

    def failed(self, part: str, error: BaseException | str) -> None:
        reason = error if isinstance(error, str) else _reason(error)
        if part in self.parts:
            return  # said once, not at every write
        self.parts[part] = reason
        log.error("storage: %s not written (%s): %s", part.replace("_", " "), reason, MEANWHILE[part])
        self._changed()

    def recovered(self, part: str) -> None:
        if self.parts.pop(part, None) is None:
            return
        log.warning("storage: %s written again", part.replace("_", " "))
        self._changed()

    def summary(self) -> str | None:
        """One line for a status display, ``None`` when every part writes."""
        if not self.parts:
            return None
        return "; ".join(f"{part.replace('_', ' ')} not written ({reason})" for part, reason in self.parts.items())

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener(self)
            except Exception:  # a status display must never break a call
                log.exception("storage fault listener failed")


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
